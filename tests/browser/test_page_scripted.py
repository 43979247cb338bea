"""The page's handling of this round's protocol additions, driven by the scripted hub fixture.

The socket is `ScriptedHub` (a test fixture speaking the documented protocol) and the receipt
and summary answers are routed in the test, so each message's rendering is tested exactly:
`paused`, `eta_low_s`/`eta_high_s`, the board's `eta_accuracy`, `paused` and `import_id` on
waiting rows, `error` with `import_id`, `done.complete`/`gaps` and the receipt. Once their
backend is merged these can move to the real hub; the page itself is served by a real hub.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Route, expect

from tests.browser.conftest import (
    AxeCheck,
    Pages,
    assert_record_tables_fit,
    screenshot_path,
    start_import,
)
from tests.browser.scripted import (
    NOTIFICATIONS,
    VISIBILITY,
    ScriptedHub,
    notifications,
    queued,
    said,
    scripted_page,
    scripted_ticket,
)
from tests.conftest import HubFactory
from tests.procs import Proc

pytestmark = pytest.mark.browser

DASH = "\u2013"  # the en dash the page puts in a range of minutes
PAUSED = {"reason": "chess.com is not answering", "since": 1772366400.0}


def board(
    running: list[dict[str, Any]] | None = None,
    waiting: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    rows = waiting or []
    return {
        "type": "queue",
        "slots_total": 2,
        "slots_free": 0,
        "running": running or [],
        "waiting": rows,
        "waiting_total": len(rows),
        "eta_accuracy": {
            "samples": 5,
            "median_error_pct": None,
            "p90_error_pct": None,
            "interval_hit_pct": None,
        },
        "paused": [],
        **extra,
    }


def done(import_id: str = "i1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "done",
        "import_id": import_id,
        "games_new": 1234,
        "games_total": 1234,
        "pages": 13,
        "duration_s": 40.0,
        **extra,
    }


def answer(bodies: dict[str, Any], seen: list[str]) -> Callable[[Route], Any]:
    """A route handler answering JSON by the last path segment ('receipt', 'summary')."""

    async def handle(route: Route) -> None:
        url = route.request.url
        seen.append(url)
        kind = url.split("?")[0].rsplit("/", 1)[-1]
        await route.fulfill(
            status=200, content_type="application/json", body=json.dumps(bodies[kind])
        )

    return handle


async def test_paused_source_keeps_the_place_and_holds_the_estimate(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    await scripted_ticket(page, fake)
    eta, notice = page.locator("#queue-eta"), page.locator("#queue-paused")

    # The interval, counted down like the single estimate was.
    fake.send(queued(3, eta_s=240, eta_low_s=180, eta_high_s=300))
    await expect(eta).to_have_text(f"about 3{DASH}5 min")
    await expect(notice).to_be_hidden()
    await page.clock.run_for(60_000)
    await expect(eta).to_have_text(f"about 2{DASH}4 min")

    fake.send(queued(3, eta_s=240, eta_low_s=180, eta_high_s=300, paused=PAUSED))
    await expect(notice).to_have_text(
        "chess.com imports are paused: chess.com is not answering. Your place is kept."
    )
    await expect(eta).to_have_text(f"about 3{DASH}5 min once imports resume")
    await expect(page.locator("#status-headline")).to_have_text("You are #3 in line")
    await page.clock.run_for(120_000)
    await expect(eta).to_have_text(f"about 3{DASH}5 min once imports resume")  # not counting down
    assert (await said(page))[-1]["text"] == (
        "chess.com imports are paused: chess.com is not answering. Your place is kept."
    )

    # The board shows every paused source, for every watcher.
    fake.send(board(paused=[{"source": "chesscom", **PAUSED}]))
    paused = page.locator("#board-paused li")
    await expect(paused).to_have_count(1)
    await expect(paused).to_contain_text("chess.com imports are paused: chess.com is not answering")
    fake.send(board())
    await expect(page.locator("#board-paused")).to_be_hidden()

    fake.send(queued(3, eta_s=200, eta_low_s=150, eta_high_s=260))
    await expect(notice).to_be_hidden()
    await expect(eta).to_have_text(f"about 2{DASH}5 min")
    await page.clock.run_for(30_000)
    await expect(eta).to_have_text(f"about 2{DASH}4 min")
    assert (await said(page))[-1]["text"] == "chess.com imports have resumed."


async def test_board_marks_own_rows_by_import_id_and_names_them_from_tickets(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    other = {"position": 1, "import_id": "w1", "source": "lichess", "player": "ab…"}
    ours = {"position": 2, "import_id": "i1", "source": "chesscom", "player": "he…"}

    # The board arrives before the ticket: our row is just another masked row for now ...
    await start_import(page, "Heard_1")
    await fake.heard("import")
    fake.send(board(waiting=[other, ours]))
    rows = page.locator("#board-waiting li")
    await expect(rows.nth(1)).to_contain_text("he… · chess.com")
    await expect(page.locator("#board-waiting li.mine")).to_have_count(0)
    await expect(page.locator("#board-accuracy")).to_be_hidden()  # too few samples yet

    # ... and is drawn again as ours once the ticket names it: "You", with the name typed.
    fake.send(
        {
            "type": "ticket",
            "ticket": "T1",
            "import_id": "i1",
            "source": "chesscom",
            "username": "heard_1",
            "joined": False,
        }
    )
    mine = page.locator("#board-waiting li.mine")
    await expect(mine).to_have_count(1)
    await expect(mine).to_contain_text("#2")
    await expect(mine.locator(".you")).to_have_text("You")
    await expect(mine).to_contain_text("Heard_1 · chess.com")
    await expect(mine).not_to_contain_text("he…")
    await expect(rows.first).to_contain_text("ab… · lichess")
    await expect(rows.first).not_to_contain_text("You")

    # Running rows too.
    fake.send({"type": "started", "import_id": "i1", "waited_s": 12.0})
    fake.send(
        board(
            running=[
                {
                    "import_id": "x9",
                    "source": "lichess",
                    "player": "zz…",
                    "page": 3,
                    "pages": 10,
                },
                {**ours, "page": 1, "pages": 4},
            ],
            waiting=[other],
        )
    )
    running = page.locator("#board-running li.mine")
    await expect(running).to_contain_text("Heard_1 · chess.com")
    await expect(running.locator("progress")).to_have_attribute("aria-label", "Your import")
    await expect(page.locator("#board-running li").first).to_contain_text("zz… · lichess")

    # How good recent estimates were, under the board, once the hub has enough of them.
    accuracy = {
        "samples": 200,
        "median_error_pct": 12,
        "p90_error_pct": 30,
        "interval_hit_pct": 81,
    }
    fake.send(board(eta_accuracy=accuracy))
    await expect(page.locator("#board-accuracy")).to_have_text(
        "Recent wait estimates were within 12 % for half of the visitors and within 30 % "
        "for nine in ten. The range we give held for 81 % of them (last 200 visitors)."
    )


async def test_refusals_are_notices_not_username_errors(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    await start_import(page, "Fourth_tab")
    await fake.heard("import")
    fake.send(
        {
            "type": "error",
            "code": "too_many_imports",
            "message": "At most 3 imports may wait or run for one visitor at a time.",
        }
    )
    notice = page.locator("#form-notice")
    text = (
        "This import was not started. At most 3 imports may wait or run for one visitor at a "
        "time. Imports in your other tabs count too; another import can start as soon as one "
        "of yours ends."
    )
    await expect(notice).to_have_text(text)
    await expect(notice).to_have_class("notice")
    await expect(page.locator("#username-error")).to_have_text("")
    await expect(page.get_by_label("Username")).not_to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#status-panel")).to_be_hidden()
    await expect(page.get_by_role("button", name="Import More Games")).to_be_enabled()
    assert (await said(page))[-1]["text"] == text
    await page.screenshot(path=screenshot_path("notice-too-many"))

    # Typing a name again puts it away; a bad name is still a field error.
    await page.get_by_label("Username").fill("x")
    await expect(notice).to_be_hidden()


async def test_an_error_naming_our_import_ends_it(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    await scripted_ticket(page, fake)
    headline = page.locator("#status-headline")
    fake.send(queued(2))
    await expect(headline).to_have_text("You are #2 in line")

    # About someone else's import: not ours to end.
    fake.send({"type": "error", "code": "storage_unavailable", "message": "x", "import_id": "i9"})
    fake.send(queued(1))
    await expect(headline).to_have_text("You are #1 in line")

    fake.send(
        {
            "type": "error",
            "code": "storage_unavailable",
            "message": "The import could not be recorded.",
            "import_id": "i1",
        }
    )
    await expect(headline).to_have_text("Import failed")
    await expect(page.locator("#failed-message")).to_have_text(
        "The hub could not save your import, so it is not in the line. Try again in a minute."
    )
    await expect(page).to_have_title("✗ Failed · Import hub")
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") is None
    await expect(page.get_by_role("button", name="Import More Games")).to_be_enabled()


async def test_receipt_line_and_retry_button(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    receipts = {
        "heard_1": {
            "source": "lichess",
            "username": "heard_1",
            "complete": True,
            "site": {"count": 1234, "what": "games (lichess count.all less imports)"},
            "stored": {"count": 1234, "what": "games"},
            "stored_total": 1234,
            "ongoing": 0,
            "units": [],
            "gaps": [],
        },
        "holey_1": {
            "source": "chesscom",
            "username": "holey_1",
            "complete": False,
            "site": {"count": 900, "what": "rated games"},
            "stored": {"count": 850, "what": "rated games"},
            "stored_total": 1000,
            "ongoing": 0,
            "units": [],
            "gaps": [
                {"unit": "2025/03", "reason": "HTTP 500"},
                {"unit": "2025/04", "reason": "HTTP 500"},
            ],
        },
    }
    asked: list[str] = []

    async def receipt(route: Route) -> None:
        asked.append(route.request.url)
        name = route.request.url.rsplit("/", 2)[-2]
        await route.fulfill(
            status=200, content_type="application/json", body=json.dumps(receipts[name])
        )

    await page.route("**/api/players/*/*/receipt", receipt)
    line, retry = page.locator("#receipt-line"), page.locator("#repair-button")

    await scripted_ticket(page, fake, "Heard_1", source="lichess")
    fake.send({"type": "started", "import_id": "i1", "waited_s": 0.0})
    fake.send(done(complete=True, gaps=0))
    await expect(line).to_have_text("All 1,234 games imported ✓ — lichess counts 1,234")
    await expect(retry).to_be_hidden()
    assert asked[-1].endswith("/api/players/lichess/heard_1/receipt")

    await scripted_ticket(page, fake, "Holey_1", source="chesscom", import_id="i2")
    fake.send({"type": "started", "import_id": "i2", "waited_s": 0.0})
    fake.send(done("i2", games_new=150, games_total=1000, complete=False, gaps=2))
    await expect(line).to_have_text("2 months could not be read.")
    await expect(retry).to_have_text("Retry them")
    assert (await said(page))[-1]["text"] == (
        "Import finished: 150 new games, 1,000 games in all. 2 months could not be read."
    )
    await page.screenshot(path=screenshot_path("receipt-gaps"), full_page=True)

    await retry.click()
    assert await fake.heard("import") == {
        "type": "import",
        "source": "chesscom",
        "username": "Holey_1",
        "repair": True,
    }
    await expect(page.locator("#status-headline")).to_have_text("Sending your request…")
    await expect(line).to_be_hidden()


async def test_record_tables_fit_a_360px_screen(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake, width=360, height=800)
    big = {"win": 12345, "draw": 2345, "loss": 11234}
    summary = {
        "source": "lichess",
        "username": "wide_1",
        "games": 103_700,
        "by_month": [{"month": f"2025-{m:02d}", "games": 8000 + m} for m in range(1, 13)],
        "by_color": {"white": big, "black": {"win": 11000, "draw": 424, "loss": 9999}},
        "by_time_class": {
            "correspondence": big,
            "ultraBullet": {"win": 3, "draw": 0, "loss": 424},
            "classical": {"win": 9999, "draw": 99, "loss": 1},
            "blitz": big,
        },
        "rating": [],
    }
    seen: list[str] = []
    await page.route("**/api/players/*/*/summary*", answer({"summary": summary}, seen))
    await scripted_ticket(page, fake, "Wide_1", source="lichess")
    fake.send({"type": "started", "import_id": "i1", "waited_s": 0.0})
    fake.send(done(games_new=103_700, games_total=103_700))
    # Narrow: one row group per time class, its name, numbers and bar each in a row.
    await expect(page.locator("#table-time tbody")).to_have_count(4)
    await expect(page.locator("#table-time tbody").first.locator("th")).to_have_text(
        "Correspondence"
    )
    assert seen == [f"{hub.url}/api/players/lichess/wide_1/summary"]  # standard games only

    await assert_record_tables_fit(page)
    assert await page.evaluate("document.scrollingElement.scrollWidth") <= 360
    await page.locator(".chart-results").screenshot(path=screenshot_path("tables-wide-360"))

    # Every game, variants included, on request.
    await page.get_by_label("Include variants").check()
    await expect(page.locator("#analytics-status")).to_contain_text("variants and set-up")
    assert seen[-1] == f"{hub.url}/api/players/lichess/wide_1/summary?games=all"


async def test_a_hidden_tab_hears_of_failure_but_not_of_leaving(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(
        pages, hub, fake, init=[VISIBILITY, NOTIFICATIONS], permissions=["notifications"]
    )
    await scripted_ticket(page, fake)
    fake.send(queued(2))
    await page.get_by_role("button", name="Notify me").click()
    await expect(page.get_by_role("button", name="Notify me")).to_have_attribute(
        "aria-pressed", "true"
    )
    await page.evaluate("window.__hide()")
    fake.send({"type": "failed", "import_id": "i1", "code": "upstream_unavailable", "message": ""})
    await expect(page.locator("#status-headline")).to_have_text("Import failed")
    assert await notifications(page) == [
        {
            "title": "Import failed",
            "body": "Heard_1 on chess.com: Chess.com is not answering right now. "
            "Try again in a few minutes.",
            "tag": "i1",
            "hidden": True,
        }
    ]

    # Leaving is the visitor's own doing: said, not notified.
    await page.evaluate("window.__show()")
    await scripted_ticket(page, fake, "Heard_2", import_id="i2")
    fake.send(queued(4, import_id="i2"))
    await page.get_by_role("button", name="Leave queue").click()
    assert await fake.heard("cancel") == {"type": "cancel", "ticket": "T-i2"}
    await page.evaluate("window.__hide()")
    fake.send({"type": "failed", "import_id": "i2", "code": "cancelled", "message": ""})
    await expect(page.locator("#status-headline")).to_have_text("You left the line")
    await expect(page).to_have_title("Left the line · Import hub")
    assert len(await notifications(page)) == 1
    assert (await said(page))[-1]["text"] == (
        "You left the line. Nothing was imported; you can join it again at any time."
    )


@pytest.mark.parametrize("width", [360, 1440])
async def test_axe_on_the_new_states(
    width: int, sim: Proc, hub_factory: HubFactory, pages: Pages, axe: AxeCheck
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake, width=width, height=800)
    await page.clock.resume()  # axe-core runs on timers
    await page.route(
        "**/api/players/*/*/receipt",
        answer({"receipt": {"gaps": [{"unit": "2025/03", "reason": "HTTP 500"}]}}, []),
    )
    await scripted_ticket(page, fake)
    fake.send(queued(2, eta_s=240, eta_low_s=180, eta_high_s=300, paused=PAUSED))
    fake.send(
        board(
            waiting=[
                {"position": 1, "import_id": "w1", "source": "lichess", "player": "ab…"},
                {"position": 2, "import_id": "i1", "source": "chesscom", "player": "he…"},
            ],
            paused=[{"source": "chesscom", **PAUSED}],
            eta_accuracy={
                "samples": 40,
                "median_error_pct": 12,
                "p90_error_pct": 30,
                "interval_hit_pct": 81,
            },
        )
    )
    await expect(page.locator("#queue-paused")).to_be_visible()
    await expect(page.locator("#board-accuracy")).to_be_visible()
    await expect(page.locator("#board-waiting li.mine")).to_contain_text("Heard_1")
    await axe(page, f"paused at {width} px")
    await page.screenshot(path=screenshot_path(f"paused-{width}"), full_page=True)

    fake.send({"type": "started", "import_id": "i1", "waited_s": 9.0})
    fake.send(done(complete=False, gaps=1))
    await expect(page.locator("#receipt-line")).to_have_text("1 month could not be read.")
    await axe(page, f"done with a gap at {width} px")
    await page.screenshot(path=screenshot_path(f"receipt-{width}"), full_page=True)

    await scripted_ticket(page, fake, "Heard_2", import_id="i2")
    fake.send(queued(5, import_id="i2"))
    await page.get_by_role("button", name="Leave queue").click()
    await fake.heard("cancel")
    fake.send({"type": "failed", "import_id": "i2", "code": "cancelled", "message": ""})
    await expect(page.locator("#status-headline")).to_have_text("You left the line")
    await axe(page, f"left the line at {width} px")

    await page.get_by_role("button", name="Import again").click()
    await fake.heard("import")
    fake.send({"type": "error", "code": "too_many_imports", "message": "At most 3."})
    await expect(page.locator("#form-notice")).to_be_visible()
    await axe(page, f"refused at {width} px")
