"""Real Chromium (Debian's build) driven by Playwright, watched for console problems and dialogs."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    async_playwright,
    expect,
)

from tests.conftest import HubFactory
from tests.procs import Proc

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1280, "height": 900}
# axe-core from npm (tests/browser/package.json): `npm ci --prefix tests/browser`, as .ci/run does.
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
AXE_TIMEOUT_S = 60.0


LONG = 60_000  # ms: imports against the slow simulator take a few seconds each


def page_url(hub: Proc) -> str:
    return hub.url + "/"


async def start_import(page: Page, username: str, source: str = "chesscom") -> None:
    await page.get_by_label("Site").select_option(source)
    await page.get_by_label("Username").fill(username)
    await page.get_by_role("button", name="Import More Games").click()


async def finished(page: Page, timeout: float = LONG) -> None:
    await expect(page.locator("#status-headline")).to_have_text("Import finished", timeout=timeout)


async def assert_record_tables_fit(page: Page) -> None:
    """The win/draw/loss tables stay inside their box and no split-bar label is cut."""
    tables = await page.evaluate(
        """() => [...document.querySelectorAll("table.record")].map((t) => ({
             table: t.scrollWidth, box: t.closest(".chart-box").clientWidth,
             cut: [...t.querySelectorAll(".seg")].filter((s) => s.scrollWidth > s.clientWidth)
                   .map((s) => s.textContent) }))"""
    )
    assert len(tables) == 2, tables
    for table in tables:
        assert table["table"] <= table["box"], tables
        assert table["cut"] == [], tables


def screenshot_path(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI") == "true":  # CI installs it: its absence is a failure there
            pytest.fail(f"no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class Pages:
    """Opens pages, each in a fresh context unless told otherwise, and records what went wrong.

    Every console error or warning, uncaught page error and dialog is a problem;
    a test with any problem fails.
    """

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self._problems_seen = 0
        self._dialogs_seen = 0

    async def context(
        self, width: int = DESKTOP["width"], height: int = DESKTOP["height"], **options: Any
    ) -> BrowserContext:
        """A fresh context; `options` go to Playwright (permissions, reduced_motion…)."""
        context = await self.browser.new_context(
            viewport={"width": width, "height": height}, **options
        )
        self.contexts.append(context)
        return context

    async def new(
        self,
        url: str | None = None,
        *,
        context: BrowserContext | None = None,
        width: int = DESKTOP["width"],
        height: int = DESKTOP["height"],
    ) -> Page:
        if context is None:
            context = await self.context(width, height)
        page = await context.new_page()
        label = f"page {len(self.contexts)}.{len(context.pages)}"

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                where = message.location.get("url", "")
                self.problems.append(f"{label} console {message.type}: {message.text} ({where})")

        def on_page_error(error: Any) -> None:
            self.problems.append(f"{label} page error: {error}")

        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{label} {dialog.type} dialog: {dialog.message!r}")
            await dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("dialog", on_dialog)
        if url is not None:
            await page.goto(url)
        return page

    def check(self) -> None:
        """Raise for dialogs and problems not reported yet (each is reported once)."""
        dialogs, problems = self.dialogs[self._dialogs_seen :], self.problems[self._problems_seen :]
        self._dialogs_seen, self._problems_seen = len(self.dialogs), len(self.problems)
        assert not dialogs, f"dialogs opened: {dialogs}"
        assert not problems, "console or page problems:\n" + "\n".join(problems)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()


@pytest.fixture
async def pages(browser: Browser, hub_factory: HubFactory) -> AsyncIterator[Pages]:
    # Depends on hub_factory so that every hub outlives the pages talking to it:
    # a hub stopping under an open page would (rightly) log a socket error there.
    watcher = Pages(browser)
    yield watcher
    await watcher.close()
    watcher.check()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail the test itself (not just its teardown) when a page logged a problem."""
    result = yield
    funcargs = getattr(item, "funcargs", {})
    watcher = funcargs.get("pages")
    if isinstance(watcher, Pages):
        watcher.check()
    return result


AxeCheck = Callable[[Page, str], Awaitable[None]]


@pytest.fixture
def axe() -> AxeCheck:
    """`await axe(page, label)` fails on any axe-core violation of impact serious or critical."""
    if not AXE.exists():
        why = f"no axe-core at {AXE}; run `npm ci --prefix tests/browser`"
        if os.environ.get("CI") == "true":  # .ci/run installs it: its absence is a failure there
            pytest.fail(why)
        pytest.skip(why)
    source = AXE.read_text()

    async def check(page: Page, label: str) -> None:
        # Evaluated, not added as a <script>: the page's CSP rightly refuses inline scripts.
        if not await page.evaluate("typeof window.axe === 'object'"):
            await page.evaluate(source)
        run = page.evaluate(
            """async () => {
              const result = await axe.run(document, { resultTypes: ["violations"] });
              return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                               nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
            }"""
        )
        try:
            violations = await asyncio.wait_for(run, AXE_TIMEOUT_S)
        except TimeoutError:
            # axe waits on timers: a page clock that is paused (page.clock) never lets it end.
            raise AssertionError(f"axe-core did not finish in the {label} state") from None
        assert violations == [], f"axe-core in the {label} state:\n" + json.dumps(
            violations, indent=1
        )

    return check
