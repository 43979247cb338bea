// What the visitor is told about their import away from the screen: the live region and
// notifications. Both are fed from the same moments, with the same words.

import { Announcer } from "./announcer.js";
import { $ } from "./dom.js";
import { ordinal, plural, siteName } from "./format.js";
import { failureText } from "./import-view.js";
import { notify } from "./notify.js";
import { gapsText } from "./receipt.js";
import { LEFT } from "./tab-title.js";

const announcer = new Announcer($("announcer"));

function player(state) {
  return `${state.username} on ${siteName(state.source)}`;
}

function pausedWords(source, paused) {
  const reason = String(paused.reason || "").replace(/[.\s]+$/, "");
  return `${siteName(source)} imports are paused${reason ? `: ${reason}` : ""}. Your place is kept.`;
}

/** A new import was asked for: nothing said about it yet. */
export function tellNewImport() {
  announcer.reset();
}

/** A `queued` arrived; `before` is the state it replaced (phase, position, paused). */
export function tellQueued(state, before) {
  if (state.paused && !before.paused) {
    announcer.say(pausedWords(state.source, state.paused));
  } else if (!state.paused && before.paused && before.phase === "queued") {
    announcer.say(`${siteName(state.source)} imports have resumed.`);
  }
  if (state.position) {
    announcer.position(state.position, (p) => `You are ${ordinal(p)} in line.`);
  }
}

/** The import took a slot; `resumed` when the page only found it running after a reload. */
export function tellStarted(state, resumed) {
  announcer.leftLine();
  if (resumed) {
    return;
  }
  announcer.say("Your import has started.");
  notify("Your import has started", `Importing the games of ${player(state)}.`, state.importId);
}

export function tellProgress(state) {
  announcer.progress(state.page, state.pages, (percent) => `${percent} % imported.`);
}

function gapsWords(done, source) {
  return done.complete === false && done.gaps ? ` ${gapsText(done.gaps, source)}` : "";
}

/** The import ended: done, failed, or left by the visitor (said, but no notification). */
export function tellFinal(state) {
  announcer.leftLine();
  const final = state.final;
  if (final.type === "done") {
    const counts = `${plural(final.games_new, "new game", "new games")}, ${plural(final.games_total, "game", "games")} in all.`;
    announcer.say(`Import finished: ${counts}${gapsWords(final, state.source)}`);
    notify("Import finished", `${player(state)}: ${counts}${gapsWords(final, state.source)}`, state.importId);
    return;
  }
  const why = failureText(final, state.source, state.leftFrom);
  if (LEFT.has(final.code)) {
    announcer.say(why);
    return;
  }
  announcer.say(`Import failed. ${why}`);
  notify("Import failed", `${player(state)}: ${why}`, state.importId);
}

/** Anything else worth hearing once: a refusal, the connection lost or back. */
export function tellNote(text) {
  announcer.say(text);
}
