// The import page: one socket to the hub, one import at a time, a live queue board and charts.

import { drawMonthChart, drawRatingChart, drawRecordTable } from "./charts.js";
import { capitalize, formatDuration, formatEstimate, formatNumber, plural, siteName, UNKNOWN_WAIT_S } from "./format.js";
import { HubSocket } from "./socket.js";

const USERNAME = /^[A-Za-z0-9_-]{2,50}$/;
const STORE_KEY = "importHub.ticket";
const CLOSE_REASONS = {
  1008: "The hub closed this connection (too many open tabs or messages)",
  1012: "The hub is restarting",
  1013: "The hub is full right now",
};
const ACTIVE = new Set(["requesting", "resuming", "queued", "running"]);

const $ = (id) => document.getElementById(id);
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
  statusPanel: $("status-panel"),
  statusHeading: $("status-heading"),
  statusPlayer: $("status-player"),
  headline: $("status-headline"),
  joinedNote: $("joined-note"),
  queuedView: $("queued-view"),
  queueSlots: $("queue-slots"),
  queueEta: $("queue-eta"),
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
  analytics: $("analytics"),
  analyticsHeading: $("analytics-heading"),
  analyticsStatus: $("analytics-status"),
  analyticsRetry: $("analytics-retry"),
  analyticsBody: $("analytics-body"),
  chartMonths: $("chart-months"),
  tableColour: $("table-colour"),
  tableTime: $("table-time"),
  chartRating: $("chart-rating"),
  boardSlots: $("board-slots"),
  boardRunning: $("board-running"),
  boardWaiting: $("board-waiting"),
  boardMore: $("board-more"),
  boardStale: $("board-stale"),
  boardPanel: $("board-panel"),
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
  queueDeadline: null, // performance.now() at which the estimated wait reaches zero
  page: 0,
  pages: null,
  games: 0,
  runDeadline: null,
  waiting: null, // {reason, deadline}
  final: null, // the done or failed message
  connection: "connecting", // connecting | open | reconnecting
  closeCode: null, // why the last connection closed
  reconnectAt: null, // Date.now() of the next attempt
  hello: null,
  board: null,
  boardKey: "",
  summary: null,
  summaryFor: null,
  lostNote: false, // a reconnect found our import gone
};

// -- ticket storage (a reload or a new tab picks the import up again) ---------

function loadTicket() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    if (saved && typeof saved.ticket === "string" && saved.ticket) {
      return saved;
    }
  } catch {
    // unreadable or blocked storage: start afresh
  }
  return null;
}

function saveTicket() {
  try {
    localStorage.setItem(
      STORE_KEY,
      JSON.stringify({ ticket: state.ticket, source: state.source, username: state.username }),
    );
  } catch {
    // storage full or blocked: the import still runs, it just cannot survive a reload
  }
}

function forgetTicket() {
  try {
    localStorage.removeItem(STORE_KEY);
  } catch {
    // nothing to forget
  }
}

// -- wording ---------------------------------------------------------------------

function failureText(message, source) {
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
    case "cancelled":
      return "The import was cancelled. Games already imported are kept.";
    case "left":
      return "You left this import. It carries on for the player who asked first.";
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
      if (msg.import_id !== state.importId) {
        return;
      }
      state.phase = "queued";
      state.position = msg.position;
      state.slotsTotal = msg.slots_total;
      state.slotsFree = msg.slots_free;
      state.queueDeadline = msg.eta_s >= UNKNOWN_WAIT_S ? null : performance.now() + msg.eta_s * 1000;
      break;
    case "started":
      if (msg.import_id !== state.importId) {
        return;
      }
      if (state.phase !== "running") {
        state.phase = "running";
        state.page = 0;
        state.pages = null;
        state.games = 0;
        state.runDeadline = null;
        state.waiting = null;
      }
      break;
    case "progress":
      if (msg.import_id !== state.importId) {
        return;
      }
      state.phase = "running";
      state.page = msg.page;
      state.pages = msg.pages;
      state.games = msg.games;
      state.runDeadline = msg.eta_s === null || msg.eta_s === undefined ? null : performance.now() + msg.eta_s * 1000;
      state.waiting = msg.waiting
        ? { reason: msg.waiting.reason, deadline: performance.now() + msg.waiting.retry_in_s * 1000 }
        : null;
      break;
    case "done":
    case "failed":
      if (msg.import_id !== state.importId) {
        return;
      }
      finish(msg);
      break;
    case "error":
      onError(msg);
      break;
    case "queue":
      state.board = msg;
      renderBoard();
      return;
    default:
      return;
  }
  render();
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
  saveTicket();
}

function onError(msg) {
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
  showFormError(msg.message || "The hub could not handle that request.");
}

