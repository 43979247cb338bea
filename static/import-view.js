// The status panel of our own import: queued, running, done or failed.

import { $, setText, show } from "./dom.js";
import { capitalize, formatDuration, formatEstimate, formatNumber, formatRange, plural, siteName } from "./format.js";
import { LEFT } from "./tab-title.js";

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const ui = {
  statusPanel: $("status-panel"),
  statusHeading: $("status-heading"),
  statusPlayer: $("status-player"),
  headline: $("status-headline"),
  joinedNote: $("joined-note"),
  queuedView: $("queued-view"),
  queueSlots: $("queue-slots"),
  queueEta: $("queue-eta"),
  queuePaused: $("queue-paused"),
  leaveButton: $("leave-button"),
  progressView: $("progress-view"),
  progress: $("run-progress"),
  runPages: $("run-pages"),
  runningView: $("running-view"),
  runEta: $("run-eta"),
  runWaiting: $("run-waiting"),
  cancelButton: $("cancel-button"),
  doneView: $("done-view"),
  doneNew: $("done-new"),
  doneTotal: $("done-total"),
  doneTook: $("done-took"),
  failedView: $("failed-view"),
  failedMessage: $("failed-message"),
  tryAgain: $("try-again-button"),
  actionNote: $("action-note"),
};

/** Wires the panel's buttons: leave and cancel both stop our part in the import. */
export function bindImportActions({ cancel, tryAgain }) {
  ui.leaveButton.addEventListener("click", cancel);
  ui.cancelButton.addEventListener("click", cancel);
  ui.tryAgain.addEventListener("click", tryAgain);
}

/** A note under the panel until the next render. */
export function showActionNote(text) {
  ui.actionNote.textContent = text;
  ui.actionNote.hidden = false;
}

export function statusPanelShown() {
  return !ui.statusPanel.hidden;
}

export function focusStatusHeading() {
  ui.statusHeading.focus();
}

// -- wording ---------------------------------------------------------------------

/** The words for how an import ended without games: a failure, or the visitor's own choice. */
export function failureText(message, source, leftFrom = null) {
  const site = siteName(source);
  switch (message.code) {
    case "player_not_found":
      return `We couldn't find that player on ${site}. Check the spelling.`;
    case "upstream_unavailable":
      return `${capitalize(site)} is not answering right now. Try again in a few minutes.`;
    case "rate_limited":
      return `${capitalize(site)} keeps asking us to slow down. Try again in a few minutes.`;
    case "upstream_bad_data":
      return `${capitalize(site)} sent data we could not read. Try again later.`;
    case "storage_unavailable":
      return "The hub could not save your import, so it is not in the line. Try again in a minute.";
    case "cancelled":
      return leftFrom === "running"
        ? "You stopped the import. Games already imported are kept."
        : "You left the line. Nothing was imported; you can join it again at any time.";
    case "left":
      return "You stopped following this import. It carries on for the player who asked first.";
    case "abandoned":
      return "The import was dropped because nobody was waiting for it any more.";
    case "interrupted":
      return "The hub restarted during the import. Games already imported are kept; import again to continue.";
    case "internal":
      return "Something went wrong on our side. Games already imported are kept; please try again.";
    default:
      return message.message || "The import failed. Please try again.";
  }
}

function waitingText(waiting, source) {
  const site = siteName(source);
  const left = Math.max(0, Math.ceil((waiting.deadline - performance.now()) / 1000));
  const when = left > 0 ? `retrying in ${formatDuration(left)}` : "retrying now";
  if (waiting.reason === "rate_limited") {
    return `${site} asked us to slow down — ${when}`;
  }
  if (waiting.reason === "retrying") {
    return `${site} did not answer properly — ${when}`;
  }
  return `Waiting for ${site} — ${when}`;
}

function headlineText(state) {
  switch (state.phase) {
    case "requesting":
      return "Sending your request…";
    case "resuming":
      return "Finding your import again…";
    case "queued":
      return state.position ? `You are #${state.position} in line` : "You are in line";
    case "running":
      if (state.cancelling) {
        return "Stopping after the current page…";
      }
      return state.pages ? "Importing your games" : "Starting your import…";
    case "done":
      return "Import finished";
    case "failed":
      if (state.final && LEFT.has(state.final.code)) {
        return state.leftFrom === "running" ? "Import stopped" : "You left the line";
      }
      return "Import failed";
    default:
      return "";
  }
}

// -- rendering -------------------------------------------------------------------

