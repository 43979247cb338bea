// The import page: one socket to the hub, one import at a time, a live queue board and charts.
// This module holds the page state and wires the socket and the form to the views.

import { hideAnalytics, loadAnalytics } from "./analytics.js";
import { $, setText, show } from "./dom.js";
import { UNKNOWN_WAIT_S } from "./format.js";
import {
  bindImportActions,
  focusStatusHeading,
  renderImport,
  renderImportClocks,
  showActionNote,
  statusPanelShown,
} from "./import-view.js";
import { renderNotify } from "./notify.js";
import { renderBoard, renderBoardConnection } from "./queue-board.js";
import { bindRepair, hideReceipt, showReceipt } from "./receipt.js";
import { HubSocket } from "./socket.js";
import { renderTitle } from "./tab-title.js";
import { tellFinal, tellNewImport, tellNote, tellProgress, tellQueued, tellStarted } from "./tell.js";
import { forgetTicket, loadTicket, saveTicket } from "./ticket-store.js";

const USERNAME = /^[A-Za-z0-9_-]{2,50}$/;
const CLOSE_REASONS = {
  1008: "The hub closed this connection (too many open tabs or messages)",
  1012: "The hub is restarting",
  1013: "The hub is full right now",
};
const ACTIVE = new Set(["requesting", "resuming", "queued", "running"]);
// Refusals of a request that say nothing about the name typed: shown as a notice, not a field error.
const REFUSALS = {
  too_many_imports: (message) =>
    `This import was not started. ${message} Imports in your other tabs count too; ` +
    "another import can start as soon as one of yours ends.",
  queue_full: (message) => `This import was not started. ${message}`,
  rate_limited: () => "This page sent the hub too much at once. Wait a moment, then try again.",
  storage_unavailable: () => "The hub cannot save new imports right now. Try again in a minute.",
};
const KNOWN_MAX = 20; // imports this page held tickets for, named on the board

const ui = {
  connection: $("connection"),
  connectionText: $("connection-text"),
  retryNow: $("retry-now"),
  form: $("import-form"),
  source: $("source"),
  username: $("username"),
  usernameError: $("username-error"),
  importButton: $("import-button"),
  formNote: $("form-note"),
  formNotice: $("form-notice"),
};

const state = {
  phase: "idle", // idle | requesting | resuming | queued | running | done | failed
  ticket: null,
  importId: null,
  source: null,
  username: null,
  joined: false,
  cancelling: false,
  position: null,
  slotsTotal: null,
  slotsFree: null,
  queueEta: null, // {low, mid, high, at}: the hub's estimate, and performance.now() when it came
  paused: null, // {reason, since} while the import's site is paused
  page: 0,
  pages: null,
  games: 0,
  runDeadline: null,
  waiting: null, // {reason, deadline}
  final: null, // the done or failed message
  leftFrom: null, // "queued" or "running": where the visitor was when they cancelled
  known: new Map(), // import_id -> {source, username} of this page's tickets
  connection: "connecting", // connecting | open | reconnecting
  closeCode: null, // why the last connection closed
  reconnectAt: null, // Date.now() of the next attempt
  hello: null,
  board: null,
  lostNote: false, // a reconnect found our import gone
};

// -- the username check ----------------------------------------------------------

function usernameProblem(name) {
  if (!name) {
    return "Enter a username.";
  }
  if (name.length < 2 || name.length > 50) {
    return "A username is 2 to 50 characters long.";
  }
  if (!USERNAME.test(name)) {
    return "A username can only contain letters, digits, underscores (_) and hyphens (-).";
  }
  return null;
}

// -- the socket ------------------------------------------------------------------

const socket = new HubSocket({
  onOpen() {
    socket.send({ type: "watch_queue" });
    if (state.ticket && ACTIVE.has(state.phase)) {
      socket.send({ type: "resume", ticket: state.ticket });
    }
    render();
  },
  onMessage: handle,
  onState(connection, detail) {
    // Said once per outage, not with every retry or countdown step of the banner.
    if (connection === "reconnecting" && state.connection === "open") {
      tellNote("The connection to the hub was lost. Reconnecting…");
    } else if (connection === "open" && state.connection === "reconnecting") {
      tellNote("Connected to the hub again.");
    }
    state.connection = connection;
    state.reconnectAt = connection === "reconnecting" && detail.inMs ? Date.now() + detail.inMs : null;
    state.closeCode = detail.code ?? null;
    if (connection === "reconnecting" && state.phase === "requesting") {
      // The request may not have reached the hub; nothing was promised yet.
      state.phase = "idle";
      showFormError("The connection dropped before the hub answered. Try again when it is back.");
    }
    render();
  },
});