function finish(msg) {
  state.phase = msg.type === "done" ? "done" : "failed";
  state.final = msg;
  state.cancelling = false;
  state.waiting = null;
  state.ticket = null;
  forgetTicket();
  if (msg.type === "done") {
    loadAnalytics(state.source, state.username);
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

function startImport(source, username) {
  showFormError("");
  state.lostNote = false;
  if (ACTIVE.has(state.phase)) {
    ui.formNote.textContent = "One import at a time: leave the line or cancel the current import first.";
    ui.formNote.hidden = false;
    return;
  }
  if (!socket.send({ type: "import", source, username })) {
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
    queueDeadline: null,
    page: 0,
    pages: null,
    games: 0,
    runDeadline: null,
    waiting: null,
    final: null,
  });
  hideAnalytics();
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
});

function cancelImport() {
  if (!state.ticket) {
    return;
  }
  if (!socket.send({ type: "cancel", ticket: state.ticket })) {
    ui.actionNote.textContent = "Not connected to the hub right now; try again when the connection is back.";
    ui.actionNote.hidden = false;
    return;
  }
  if (state.joined) {
    // Only the player who asked first can stop a shared import; we just let go of it.
    finish({ type: "failed", import_id: state.importId, code: "left", message: "" });
  } else {
    state.cancelling = true;
  }
  render();
}

ui.leaveButton.addEventListener("click", cancelImport);
ui.cancelButton.addEventListener("click", cancelImport);

ui.tryAgain.addEventListener("click", () => {
  const code = state.final ? state.final.code : "";
  if (code === "player_not_found" || !state.username) {
    state.phase = "idle";
    render();
    ui.username.focus();
    ui.username.select();
    return;
  }
  startImport(state.source, state.username);
});

ui.retryNow.addEventListener("click", () => socket.retryNow());

// -- rendering -------------------------------------------------------------------

function setText(node, text) {
  if (node.textContent !== text) {
    node.textContent = text;
  }
}

function show(node, visible) {
  if (node.hidden === visible) {
    node.hidden = !visible;
  }
}

function headlineText() {
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
      return state.final && (state.final.code === "cancelled" || state.final.code === "left")
        ? "Import stopped"
        : "Import failed";
    default:
      return "";
  }
}

function render() {
  const focused = document.activeElement;
  const phase = state.phase;
  const active = ACTIVE.has(phase);

  // connection banner: shown whenever the socket is down, never blanking the page
  show(ui.connection, state.connection === "reconnecting");
  show(ui.boardStale, state.connection === "reconnecting" && state.board !== null);
  ui.boardPanel.classList.toggle("stale", state.connection === "reconnecting");
  ui.importButton.disabled = active;
  if (!active) {
    show(ui.formNote, Boolean(state.lostNote));
  } else {
    setText(ui.formNote, "One import at a time: this one must finish, or be left, before you start another.");
    show(ui.formNote, true);
  }
  show(ui.actionNote, false);

  show(ui.statusPanel, phase !== "idle");
  setText(ui.headline, headlineText());
  setText(
    ui.statusPlayer,
    state.username ? `${state.username} on ${siteName(state.source)}` : "",
  );
  show(ui.joinedNote, active && state.joined);

  show(ui.queuedView, phase === "queued");
  if (phase === "queued") {
    const total = state.slotsTotal ?? 0;
    setText(ui.queueSlots, `${state.slotsFree ?? 0} of ${total} import ${total === 1 ? "slot" : "slots"} available`);
    ui.leaveButton.disabled = state.cancelling;
    setText(ui.leaveButton, state.cancelling ? "Leaving…" : "Leave queue");
  }

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
      ui.progress.removeAttribute("value");
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
    setText(ui.failedMessage, failureText(state.final, state.source));
  }

  renderClocks();
  renderBoard();

  // A button that just disappeared or got disabled must not drop focus on the floor.
  if (focused && focused !== document.body && (focused.disabled || focused.closest("[hidden]"))) {
    if (ui.statusPanel.hidden) {
      ui.username.focus();
    } else {
      ui.statusHeading.focus();
    }
  }
}

