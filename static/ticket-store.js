// The import ticket in localStorage, so a reload or a new tab picks the import up again.

const STORE_KEY = "importHub.ticket";

export function loadTicket() {
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

export function saveTicket({ ticket, source, username }) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({ ticket, source, username }));
  } catch {
    // storage full or blocked: the import still runs, it just cannot survive a reload
  }
}

export function forgetTicket() {
  try {
    localStorage.removeItem(STORE_KEY);
  } catch {
    // nothing to forget
  }
}