function handle(msg) {
  switch (msg.type) {
    case "hello":
      state.hello = msg;
      break;
    case "ticket":
      onTicket(msg);
      break;
    case "queued":
      if (msg.import_id !== state.importId || !ACTIVE.has(state.phase)) {
        return;
      }
      onQueued(msg);
      break;
    case "started":
    case "progress":
      if (msg.import_id !== state.importId || !ACTIVE.has(state.phase)) {
        return;
      }
      onRunning(msg);
      break;
    case "done":
    case "failed":
      if (msg.import_id !== state.importId || !ACTIVE.has(state.phase)) {
        return; // a late word about an import this page already let go of
      }
      finish(msg);
      break;
    case "error":
      onError(msg);
      break;
    case "queue":
      state.board = msg;
      renderBoard(state);
      return;
    default:
      return;
  }
  render();
}

function onQueued(msg) {
  const before = { phase: state.phase, paused: state.paused };
  state.phase = "queued";
  state.position = msg.position;
  state.slotsTotal = msg.slots_total;
  state.slotsFree = msg.slots_free;
  state.paused = msg.paused || null;
  const known = (v) => typeof v === "number" && v < UNKNOWN_WAIT_S;
  state.queueEta = known(msg.eta_s)
    ? {
        mid: msg.eta_s,
        low: known(msg.eta_low_s) && known(msg.eta_high_s) ? msg.eta_low_s : null,
        high: known(msg.eta_low_s) && known(msg.eta_high_s) ? msg.eta_high_s : null,
        at: performance.now(),
      }
    : null;
  tellQueued(state, before);
}

function onRunning(msg) {
  if (state.phase !== "running") {
    const resumed = state.phase === "resuming";
    Object.assign(state, { phase: "running", page: 0, pages: null, games: 0, runDeadline: null, waiting: null });
    state.paused = null;
    tellStarted(state, resumed);
  }
  if (msg.type === "started") {
    return;
  }
  state.page = msg.page;
  state.pages = msg.pages;
  state.games = msg.games;
  state.runDeadline = msg.eta_s === null || msg.eta_s === undefined ? null : performance.now() + msg.eta_s * 1000;
  state.waiting = msg.waiting
    ? { reason: msg.waiting.reason, deadline: performance.now() + msg.waiting.retry_in_s * 1000 }
    : null;
  tellProgress(state);
}

function onTicket(msg) {
  const known = msg.ticket === state.ticket;
  if (!known && state.phase !== "requesting") {
    return;
  }
  state.ticket = msg.ticket;
  state.importId = msg.import_id;
  state.source = msg.source;
  // Keep the spelling the player typed when it is the same name.
  if (!state.username || state.username.toLowerCase() !== String(msg.username).toLowerCase()) {
    state.username = msg.username;
  }
  state.joined = Boolean(msg.joined);
  state.known.delete(msg.import_id);
  state.known.set(msg.import_id, { source: msg.source, username: state.username });
  if (state.known.size > KNOWN_MAX) {
    state.known.delete(state.known.keys().next().value);
  }
  saveTicket(state);
}

function onError(msg) {
  if (msg.import_id !== undefined) {
    // About an import we hold a ticket for (its row could not be written, say): it is over.
    if (msg.import_id === state.importId && ACTIVE.has(state.phase)) {
      finish({ type: "failed", import_id: msg.import_id, code: msg.code, message: msg.message });
    }
    return;
  }
  if (msg.code === "unknown_ticket") {
    // The hub no longer knows our import (it ended long ago, or the hub was replaced).
    if (state.phase !== "requesting") {
      const wasShowing = state.phase === "queued" || state.phase === "running";
      forgetTicket();
      state.ticket = null;
      if (ACTIVE.has(state.phase)) {
        state.phase = "idle";
      }
      if (wasShowing) {
        // Only after a reconnect, where the page was showing the import: say where it went.
        ui.formNote.textContent =
          "The hub no longer knows your last import (it may have restarted). Start it again if you still need it.";
        state.lostNote = true;
      }
    }
    return;
  }
  if (state.phase === "requesting") {
    state.phase = "idle";
  }
  const refusal = REFUSALS[msg.code];
  if (refusal) {
    showFormNotice(refusal(msg.message || ""));
    return;
  }
  showFormError(msg.message || "The hub could not handle that request.");
}

function finish(msg) {
  if (msg.code === "cancelled" && state.leftFrom === null) {
    state.leftFrom = state.phase === "running" ? "running" : "queued"; // cancelled elsewhere
  }
  state.phase = msg.type === "done" ? "done" : "failed";
  state.final = msg;
  state.cancelling = false;
  state.waiting = null;
  state.paused = null;
  state.ticket = null;
  forgetTicket();
  tellFinal(state);
  if (msg.type === "done") {
    loadAnalytics(state.source, state.username);
    showReceipt(msg, state.source, state.username);
  }
}

