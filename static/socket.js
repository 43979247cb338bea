// One WebSocket to the hub, reopened with exponential backoff whenever it drops.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;
const RESTART_DELAY_MS = 250; // the hub closed with 1012: it is restarting right now

export function hubUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

/**
 * Calls:
 *   onOpen()                 - a fresh connection is ready; (re)send watch_queue and resume
 *   onMessage(message)       - one parsed hub message
 *   onState(state, detail)   - "connecting" | "open" | "reconnecting"
 *                              (detail.inMs: wait before the next try, detail.code: why it closed)
 */
export class HubSocket {
  constructor({ url = hubUrl(), onOpen, onMessage, onState }) {
    this.url = url;
    this.onOpen = onOpen || (() => {});
    this.onMessage = onMessage || (() => {});
    this.onState = onState || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.nextAt = 0;
    this.stopped = false;
    this.lastClose = null; // the close code of the last lost connection
    window.addEventListener("online", () => this.retryNow());
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.timer = null;
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting", {
      attempt: this.attempt,
      inMs: 0,
      code: this.lastClose,
    });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) {
        return;
      }
      this.onState("open", {});
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws || typeof event.data !== "string") {
        return;
      }
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to understand; the hub only sends JSON
      }
      if (message && typeof message.type === "string") {
        if (message.type === "hello") {
          this.attempt = 0; // a hub that greets us is healthy again
        }
        this.onMessage(message);
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) {
        return;
      }
      this.ws = null;
      if (!this.stopped) {
        this.lastClose = event.code;
        this.schedule(event.code === 1012 ? RESTART_DELAY_MS : null);
      }
    });
    // An "error" is always followed by "close", which does the work.
    ws.addEventListener("error", () => {});
  }

  schedule(delayMs = null) {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const jittered = delayMs ?? Math.round(base * (0.8 + Math.random() * 0.4));
    const wait = Math.min(MAX_DELAY_MS, jittered);
    this.attempt += 1;
    this.nextAt = Date.now() + wait;
    this.onState("reconnecting", { attempt: this.attempt, inMs: wait, code: this.lastClose });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /** Skip the rest of the backoff (the "Retry now" button, or the browser came online). */
  retryNow() {
    if (this.ws === null && !this.stopped) {
      this.connect();
    }
  }

  /** Send one message; false when the socket is not open (the caller keeps its state). */
  send(message) {
    if (!this.isOpen) {
      return false;
    }
    this.ws.send(JSON.stringify(message));
    return true;
  }
}
