// Human wording for numbers, durations, sites and months.

const numbers = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 1432 -> "1,432" */
export function formatNumber(value) {
  return numbers.format(Math.round(Number(value) || 0));
}

/** "1 game", "2 games" */
export function plural(count, one, many) {
  return `${formatNumber(count)} ${count === 1 ? one : many}`;
}

/** A wait at or above this many seconds is "unknown" (the hub sends 1e9 for "no idea"). */
export const UNKNOWN_WAIT_S = 1e8;

/** Seconds as a plain rounded duration: "45 s", "1 min 20 s", "2 h 5 min". */
export function formatDuration(seconds) {
  let s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    const minutes = Math.floor(s / 60);
    const rest = s % 60;
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  s = Math.round(s / 60) * 60;
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

/** An estimate: "about 1 min 20 s", "any moment now", "unknown". */
export function formatEstimate(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) {
    return "unknown";
  }
  if (seconds >= UNKNOWN_WAIT_S) {
    return "unknown";
  }
  if (seconds < 1) {
    return "any moment now";
  }
  return `about ${formatDuration(seconds)}`;
}

/** Whole units for an interval's ends: seconds below a minute, minutes below an hour, then hours. */
function rangeUnit(seconds) {
  if (seconds < 60) {
    return { size: 1, name: "s" };
  }
  if (seconds < 3600) {
    return { size: 60, name: "min" };
  }
  return { size: 3600, name: "h" };
}

/**
 * An interval of waits: "about 3–5 min", "about 40 s – 2 min", "up to 30 s", "any moment now".
 * The low end is rounded down and the high end up, so the words never claim more than the hub.
 */
export function formatRange(low, high) {
  if (![low, high].every((v) => v !== null && v !== undefined && Number.isFinite(Number(v)))) {
    return "unknown";
  }
  if (high >= UNKNOWN_WAIT_S) {
    return "unknown";
  }
  const lo = Math.max(0, Number(low));
  const hi = Math.max(lo, Number(high));
  if (hi < 1) {
    return "any moment now";
  }
  const top = rangeUnit(hi);
  const upper = Math.ceil(hi / top.size);
  if (lo < 1) {
    return `up to ${upper} ${top.name}`;
  }
  const bottom = rangeUnit(lo);
  const lower = Math.max(1, Math.floor(lo / bottom.size));
  if (bottom.name !== top.name) {
    return `about ${lower} ${bottom.name} – ${upper} ${top.name}`;
  }
  if (lower >= upper) {
    return `about ${upper} ${top.name}`;
  }
  return `about ${lower}–${upper} ${top.name}`;
}

/** "1st", "2nd", "3rd", "11th", "22nd" */
export function ordinal(n) {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
  return `${formatNumber(n)}${suffix}`;
}

const SITES = { chesscom: "chess.com", lichess: "lichess" };

/** "chesscom" -> "chess.com" */
export function siteName(source) {
  return SITES[source] || String(source);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "2026-09" -> "Sep 2026" (or "Sep '26" when short). */
export function formatMonth(text, short = false) {
  const match = /^(\d{4})-(\d{2})$/.exec(String(text));
  if (!match) {
    return String(text);
  }
  const name = MONTHS[Number(match[2]) - 1] || match[2];
  return short ? `${name} '${match[1].slice(2)}` : `${name} ${match[1]}`;
}

/** Unix seconds -> "3 Sep 2026" (UTC). */
export function formatDate(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });

/** Unix seconds -> "14:05" in the visitor's time zone. */
export function formatClock(unixSeconds) {
  return clock.format(new Date(unixSeconds * 1000));
}

/** "bullet" -> "Bullet" */
export function capitalize(text) {
  const s = String(text);
  return s.charAt(0).toUpperCase() + s.slice(1);
}