// -- actions ---------------------------------------------------------------------

function showFormError(text) {
  ui.usernameError.textContent = text;
  if (text) {
    ui.username.setAttribute("aria-invalid", "true");
  } else {
    ui.username.removeAttribute("aria-invalid");
  }
}

function showFormNotice(text) {
  setText(ui.formNotice, text);
  show(ui.formNotice, Boolean(text));
  if (text) {
    tellNote(text);
  }
}

function startImport(source, username, repair = false) {
  showFormError("");
  showFormNotice("");
  state.lostNote = false;
  if (ACTIVE.has(state.phase)) {
    ui.formNote.textContent = "One import at a time: leave the line or cancel the current import first.";
    ui.formNote.hidden = false;
    return;
  }
  const request = repair ? { type: "import", source, username, repair: true } : { type: "import", source, username };
  if (!socket.send(request)) {
    showFormError("Not connected to the hub right now. We are reconnecting; try again in a moment.");
    return;
  }
  Object.assign(state, {
    phase: "requesting",
    ticket: null,
    importId: null,
    source,
    username,
    joined: false,
    cancelling: false,
    position: null,
    queueEta: null,
    paused: null,
    page: 0,
    pages: null,
    games: 0,
    runDeadline: null,
    waiting: null,
    final: null,
    leftFrom: null,
  });
  tellNewImport();
  hideAnalytics();
  hideReceipt();
  render();
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.username.value.trim();
  const problem = usernameProblem(name);
  if (problem) {
    showFormError(problem);
    ui.username.focus();
    return;
  }
  startImport(ui.source.value === "lichess" ? "lichess" : "chesscom", name);
});

ui.username.addEventListener("input", () => {
  if (ui.usernameError.textContent) {
    showFormError("");
  }
  show(ui.formNotice, false);
});

function cancelImport() {
  if (!state.ticket) {
    return;
  }
  if (!socket.send({ type: "cancel", ticket: state.ticket })) {
    showActionNote("Not connected to the hub right now; try again when the connection is back.");
    return;
  }
  state.leftFrom = state.phase === "running" ? "running" : "queued";
  if (state.joined) {
    // A shared import goes on for the others; this page just lets go of it, at once.
    const code = state.phase === "running" ? "left" : "cancelled";
    finish({ type: "failed", import_id: state.importId, code, message: "" });
  } else {
    state.cancelling = true;
  }
  render();
}

bindImportActions({
  cancel: cancelImport,
  tryAgain() {
    const code = state.final ? state.final.code : "";
    if (code === "player_not_found" || !state.username) {
      state.phase = "idle";
      render();
      ui.username.focus();
      ui.username.select();
      return;
    }
    startImport(state.source, state.username);
  },
});

bindRepair((source, username) => startImport(source, username, true));

ui.retryNow.addEventListener("click", () => socket.retryNow());

// -- rendering -------------------------------------------------------------------

function render() {
  const focused = document.activeElement;
  const active = ACTIVE.has(state.phase);

  // connection banner: shown whenever the socket is down, never blanking the page
  show(ui.connection, state.connection === "reconnecting");
  renderBoardConnection(state);
  ui.importButton.disabled = active;
  if (!active) {
    show(ui.formNote, Boolean(state.lostNote));
  } else {
    setText(ui.formNote, "One import at a time: this one must finish, or be left, before you start another.");
    show(ui.formNote, true);
  }
  renderImport(state, active);
  renderClocks();
  renderBoard(state);
  renderTitle(state);
  renderNotify();

  // A button that just disappeared or got disabled must not drop focus on the floor.
  if (focused && focused !== document.body && (focused.disabled || focused.closest("[hidden]"))) {
    if (statusPanelShown()) {
      focusStatusHeading();
    } else {
      ui.username.focus();
    }
  }
}

/** The parts that move every second between server updates. */
function renderClocks() {
  renderImportClocks(state);
  if (state.connection === "reconnecting") {
    const left = state.reconnectAt ? Math.ceil((state.reconnectAt - Date.now()) / 1000) : 0;
    const why = CLOSE_REASONS[state.closeCode] || "Connection lost";
    setText(ui.connectionText, left > 0 ? `${why} — reconnecting… (next try in ${left} s)` : `${why} — reconnecting…`);
  }
}

// -- start -----------------------------------------------------------------------

const saved = loadTicket();
if (saved) {
  state.phase = "resuming";
  state.ticket = saved.ticket;
  state.source = saved.source === "lichess" ? "lichess" : "chesscom";
  state.username = typeof saved.username === "string" ? saved.username : null;
  ui.source.value = state.source;
  if (state.username) {
    ui.username.value = state.username;
  }
}
render();
socket.connect();
setInterval(renderClocks, 250);
