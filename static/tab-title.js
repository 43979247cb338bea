// The tab's title carries the import's state, so a glance at the tab strip is enough.

const NAME = "Import hub";
const IDLE = "Chess game import hub";

/** Codes of endings the visitor chose: neutral, not failures. */
export const LEFT = new Set(["cancelled", "left"]);

export function tabTitle(state) {
  switch (state.phase) {
    case "queued":
      return state.position ? `(#${state.position}) ${NAME}` : `In line · ${NAME}`;
    case "running":
      if (!state.pages) {
        return `Starting · ${NAME}`;
      }
      return `${Math.floor((Math.min(state.page, state.pages) / state.pages) * 100)}% · ${NAME}`;
    case "done":
      return `✓ Done · ${NAME}`;
    case "failed":
      if (state.final && LEFT.has(state.final.code)) {
        return state.leftFrom === "running" ? `Stopped · ${NAME}` : `Left the line · ${NAME}`;
      }
      return `✗ Failed · ${NAME}`;
    default:
      return IDLE;
  }
}

export function renderTitle(state) {
  const title = tabTitle(state);
  if (document.title !== title) {
    document.title = title;
  }
}
