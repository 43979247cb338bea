// "Notify me": an opt-in browser notification when a hidden tab's import starts, ends or fails.

import { $, setText } from "./dom.js";

const STORE_KEY = "importHub.notify";

const ui = {
  button: $("notify-button"),
  note: $("notify-note"),
};

function stored() {
  try {
    return localStorage.getItem(STORE_KEY) === "on";
  } catch {
    return false;
  }
}

function store(on) {
  try {
    localStorage.setItem(STORE_KEY, on ? "on" : "off");
  } catch {
    // blocked storage: the choice lasts until the page is closed
  }
}

let wanted = stored();
let broken = false; // `new Notification` threw: this browser only notifies from a service worker
let dismissed = false; // the last permission prompt was closed without an answer

/** Why this page cannot notify, or null when it can (given permission). */
function obstacle() {
  if (!("Notification" in window) || broken) {
    return "This browser cannot show notifications from this page, so keep the tab in view.";
  }
  if (!window.isSecureContext) {
    return "Notifications need a secure (https) connection to this page.";
  }
  if (Notification.permission === "denied") {
    return "Notifications are blocked for this site in your browser's settings.";
  }
  return null;
}

function active() {
  return wanted && obstacle() === null && Notification.permission === "granted";
}

export function renderNotify() {
  const why = obstacle();
  ui.button.disabled = why !== null;
  ui.button.setAttribute("aria-pressed", String(active()));
  if (why !== null) {
    setText(ui.note, why);
  } else if (active()) {
    setText(ui.note, "On: you get a notification when your import starts, finishes or fails while this tab is hidden.");
  } else if (dismissed) {
    setText(ui.note, "You closed the browser's question without answering; press Notify me to be asked again.");
  } else {
    setText(ui.note, "Get a notification when your import starts, finishes or fails while this tab is hidden.");
  }
}

// Permission is asked for here, after a click, and never on load.
ui.button.addEventListener("click", async () => {
  if (obstacle() !== null) {
    renderNotify();
    return;
  }
  if (active()) {
    wanted = false;
    store(false);
    renderNotify();
    return;
  }
  let permission = Notification.permission;
  if (permission === "default") {
    try {
      permission = await Notification.requestPermission();
    } catch {
      permission = Notification.permission;
    }
  }
  dismissed = permission === "default";
  wanted = permission === "granted";
  store(wanted);
  renderNotify();
});

/** Raises a notification if the visitor asked for them and is looking elsewhere. */
export function notify(title, body, tag) {
  if (!active() || document.visibilityState !== "hidden") {
    return;
  }
  try {
    // One notification per import, replaced as it moves on; renotify makes each one heard.
    new Notification(title, { body, tag, renotify: true, lang: "en" });
  } catch {
    broken = true;
    renderNotify();
  }
}
