// The receipt line after an import: every game is here, or what could not be read and a Retry.

import { $, setText, show } from "./dom.js";
import { formatNumber, plural, siteName } from "./format.js";

const ui = {
  box: $("receipt"),
  line: $("receipt-line"),
  repair: $("repair-button"),
};

// What one unit of reading is on each site: a month of archives, or a window of the export.
const UNITS = {
  chesscom: ["month", "months"],
  lichess: ["part of the export", "parts of the export"],
};

let shown = null; // {source, username, done}
let request = 0;

/** Wires the Retry button: `repair(source, username)` sends the repair import. */
export function bindRepair(repair) {
  ui.repair.addEventListener("click", () => {
    if (shown) {
      repair(shown.source, shown.username);
    }
  });
}

export function hideReceipt() {
  request += 1;
  shown = null;
  show(ui.box, false);
}

/** "2 months could not be read." */
export function gapsText(gaps, source) {
  const [one, many] = UNITS[source] || ["part", "parts"];
  return `${plural(gaps, one, many)} could not be read.`;
}

function draw(done, source, receipt) {
  const site = siteName(source);
  if (done.complete) {
    const total = receipt ? receipt.stored_total : done.games_total;
    const counted = receipt && receipt.site && receipt.site.count !== null && receipt.site.count !== undefined;
    let text = `All ${formatNumber(total)} games imported ✓`;
    if (counted) {
      const what = receipt.site.count !== total && receipt.site.what ? ` ${receipt.site.what}` : "";
      text += ` — ${site} counts ${formatNumber(receipt.site.count)}${what}`;
    }
    setText(ui.line, text);
    show(ui.repair, false);
    ui.box.className = "receipt complete";
    return;
  }
  const gaps = receipt && Array.isArray(receipt.gaps) ? receipt.gaps.length : done.gaps || 0;
  if (gaps > 0) {
    setText(ui.line, gapsText(gaps, source));
    setText(ui.repair, "Retry them");
  } else if (receipt && receipt.site && receipt.site.count !== null && receipt.stored) {
    const what = receipt.site.what ? ` ${receipt.site.what}` : "";
    setText(
      ui.line,
      `Some games may be missing: ${site} counts ${formatNumber(receipt.site.count)}${what}, ` +
        `we have ${formatNumber(receipt.stored.count)}.`,
    );
    setText(ui.repair, "Read them again");
  } else {
    setText(ui.line, "Some games may be missing.");
    setText(ui.repair, "Read them again");
  }
  show(ui.repair, true);
  ui.box.className = "receipt gaps";
}

/** Shows the line from `done` at once, then with the site's own count once the receipt answers. */
export async function showReceipt(done, source, username) {
  const mine = ++request;
  if (typeof done.complete !== "boolean") {
    // A hub without receipts: nothing to prove either way.
    shown = null;
    show(ui.box, false);
    return;
  }
  shown = { source, username, done };
  draw(done, source, null);
  show(ui.box, true);
  try {
    const url = `/api/players/${encodeURIComponent(source)}/${encodeURIComponent(username.toLowerCase())}/receipt`;
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      return;
    }
    const receipt = await response.json();
    if (mine === request) {
      draw(done, source, receipt);
    }
  } catch {
    // the line from `done` stands on its own
  }
}
