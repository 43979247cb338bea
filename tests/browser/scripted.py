"""A scripted stand-in for the hub's socket: a test fixture that says what a test scripts."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

from playwright.async_api import Page, WebSocketRoute

from tests.browser.conftest import Pages, page_url, start_import
from tests.procs import Proc

# Keeps every text the live region takes, with the page's own clock, from before the page runs.
RECORD_ANNOUNCEMENTS = """
(() => {
  window.__said = [];
  const watch = (region) => new MutationObserver(() => {
    const text = region.textContent.replace(/\\u00a0$/, "");
    if (text) window.__said.push({ text, at: performance.now() });
  }).observe(region, { childList: true, characterData: true, subtree: true });
  const find = new MutationObserver(() => {
    const region = document.getElementById("announcer");
    if (region) { find.disconnect(); watch(region); }
  });
  find.observe(document, { childList: true, subtree: true });
})();
"""


# The page's visibility is the test's: `__hide()` and `__show()` flip it and tell the page.
VISIBILITY = """
(() => {
  window.__visibility = "visible";
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get() { return window.__visibility; } });
  Object.defineProperty(Document.prototype, "hidden", {
    configurable: true, get() { return window.__visibility === "hidden"; } });
  const flip = (to) => () => {
    window.__visibility = to;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__hide = flip("hidden");
  window.__show = flip("visible");
})();
"""

# Every notification the page makes is recorded instead of shown; permission requests are counted
# and, when `__answer` is set, answered with it (as a visitor clicking Allow or Block would).
NOTIFICATIONS = """
(() => {
  const Native = window.Notification;
  window.__notifications = [];
  window.__asked = 0;
  window.Notification = class {
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body || "", tag: options.tag || "",
                                    hidden: document.visibilityState === "hidden" });
    }
    static get permission() { return window.__permission || Native.permission; }
    static async requestPermission() {
      window.__asked += 1;
      if (window.__answer) { window.__permission = window.__answer; return window.__answer; }
      return Native.requestPermission();
    }
    close() {}
  };
})();
"""


class ScriptedHub:
    """A test fixture, not the hub: stands in for the hub's socket and says exactly what a test
    scripts, so the page's handling of each documented message is tested deterministically,
    including protocol additions whose backend lives elsewhere."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def accept(self, ws: WebSocketRoute) -> None:
        self.routes.append(ws)
        ws.on_message(self._received)
        self.send({"type": "hello", "protocol": 1, "slots_total": 2, "slots_free": 0, "queued": 3})

    def _received(self, text: str | bytes) -> None:
        self.received.append(json.loads(text))
        self.arrived.set()

    def send(self, message: dict[str, Any]) -> None:
        self.routes[-1].send(json.dumps(message))

    async def heard(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first message of `kind` the page sent and no earlier call took, waiting for it."""

        async def first() -> dict[str, Any]:
            while True:
                for message in self.received:
                    if message["type"] == kind:
                        self.received.remove(message)
                        return message
                self.arrived.clear()
                await self.arrived.wait()

        try:
            return await asyncio.wait_for(first(), timeout)
        except TimeoutError:
            raise AssertionError(f"the page never sent {kind!r}; it sent {self.received}") from None


async def said(page: Page) -> list[dict[str, Any]]:
    """Every text the live region took since the page loaded (see RECORD_ANNOUNCEMENTS)."""
    result: list[dict[str, Any]] = await page.evaluate("window.__said")
    return result


async def notifications(page: Page) -> list[dict[str, Any]]:
    """Every notification the page made (see NOTIFICATIONS)."""
    result: list[dict[str, Any]] = await page.evaluate("window.__notifications")
    return result


async def scripted_page(
    pages: Pages, hub: Proc, fake: ScriptedHub, init: Sequence[str] = (), **options: Any
) -> Page:
    """A page served by `hub` whose socket is the scripted hub and whose clock the test moves;
    `init` scripts run before the page's own, `options` go to the browser context."""
    context = await pages.context(**options)
    await context.route_web_socket(re.compile(r"/ws$"), fake.accept)
    for script in (RECORD_ANNOUNCEMENTS, *init):
        await context.add_init_script(script)
    page = await pages.new(context=context)
    start = datetime.datetime(2026, 3, 1, 12, 0, 0)
    await page.clock.install(time=start)
    await page.clock.pause_at(start + datetime.timedelta(seconds=1))
    await page.goto(page_url(hub))
    await fake.heard("watch_queue")
    return page


async def scripted_ticket(
    page: Page,
    fake: ScriptedHub,
    name: str = "Heard_1",
    source: str = "chesscom",
    import_id: str = "i1",
) -> dict[str, Any]:
    """The visitor asks for `name`; the scripted hub answers with a ticket. Returns the request."""
    await start_import(page, name, source)
    request = await fake.heard("import")
    fake.send(
        {
            "type": "ticket",
            "ticket": f"T-{import_id}",
            "import_id": import_id,
            "source": source,
            "username": name.lower(),
            "joined": False,
        }
    )
    return request


def queued(position: int, eta_s: float = 600.0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "queued",
        "import_id": "i1",
        "position": position,
        "ahead": position - 1,
        "eta_s": eta_s,
        "slots_total": 2,
        "slots_free": 0,
        **extra,
    }
