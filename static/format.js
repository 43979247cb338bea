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

/** "bullet" -> "Bullet" */
export function capitalize(text) {
  const s = String(text);
  return s.charAt(0).toUpperCase() + s.slice(1);
}
