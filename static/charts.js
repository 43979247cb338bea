// Small inline-SVG charts and tables. Every piece of data goes in as text or an attribute.

import { capitalize, formatDate, formatMonth, formatNumber, plural } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f5fa8", "#c2571a", "#2b7a4b", "#7b3fa0", "#a3293d", "#4d5b6b"];
const DASHES = ["", "7 4", "2 3", "10 3 2 3", "4 2", "1 4"];
let uid = 0;

function svgEl(name, attrs = {}, text = undefined) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function htmlEl(name, attrs = {}, text = undefined) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** The smallest "round" number at or above `value` (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k). */
function niceCeil(value) {
  if (value <= 0) {
    return 1;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (step * power >= value) {
      return step * power;
    }
  }
  return 10 * power;
}

/** A round step (1, 2, 5, 10, 20, 25, 50, 100 ...) at or above `value`. */
function niceStep(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) {
      return step * power;
    }
  }
  return 10 * power;
}

function chartWidth(container) {
  return Math.max(280, Math.floor(container.clientWidth || 600));
}

function newSvg(width, height, title, description) {
  const id = `chart-${++uid}`;
  const svg = svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-labelledby": `${id}-title ${id}-desc`,
    class: "chart",
  });
  svg.append(svgEl("title", { id: `${id}-title` }, title));
  svg.append(svgEl("desc", { id: `${id}-desc` }, description));
  return svg;
}

function dataTable(caption, headers, rows) {
  const details = htmlEl("details", { class: "chart-data" });
  details.append(htmlEl("summary", {}, "Show the numbers"));
  const wrap = htmlEl("div", { class: "table-scroll" });
  const table = htmlEl("table", { class: "numbers" });
  table.append(htmlEl("caption", { class: "visually-hidden" }, caption));
  const head = htmlEl("tr");
  for (const h of headers) {
    head.append(htmlEl("th", { scope: "col" }, h));
  }
  const thead = htmlEl("thead");
  thead.append(head);
  table.append(thead);
  const body = htmlEl("tbody");
  for (const row of rows) {
    const tr = htmlEl("tr");
    row.forEach((cell, i) => tr.append(htmlEl(i === 0 ? "th" : "td", i === 0 ? { scope: "row" } : {}, cell)));
    body.append(tr);
  }
  table.append(body);
  wrap.append(table);
  details.append(wrap);
  return details;
}

