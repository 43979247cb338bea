// The live queue board: free slots, who is importing and who is waiting.

import { $, setText, show } from "./dom.js";
import { formatNumber, siteName } from "./format.js";

const ui = {
  panel: $("board-panel"),
  slots: $("board-slots"),
  running: $("board-running"),
  waiting: $("board-waiting"),
  more: $("board-more"),
  stale: $("board-stale"),
};

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

function who(row) {
  const node = document.createElement("span");
  node.className = "who";
  node.textContent = `${row.player} · ${siteName(row.source)}`;
  return node;
}

function emptyRow(text) {
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = text;
  return li;
}

function runningRow(row, mine) {
  const li = document.createElement("li");
  li.className = "board-row";
  const own = Boolean(mine.importId) && row.import_id === mine.importId;
  if (own) {
    li.classList.add("mine");
    li.append(badge());
  }
  li.append(who(row));
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
}

function waitingRow(row, mine) {
  const li = document.createElement("li");
  li.className = "board-row";
  // Waiting rows carry no import id, so ours is found by place and name.
  const own = mine.position !== null && row.position === mine.position && row.player.toLowerCase() === mine.name;
  const pos = document.createElement("span");
  pos.className = "pos";
  pos.textContent = `#${row.position}`;
  li.append(pos);
  if (own) {
    li.classList.add("mine");
    li.append(badge());
  }
  li.append(who(row));
  return li;
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
    importId: state.importId,
    position: state.phase === "queued" ? state.position : null,
    name: (state.username || "").toLowerCase(),
  };
  const key = JSON.stringify([b, mine]);
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

  const more = b.waiting_total - b.waiting.length;
  show(ui.more, more > 0);
  if (more > 0) {
    setText(ui.more, `+${formatNumber(more)} more waiting`);
  }
}