function renderProgress(state) {
  const phase = state.phase;
  show(ui.progressView, phase === "running" || phase === "done");
  if (phase === "running") {
    if (state.pages) {
      ui.progress.max = state.pages;
      ui.progress.value = Math.min(state.page, state.pages);
      setText(
        ui.runPages,
        `page ${formatNumber(state.page)} of ${formatNumber(state.pages)} · ${plural(state.games, "game", "games")}`,
      );
    } else {
      // No value makes the bar indeterminate (animated) until the page count is known;
      // an empty bar says the same without motion.
      if (reducedMotion.matches) {
        ui.progress.max = 1;
        ui.progress.value = 0;
      } else {
        ui.progress.removeAttribute("value");
      }
      setText(ui.runPages, "Looking up how many pages there are…");
    }
  } else if (phase === "done") {
    const pages = Math.max(state.final.pages, 1);
    ui.progress.max = pages;
    ui.progress.value = pages;
    setText(
      ui.runPages,
      state.final.pages
        ? `page ${formatNumber(state.final.pages)} of ${formatNumber(state.final.pages)} · ` +
            `${plural(state.final.games_new, "new game", "new games")}`
        : "Nothing new since the last import",
    );
  }
}

export function renderImport(state, active) {
  const phase = state.phase;
  show(ui.actionNote, false);

  show(ui.statusPanel, phase !== "idle");
  setText(ui.headline, headlineText(state));
  setText(ui.statusPlayer, state.username ? `${state.username} on ${siteName(state.source)}` : "");
  show(ui.joinedNote, active && state.joined);

  show(ui.queuedView, phase === "queued");
  show(ui.queuePaused, phase === "queued" && state.paused !== null);
  if (phase === "queued") {
    if (state.paused) {
      const reason = String(state.paused.reason || "").replace(/[.\s]+$/, "");
      setText(
        ui.queuePaused,
        `${siteName(state.source)} imports are paused${reason ? `: ${reason}` : ""}. Your place is kept.`,
      );
    }
    const total = state.slotsTotal ?? 0;
    setText(ui.queueSlots, `${state.slotsFree ?? 0} of ${total} import ${total === 1 ? "slot" : "slots"} available`);
    ui.leaveButton.disabled = state.cancelling;
    setText(ui.leaveButton, state.cancelling ? "Leaving…" : "Leave queue");
  }

  renderProgress(state);

  show(ui.runningView, phase === "running");
  if (phase === "running") {
    ui.cancelButton.disabled = state.cancelling;
    setText(ui.cancelButton, state.cancelling ? "Cancelling…" : "Cancel");
  }

  show(ui.doneView, phase === "done");
  if (phase === "done") {
    setText(ui.doneNew, formatNumber(state.final.games_new));
    setText(ui.doneTotal, formatNumber(state.final.games_total));
    setText(ui.doneTook, state.final.duration_s < 1 ? "under a second" : formatDuration(state.final.duration_s));
  }

  show(ui.failedView, phase === "failed");
  if (phase === "failed") {
    const left = LEFT.has(state.final.code);
    setText(ui.failedMessage, failureText(state.final, state.source, state.leftFrom));
    ui.failedMessage.className = left ? "outcome" : "problem";
    setText(ui.tryAgain, left ? "Import again" : "Try again");
  }
}

/**
 * The wait as an interval when the hub gives one ("about 3–5 min"), counted down between
 * updates; while the source is paused it stands still.
 */
function queueEstimate(eta, paused, now) {
  if (eta === null) {
    return "unknown";
  }
  const gone = paused ? 0 : (now - eta.at) / 1000;
  const left = (s) => (s === null ? null : Math.max(0, Math.ceil(s - gone)));
  const words = eta.low === null ? formatEstimate(left(eta.mid)) : formatRange(left(eta.low), left(eta.high));
  return paused && words !== "unknown" ? `${words} once imports resume` : words;
}

/** The countdowns that move every second between server updates. */
export function renderImportClocks(state) {
  const now = performance.now();
  if (state.phase === "queued") {
    setText(ui.queueEta, queueEstimate(state.queueEta, state.paused !== null, now));
  }
  if (state.phase === "running") {
    show(ui.runEta, Boolean(state.pages));
    if (state.runDeadline !== null && state.pages) {
      const left = Math.max(0, Math.ceil((state.runDeadline - now) / 1000));
      setText(ui.runEta, left > 0 ? `${formatEstimate(left)} left` : "Almost done…");
    } else {
      setText(ui.runEta, "Working out how long this takes…");
    }
    show(ui.runWaiting, state.waiting !== null);
    if (state.waiting) {
      setText(ui.runWaiting, waitingText(state.waiting, state.source));
    }
  }
}