/** The parts that move every second between server updates. */
function renderClocks() {
  const now = performance.now();
  if (state.phase === "queued") {
    const left = state.queueDeadline === null ? null : Math.max(0, Math.ceil((state.queueDeadline - now) / 1000));
    setText(ui.queueEta, formatEstimate(left));
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
  if (state.connection === "reconnecting") {
    const left = state.reconnectAt ? Math.ceil((state.reconnectAt - Date.now()) / 1000) : 0;
    const why = CLOSE_REASONS[state.closeCode] || "Connection lost";
    setText(ui.connectionText, left > 0 ? `${why} — reconnecting… (next try in ${left} s)` : `${why} — reconnecting…`);
  }
}

function badge() {
  const node = document.createElement("span");
  node.className = "you";
  node.textContent = "You";
  return node;
}

function renderBoard() {
  const b = state.board;
  if (!b) {
    if (state.hello) {
      setText(ui.boardSlots, `${state.hello.slots_free} of ${state.hello.slots_total} import slots free`);
    }
    return;
  }
  const mine = {
    importId: state.importId,
    position: state.phase === "queued" ? state.position : null,
    name: (state.username || "").toLowerCase(),
  };
  const key = JSON.stringify([b, mine]);
  if (key === state.boardKey) {
    return;
  }
  state.boardKey = key;

  setText(
    ui.boardSlots,
    `${b.slots_free} of ${b.slots_total} import ${b.slots_total === 1 ? "slot" : "slots"} free · ` +
      `${formatNumber(b.waiting_total)} waiting`,
  );

  const running = b.running.map((row) => {
    const li = document.createElement("li");
    li.className = "board-row";
    const own = Boolean(mine.importId) && row.import_id === mine.importId;
    if (own) {
      li.classList.add("mine");
      li.append(badge());
    }
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${row.player} · ${siteName(row.source)}`;
    li.append(who);
    const bar = document.createElement("progress");
    bar.setAttribute("aria-label", own ? "Your import" : `Import for ${row.player}`);
    if (row.pages) {
      bar.max = row.pages;
      bar.value = Math.min(row.page, row.pages);
    }
    li.append(bar);
    const where = document.createElement("span");
    where.className = "where";
    where.textContent = row.pages ? `page ${formatNumber(row.page)} of ${formatNumber(row.pages)}` : "starting";
    li.append(where);
    return li;
  });
  if (!running.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Nothing is importing right now.";
    running.push(li);
  }
  ui.boardRunning.replaceChildren(...running);

  const waiting = b.waiting.map((row) => {
    const li = document.createElement("li");
    li.className = "board-row";
    const own = mine.position !== null && row.position === mine.position && row.player.toLowerCase() === mine.name;
    const pos = document.createElement("span");
    pos.className = "pos";
    pos.textContent = `#${row.position}`;
    li.append(pos);
    if (own) {
      li.classList.add("mine");
      li.append(badge());
    }
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${row.player} · ${siteName(row.source)}`;
    li.append(who);
    return li;
  });
  if (!waiting.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "Nobody is waiting.";
    waiting.push(li);
  }
  ui.boardWaiting.replaceChildren(...waiting);

  const more = b.waiting_total - b.waiting.length;
  show(ui.boardMore, more > 0);
  if (more > 0) {
    setText(ui.boardMore, `+${formatNumber(more)} more waiting`);
  }
}

// -- analytics -------------------------------------------------------------------

let analyticsRequest = 0;

function hideAnalytics() {
  analyticsRequest += 1;
  state.summary = null;
  show(ui.analytics, false);
}

async function loadAnalytics(source, username) {
  const request = ++analyticsRequest;
  state.summary = null;
  state.summaryFor = { source, username };
  show(ui.analytics, true);
  show(ui.analyticsBody, false);
  show(ui.analyticsRetry, false);
  setText(ui.analyticsHeading, `Games of ${username} on ${siteName(source)}`);
  setText(ui.analyticsStatus, "Loading the charts…");
  try {
    const url = `/api/players/${encodeURIComponent(source)}/${encodeURIComponent(username.toLowerCase())}/summary`;
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    const summary = await response.json();
    if (request !== analyticsRequest) {
      return;
    }
    state.summary = summary;
    drawAnalytics();
  } catch {
    if (request !== analyticsRequest) {
      return;
    }
    setText(ui.analyticsStatus, "We could not load the charts just now.");
    show(ui.analyticsRetry, true);
  }
}

ui.analyticsRetry.addEventListener("click", () => {
  if (state.summaryFor) {
    loadAnalytics(state.summaryFor.source, state.summaryFor.username);
  }
});

function records(entries) {
  return entries.map(([name, r]) => ({ name, win: r.win || 0, draw: r.draw || 0, loss: r.loss || 0 }));
}

function drawAnalytics() {
  const s = state.summary;
  if (!s) {
    return;
  }
  setText(ui.analyticsStatus, `${plural(s.games, "game", "games")} stored for this player.`);
  show(ui.analyticsBody, true);
  drawMonthChart(ui.chartMonths, s.by_month || []);
  const colours = records(
    ["white", "black"].filter((c) => s.by_color && s.by_color[c]).map((c) => [capitalize(c), s.by_color[c]]),
  );
  drawRecordTable(ui.tableColour, "By colour", "Colour", colours);
  const classes = records(Object.entries(s.by_time_class || {}).map(([k, v]) => [capitalize(k), v])).sort(
    (a, b) => b.win + b.draw + b.loss - (a.win + a.draw + a.loss),
  );
  drawRecordTable(ui.tableTime, "By time control", "Time control", classes);
  drawRatingChart(ui.chartRating, s.rating || []);
}

let resizeTimer = null;
let lastWidth = window.innerWidth;
window.addEventListener("resize", () => {
  if (window.innerWidth === lastWidth) {
    return;
  }
  lastWidth = window.innerWidth;
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawAnalytics, 150);
});

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