/** Games by month: one bar per month. `months` is [{month: "YYYY-MM", games}], ascending. */
export function drawMonthChart(container, months) {
  container.replaceChildren();
  if (!months.length) {
    container.append(htmlEl("p", { class: "empty" }, "No games yet."));
    return;
  }
  const width = chartWidth(container);
  const height = 240;
  const m = { top: 20, right: 10, bottom: 36, left: 48 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const max = Math.max(...months.map((x) => x.games));
  const top = niceCeil(max);
  const total = months.reduce((sum, x) => sum + x.games, 0);
  const first = formatMonth(months[0].month);
  const last = formatMonth(months[months.length - 1].month);
  const svg = newSvg(
    width,
    height,
    "Games by month",
    `${plural(total, "game", "games")} from ${first} to ${last}; the busiest month had ${formatNumber(max)}.`,
  );

  const grid = svgEl("g", { class: "grid" });
  for (const fraction of [0, 0.5, 1].filter((f) => Number.isInteger(top * f))) {
    const y = m.top + plotH - fraction * plotH;
    grid.append(svgEl("line", { x1: m.left, x2: width - m.right, y1: y, y2: y }));
    grid.append(
      svgEl("text", { x: m.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, formatNumber(top * fraction)),
    );
  }
  svg.append(grid);

  const band = plotW / months.length;
  const barW = Math.max(1, Math.min(48, band * 0.72));
  const labelEvery = Math.max(1, Math.ceil(months.length / Math.max(1, Math.floor(plotW / 64))));
  const bars = svgEl("g", { class: "bars" });
  months.forEach((item, i) => {
    const h = top ? (item.games / top) * plotH : 0;
    const x = m.left + i * band + (band - barW) / 2;
    const y = m.top + plotH - h;
    const rect = svgEl("rect", { x, y, width: barW, height: Math.max(h, item.games ? 1 : 0), class: "bar" });
    rect.append(svgEl("title", {}, `${formatMonth(item.month)}: ${plural(item.games, "game", "games")}`));
    bars.append(rect);
    if (band >= 34 && item.games) {
      bars.append(
        svgEl("text", { x: x + barW / 2, y: y - 5, "text-anchor": "middle", class: "value" }, formatNumber(item.games)),
      );
    }
    if (i % labelEvery === 0) {
      bars.append(
        svgEl(
          "text",
          { x: m.left + i * band + band / 2, y: height - m.bottom + 16, "text-anchor": "middle", class: "tick" },
          formatMonth(item.month, true),
        ),
      );
    }
  });
  svg.append(bars);
  svg.append(svgEl("line", { class: "axis", x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH }));
  container.append(svg);
  container.append(
    dataTable(
      "Games by month",
      ["Month", "Games"],
      months.map((x) => [formatMonth(x.month), formatNumber(x.games)]),
    ),
  );
}

/** Rating over time: one line (and its points) per time class. `points` is [{end_time, rating, time_class}]. */
export function drawRatingChart(container, points) {
  container.replaceChildren();
  if (!points.length) {
    container.append(htmlEl("p", { class: "empty" }, "No rated games yet."));
    return;
  }
  const groups = new Map();
  for (const p of points) {
    if (!groups.has(p.time_class)) {
      groups.set(p.time_class, []);
    }
    groups.get(p.time_class).push(p);
  }
  const series = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);

  const width = chartWidth(container);
  const height = 260;
  const m = { top: 16, right: 14, bottom: 36, left: 52 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const ratings = points.map((p) => p.rating);
  const low = Math.min(...ratings);
  const high = Math.max(...ratings);
  const step = niceStep(Math.max(high - low, 40) / 4);
  const lo = Math.floor(low / step) * step;
  const hi = Math.max(Math.ceil(high / step) * step, lo + step);
  const t0 = Math.min(...points.map((p) => p.end_time));
  const t1 = Math.max(...points.map((p) => p.end_time));
  const x = (t) => m.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * plotW : plotW / 2);
  const y = (r) => m.top + plotH - ((r - lo) / (hi - lo)) * plotH;

  const svg = newSvg(
    width,
    height,
    "Rating over time",
    `${plural(points.length, "rated game", "rated games")} from ${formatDate(t0)} to ${formatDate(t1)}, ` +
      `ratings between ${formatNumber(Math.min(...ratings))} and ${formatNumber(Math.max(...ratings))}.`,
  );
  const grid = svgEl("g", { class: "grid" });
  for (let r = lo; r <= hi + step / 2; r += step) {
    grid.append(svgEl("line", { x1: m.left, x2: width - m.right, y1: y(r), y2: y(r) }));
    grid.append(svgEl("text", { x: m.left - 6, y: y(r) + 4, "text-anchor": "end", class: "tick" }, formatNumber(r)));
  }
  const xTicks = t1 > t0 && plotW > 360 ? [t0, (t0 + t1) / 2, t1] : t1 > t0 ? [t0, t1] : [t0];
  xTicks.forEach((t, i) => {
    const anchor = xTicks.length === 1 ? "middle" : i === 0 ? "start" : i === xTicks.length - 1 ? "end" : "middle";
    grid.append(svgEl("text", { x: x(t), y: height - m.bottom + 18, "text-anchor": anchor, class: "tick" }, formatDate(t)));
  });
  svg.append(grid);
  svg.append(svgEl("line", { class: "axis", x1: m.left, x2: width - m.right, y1: m.top + plotH, y2: m.top + plotH }));

  const dots = points.length <= 800;
  const legend = htmlEl("ul", { class: "legend" });
  series.forEach(([timeClass, list], i) => {
    const colour = PALETTE[i % PALETTE.length];
    const dash = DASHES[i % DASHES.length];
    const name = capitalize(timeClass);
    const g = svgEl("g", { class: "series" });
    g.append(svgEl("title", {}, name));
    const line = svgEl("polyline", {
      points: list.map((p) => `${x(p.end_time).toFixed(1)},${y(p.rating).toFixed(1)}`).join(" "),
      fill: "none",
      stroke: colour,
      "stroke-width": 2,
      class: "line",
    });
    if (dash) {
      line.setAttribute("stroke-dasharray", dash);
    }
    g.append(line);
    if (dots || list.length === 1) {
      for (const p of list) {
        const dot = svgEl("circle", { cx: x(p.end_time), cy: y(p.rating), r: 3, fill: colour, class: "point" });
        dot.append(svgEl("title", {}, `${formatDate(p.end_time)} · ${name} · ${formatNumber(p.rating)}`));
        g.append(dot);
      }
    }
    svg.append(g);

    const item = htmlEl("li");
    const sample = svgEl("svg", { width: 28, height: 10, viewBox: "0 0 28 10", "aria-hidden": "true", focusable: "false" });
    const sampleLine = svgEl("line", { x1: 1, x2: 27, y1: 5, y2: 5, stroke: colour, "stroke-width": 2 });
    if (dash) {
      sampleLine.setAttribute("stroke-dasharray", dash);
    }
    sample.append(sampleLine);
    item.append(sample);
    const latest = list[list.length - 1].rating;
    item.append(
      document.createTextNode(` ${name}: ${plural(list.length, "game", "games")}, latest ${formatNumber(latest)}`),
    );
    legend.append(item);
  });
  container.append(svg);
  container.append(legend);
}

// Below this width (of the table's box) the split bar gets a row of its own, under the numbers.
const NARROW_TABLE_PX = 460;

function splitBar(group) {
  const total = group.win + group.draw + group.loss;
  const stack = htmlEl("div", { class: "stack", "aria-hidden": "true" });
  for (const [key, letter, word] of [
    ["win", "W", "wins"],
    ["draw", "D", "draws"],
    ["loss", "L", "losses"],
  ]) {
    const value = group[key];
    if (!value) {
      continue;
    }
    const seg = htmlEl("span", { class: `seg ${key}`, title: `${formatNumber(value)} ${word}` });
    seg.style.width = `${total ? (value / total) * 100 : 0}%`;
    seg.textContent = `${formatNumber(value)}${letter}`;
    stack.append(seg);
  }
  return stack;
}

/** A label that does not fit its segment is dropped whole, never cut ("424L" as "42"). */
function fitLabels(container) {
  for (const seg of container.querySelectorAll(".seg")) {
    if (seg.scrollWidth > seg.clientWidth) {
      seg.textContent = "";
    }
  }
}

function recordHead(groupLabel, narrow) {
  const head = htmlEl("tr");
  if (!narrow) {
    head.append(htmlEl("th", { scope: "col" }, groupLabel));
  }
  for (const [long, short] of [
    ["Wins", "W"],
    ["Draws", "D"],
    ["Losses", "L"],
    ["Games", "All"],
  ]) {
    // The short form is for narrow screens; screen readers always hear the long one.
    const th = htmlEl("th", { scope: "col", class: "num" });
    th.append(htmlEl("span", { class: "long" }, long), htmlEl("span", { class: "short", "aria-hidden": "true" }, short));
    head.append(th);
  }
  if (!narrow) {
    head.append(htmlEl("th", { scope: "col", class: "split" }, "Split"));
  }
  const thead = htmlEl("thead");
  thead.append(head);
  return thead;
}

function numberCells(group) {
  return [group.win, group.draw, group.loss, group.win + group.draw + group.loss].map((value) =>
    htmlEl("td", { class: "num" }, formatNumber(value)),
  );
}

/**
 * A narrow box gives each group three rows of its own: its name across the table, its numbers,
 * then its split bar across the table. Long names ("Correspondence") and five-digit counts then
 * never push the table past its box.
 */
function narrowGroup(group) {
  const body = htmlEl("tbody", { class: "group" });
  const nameRow = htmlEl("tr", { class: "name-row" });
  nameRow.append(htmlEl("th", { scope: "rowgroup", colspan: 4 }, group.name));
  const numbers = htmlEl("tr", { class: "numbers-row" });
  numbers.append(...numberCells(group));
  // The bar repeats the numbers above it, so it is hidden from screen readers.
  const barRow = htmlEl("tr", { class: "split-row", "aria-hidden": "true" });
  const cell = htmlEl("td", { colspan: 4 });
  cell.append(splitBar(group));
  barRow.append(cell);
  body.append(nameRow, numbers, barRow);
  return body;
}

function wideRow(group) {
  const tr = htmlEl("tr");
  tr.append(htmlEl("th", { scope: "row" }, group.name), ...numberCells(group));
  const cell = htmlEl("td", { class: "split" });
  cell.append(splitBar(group));
  tr.append(cell);
  return tr;
}

/** Wins, draws and losses per group as a table with numbers and a stacked bar per group. */
export function drawRecordTable(container, caption, groupLabel, groups) {
  container.replaceChildren();
  if (!groups.length) {
    container.append(htmlEl("p", { class: "empty" }, "No games yet."));
    return;
  }
  const narrow = (container.clientWidth || 600) < NARROW_TABLE_PX;
  const wrap = htmlEl("div", { class: "table-scroll" });
  const table = htmlEl("table", { class: narrow ? "record narrow" : "record" });
  table.append(htmlEl("caption", {}, caption), recordHead(groupLabel, narrow));
  if (narrow) {
    table.append(...groups.map(narrowGroup));
  } else {
    const body = htmlEl("tbody");
    body.append(...groups.map(wideRow));
    table.append(body);
  }
  wrap.append(table);
  container.append(wrap);
  fitLabels(container);
}
