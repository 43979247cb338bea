// The live queue board: free slots, who is importing and who is waiting.

import { $, setText, show } from "./dom.js";
import { formatClock, formatNumber, siteName } from "./format.js";

const ui = {
  panel: $("board-panel"),
  slots: $("board-slots"),
  running: $("board-running"),
  waiting: $("board-waiting"),
  more: $("board-more"),
  stale: $("board-stale"),
  paused: $("board-paused"),
  accuracy: $("board-accuracy"),
};

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

// The last board drawn, with our own place in it: an unchanged board is not rebuilt.
let drawnKey = "";

/** While the socket is down the board keeps its last state, marked as not live. */
export function renderBoardConnection(state) {
  const reconnecting = state.connection === "reconnecting";
  show(ui.stale, reconnecting && state.board !== null);
  ui.panel.classList.toggle("stale", reconnecting);
}

function badge() {
  const node = document.createElement("span");
  node.className = "you";
  node.textContent = "You";
  return node;
}

function who(name, source) {
  const node = document.createElement("span");
  node.className = "who";
  node.textContent = `${name} · ${siteName(source)}`;
  return node;
}

function emptyRow(text) {
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = text;
  return li;
}

/**
 * The hub masks every player for every watcher; our own rows are found by import id and
 * named from our tickets. A hub without ids on waiting rows is matched by place and name.
 */
function ownName(row, mine) {
  if (row.import_id !== undefined) {
    const known = mine.known.get(row.import_id);
    return known ? known.username : null;
  }
  const legacy = mine.position !== null && row.position === mine.position && row.player.toLowerCase() === mine.name;
  return legacy ? mine.username : null;
}

function runningRow(row, mine) {
  const li = document.createElement("li");
  li.className = "board-row";
  const own = ownName(row, mine);
  if (own !== null) {
    li.classList.add("mine");
    li.append(badge());
  }
  li.append(who(own ?? row.player, row.source));
  const bar = document.createElement("progress");
  bar.setAttribute("aria-label", own !== null ? "Your import" : `Import for ${row.player}`);
  if (row.pages) {
    bar.max = row.pages;
    bar.value = Math.min(row.page, row.pages);
  } else if (mine.still) {
    bar.max = 1;
    bar.value = 0;
  }
  li.append(bar);
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = row.pages ? `page ${formatNumber(row.page)} of ${formatNumber(row.pages)}` : "starting";
  li.append(where);
  return li;
}

function waitingRow(row, mine) {
  const li = document.createElement("li");
  li.className = "board-row";
  const own = ownName(row, mine);
  const pos = document.createElement("span");
  pos.className = "pos";
  pos.textContent = `#${row.position}`;
  li.append(pos);
  if (own !== null) {
    li.classList.add("mine");
    li.append(badge());
  }
  li.append(who(own ?? row.player, row.source));
  return li;
}

function pausedRow(row) {
  const li = document.createElement("li");
  li.className = "notice";
  const reason = String(row.reason || "").replace(/[.\s]+$/, "");
  const since = Number.isFinite(row.since) ? ` (since ${formatClock(row.since)})` : "";
  li.textContent = `${siteName(row.source)} imports are paused${reason ? `: ${reason}` : ""}${since}. Waiting imports keep their place.`;
  return li;
}

/** How good recent estimates were, in words; null until the hub has enough of them. */
export function accuracyText(accuracy) {
  if (!accuracy || accuracy.median_error_pct === null || accuracy.median_error_pct === undefined) {
    return null;
  }
  const pct = (v) => `${formatNumber(v)} %`;
  let text = `Recent wait estimates were within ${pct(accuracy.median_error_pct)} for half of the visitors`;
  if (accuracy.p90_error_pct !== null && accuracy.p90_error_pct !== undefined) {
    text += ` and within ${pct(accuracy.p90_error_pct)} for nine in ten`;
  }
  text += ".";
  if (accuracy.interval_hit_pct !== null && accuracy.interval_hit_pct !== undefined) {
    text += ` The range we give held for ${pct(accuracy.interval_hit_pct)} of them`;
    text += accuracy.samples ? ` (last ${formatNumber(accuracy.samples)} visitors).` : ".";
  }
  return text;
}

export function renderBoard(state) {
  const b = state.board;
  if (!b) {
    if (state.hello) {
      setText(ui.slots, `${state.hello.slots_free} of ${state.hello.slots_total} import slots free`);
    }
    return;
  }
  const mine = {
    known: state.known,
    position: state.phase === "queued" ? state.position : null,
    name: (state.username || "").toLowerCase(),
    username: state.username,
    still: reducedMotion.matches,
  };
  const key = JSON.stringify([b, [...mine.known], mine.position, mine.name, mine.still]);
  if (key === drawnKey) {
    return;
  }
  drawnKey = key;

  setText(
    ui.slots,
    `${b.slots_free} of ${b.slots_total} import ${b.slots_total === 1 ? "slot" : "slots"} free · ` +
      `${formatNumber(b.waiting_total)} waiting`,
  );

  const running = b.running.map((row) => runningRow(row, mine));
  if (!running.length) {
    running.push(emptyRow("Nothing is importing right now."));
  }
  ui.running.replaceChildren(...running);

  const waiting = b.waiting.map((row) => waitingRow(row, mine));
  if (!waiting.length) {
    waiting.push(emptyRow("Nobody is waiting."));
  }
  ui.waiting.replaceChildren(...waiting);

  const paused = Array.isArray(b.paused) ? b.paused : [];
  ui.paused.replaceChildren(...paused.map(pausedRow));
  show(ui.paused, paused.length > 0);

  const accuracy = accuracyText(b.eta_accuracy);
  show(ui.accuracy, accuracy !== null);
  if (accuracy !== null) {
    setText(ui.accuracy, accuracy);
  }

  const more = b.waiting_total - b.waiting.length;
  show(ui.more, more > 0);
  if (more > 0) {
    setText(ui.more, `+${formatNumber(more)} more waiting`);
  }
}
