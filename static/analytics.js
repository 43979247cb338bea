// The charts of one player's stored games, fetched once an import is done.

import { drawMonthChart, drawRatingChart, drawRecordTable } from "./charts.js";
import { $, setText, show } from "./dom.js";
import { capitalize, plural, siteName } from "./format.js";

const ui = {
  panel: $("analytics"),
  heading: $("analytics-heading"),
  status: $("analytics-status"),
  retry: $("analytics-retry"),
  body: $("analytics-body"),
  chartMonths: $("chart-months"),
  tableColour: $("table-colour"),
  tableTime: $("table-time"),
  chartRating: $("chart-rating"),
  includeAll: $("include-all"),
};

let summary = null;
let summaryFor = null; // {source, username} of the last request, for the retry button and the filter
let request = 0; // bumped per request, so a late answer for an older one is dropped

export function hideAnalytics() {
  request += 1;
  summary = null;
  show(ui.panel, false);
}

export async function loadAnalytics(source, username) {
  const mine = ++request;
  summary = null;
  summaryFor = { source, username };
  show(ui.panel, true);
  show(ui.body, false);
  show(ui.retry, false);
  setText(ui.heading, `Games of ${username} on ${siteName(source)}`);
  setText(ui.status, "Loading the charts…");
  try {
    // Standard chess by default; variants and games from a set position only when asked for.
    const games = ui.includeAll.checked ? "?games=all" : "";
    const url = `/api/players/${encodeURIComponent(source)}/${encodeURIComponent(username.toLowerCase())}/summary${games}`;
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    const body = await response.json();
    if (mine !== request) {
      return;
    }
    summary = body;
    drawAnalytics();
  } catch {
    if (mine !== request) {
      return;
    }
    setText(ui.status, "We could not load the charts just now.");
    show(ui.retry, true);
  }
}

function reload() {
  if (summaryFor) {
    loadAnalytics(summaryFor.source, summaryFor.username);
  }
}

ui.retry.addEventListener("click", reload);
ui.includeAll.addEventListener("change", reload);

function records(entries) {
  return entries.map(([name, r]) => ({ name, win: r.win || 0, draw: r.draw || 0, loss: r.loss || 0 }));
}

function drawAnalytics() {
  const s = summary;
  if (!s) {
    return;
  }
  setText(
    ui.status,
    ui.includeAll.checked
      ? `${plural(s.games, "game", "games")} stored for this player, variants and set-up positions included.`
      : `${plural(s.games, "game", "games")} of standard chess stored for this player.`,
  );
  show(ui.body, true);
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

// The charts are sized to their box: redraw after a width change settles.
// Height-only resizes (a mobile URL bar sliding away) are ignored.
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
