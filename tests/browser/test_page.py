"""The import page in a real Chromium against real `hub serve` and `hub sim` processes."""

from __future__ import annotations

import datetime
import json
import re
import urllib.request

import pytest
from playwright.async_api import WebSocketRoute, expect

from tests.browser.conftest import (
    LONG,
    Pages,
    assert_record_tables_fit,
    finished,
    page_url,
    screenshot_path,
    start_import,
)
from tests.browser.scripted import ScriptedHub
from tests.conftest import HubFactory
from tests.procs import USER_AGENT, Proc

pytestmark = pytest.mark.browser

EVIL = "<img src=x onerror=alert(1)>"

# Captures the page's WebSocket so a test can send what the page itself never would.
CAPTURE_SOCKET = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
})();
"""


def content_type(url: str) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.headers.get("Content-Type", ""))


async def test_root_serves_the_page_as_html(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    assert content_type(hub.url + "/").startswith("text/html")
    assert content_type(hub.url + "/favicon.ico") == "image/x-icon"
    assert content_type(hub.url + "/static/app.js").startswith("text/javascript")


async def test_one_import_fills_the_bar_and_draws_the_charts(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    page = await pages.new(page_url(hub))
    await expect(page.locator("#board-slots")).to_contain_text("2 of 2 import slots free")
    await start_import(page, "charted-p6x30")
    await finished(page)

    bar = page.locator("#run-progress")
    assert await bar.get_attribute("max") == "6"
    assert await bar.evaluate("b => [b.value, b.max]") == [6, 6]
    await expect(page.locator("#run-pages")).to_have_text("page 6 of 6 · 180 new games")
    await expect(page.locator("#done-new")).to_have_text("180")
    await expect(page.locator("#done-total")).to_have_text("180")

    await expect(page.locator("#analytics-heading")).to_have_text(
        "Games of charted-p6x30 on chess.com"
    )
    await expect(page.locator("#analytics-status")).to_have_text(
        "180 games of standard chess stored for this player."
    )
    # games by month: one bar per month
    await expect(page.locator("#chart-months svg rect.bar")).to_have_count(6)
    # wins/draws/losses with numbers, by colour and by time class
    colour_rows = page.locator("#table-colour tbody tr")
    await expect(colour_rows).to_have_count(2)
    await expect(colour_rows.first.locator("th")).to_have_text("White")
    totals = [
        int(t.replace(",", ""))
        for t in await page.locator("#table-colour td.num:nth-child(5)").all_inner_texts()
    ]
    assert sum(totals) == 180
    time_rows = page.locator("#table-time tbody tr")
    assert await time_rows.count() >= 1
    by_time = [
        int(t.replace(",", ""))
        for t in await page.locator("#table-time td.num:nth-child(5)").all_inner_texts()
    ]
    assert sum(by_time) == 180
    # rating over time: a line with points
    assert await page.locator("#chart-rating svg polyline").count() >= 1
    assert await page.locator("#chart-rating svg circle.point").count() > 0
    await page.screenshot(path=screenshot_path("done"), full_page=True)


async def test_three_pages_queue_behind_one_slot(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    first, second, third = [await pages.new(page_url(hub)) for _ in range(3)]
    for page in (first, second, third):
        await expect(page.locator("#board-slots")).to_contain_text("1 of 1 import slot free")

    await start_import(first, "lineone-p60x4")
    await expect(first.locator("#run-pages")).to_contain_text("page ", timeout=LONG)
    await start_import(second, "linetwo-p40x4")
    await expect(second.locator("#status-headline")).to_have_text("You are #1 in line")
    await start_import(third, "linethree-p10x4")
    await expect(third.locator("#status-headline")).to_have_text("You are #2 in line")
    # The tab title carries the state, for a visitor looking at another tab.
    await expect(third).to_have_title("(#2) Import hub")
    await expect(first).to_have_title(re.compile(r"^\d{1,3}% · Import hub$"))

    for page in (second, third):
        await expect(page.locator("#queue-slots")).to_have_text("0 of 1 import slot available")
        await expect(page.locator("#queue-eta")).to_contain_text("about ")
        await expect(page.get_by_role("button", name="Leave queue")).to_be_visible()
    # the waiting viewer's own row on the board: full name and a "You" badge
    mine = third.locator("#board-waiting li.mine")
    await expect(mine).to_contain_text("#2")
    await expect(mine).to_contain_text("You")
    await expect(mine).to_contain_text("linethree-p10x4")
    await expect(third.locator("#board-waiting li").first).to_contain_text("li…")
    await expect(first.locator("#board-running li.mine")).to_contain_text("lineone-p60x4")

    await first.screenshot(path=screenshot_path("running"), full_page=True)
    await third.screenshot(path=screenshot_path("queued"), full_page=True)

    # the line moves: #2 becomes #1, then the import runs
    await expect(third.locator("#status-headline")).to_have_text("You are #1 in line", timeout=LONG)
    await expect(third).to_have_title("(#1) Import hub")
    await expect(second.locator("#run-progress")).to_be_visible(timeout=LONG)
    for page in (first, second, third):
        await finished(page, timeout=2 * LONG)
        await expect(page).to_have_title("✓ Done · Import hub")
    board = hub.get_json("/api/queue")
    assert board["running"] == [] and board["waiting_total"] == 0


async def test_reload_while_queued_keeps_the_place(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    blocker = await pages.new(page_url(hub))
    await start_import(blocker, "blocker-p80x2")
    await expect(blocker.locator("#run-pages")).to_contain_text("page ", timeout=LONG)

    page = await pages.new(page_url(hub))
    await start_import(page, "patient-p3x2")
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    ticket = await page.evaluate("localStorage.getItem('importHub.ticket')")
    assert json.loads(ticket)["username"] == "patient-p3x2"

    await page.reload()
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    await expect(page.locator("#status-player")).to_have_text("patient-p3x2 on chess.com")
    await expect(page.locator("#queue-eta")).to_contain_text("about ")
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") == ticket
    board = hub.get_json("/api/queue")
    assert board["waiting_total"] == 1  # the same place, not a second request

    await finished(page, timeout=2 * LONG)
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") is None


async def test_ghost_player_gets_a_human_message(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    page = await pages.new(page_url(hub))
    await start_import(page, "ghostly-one", source="lichess")
    await expect(page.locator("#status-headline")).to_have_text("Import failed", timeout=LONG)
    await expect(page.locator("#failed-message")).to_have_text(
        "We couldn't find that player on lichess. Check the spelling."
    )
    await expect(page.locator("#failed-message")).to_have_class("problem")
    await expect(page).to_have_title("✗ Failed · Import hub")
    await page.screenshot(path=screenshot_path("failed"), full_page=True)
    await page.get_by_role("button", name="Try again").click()
    await expect(page.get_by_label("Username")).to_be_focused()
    await expect(page.locator("#status-panel")).to_be_hidden()


async def test_markup_in_names_is_only_ever_text(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    context = await pages.context()
    await context.add_init_script(CAPTURE_SOCKET)
    # A stored ticket whose name is markup: shown as text, then forgotten when the hub denies it.
    stored = json.dumps({"ticket": EVIL, "source": "chesscom", "username": EVIL})
    await context.add_init_script(
        "if (!sessionStorage.getItem('seeded')) {"
        " sessionStorage.setItem('seeded', '1');"
        f" localStorage.setItem('importHub.ticket', {json.dumps(stored)});"
        "}"
    )
    page = await pages.new(page_url(hub), context=context)
    await expect(page.locator("#status-panel")).to_be_hidden()  # unknown ticket: forgotten quietly
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") is None
    assert await page.evaluate("document.querySelectorAll('img').length") == 0

    # Client-side validation refuses the name and says why.
    await start_import(page, EVIL)
    error = page.locator("#username-error")
    await expect(error).to_have_text(
        "A username can only contain letters, digits, underscores (_) and hyphens (-)."
    )
    await expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#status-panel")).to_be_hidden()

    # The hub echoes an unknown field name in its error; the page must show it as text.
    frame = json.dumps({"type": "import", "source": "chesscom", "username": "ab", EVIL: 1})
    await page.evaluate("frame => window.__sockets[0].send(frame)", frame)
    await expect(error).to_contain_text(EVIL)
    # A second hub error replaces the first, also as plain text.
    await page.evaluate(
        "frame => window.__sockets[0].send(frame)",
        json.dumps({"type": "import", "source": EVIL, "username": "ab"}),
    )
    await expect(error).to_have_text("Unknown source; expected chesscom or lichess.")
    # Text, never markup: no element was made from it, so no handler of it can ever fire.
    assert "<img" not in await error.inner_html()
    assert await page.evaluate("document.querySelectorAll('img').length") == 0
    assert pages.dialogs == []


async def test_board_shows_another_browsers_import(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim)
    watcher = await pages.new(page_url(hub))
    importer = await pages.new(page_url(hub))
    await expect(watcher.locator("#board-running")).to_have_text("Nothing is importing right now.")

    await start_import(importer, "boarder-p40x3")
    row = watcher.locator("#board-running li.board-row")
    await expect(row).to_have_count(1, timeout=LONG)
    await expect(row).to_contain_text("bo… · chess.com")
    await expect(row).not_to_contain_text("boarder")
    await expect(row).not_to_have_class("board-row mine")
    await expect(row.locator("progress")).to_be_visible()
    own = importer.locator("#board-running li.mine")
    await expect(own).to_contain_text("You")
    await expect(own).to_contain_text("boarder-p40x3 · chess.com")

    await finished(importer)
    await expect(row).to_have_count(0, timeout=LONG)
    await expect(watcher.locator("#board-running")).to_have_text("Nothing is importing right now.")


async def test_keyboard_alone_starts_an_import(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    page = await pages.new(page_url(hub))
    await expect(page.locator("#board-slots")).to_contain_text("free")
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "username":
            break
    else:
        pytest.fail("Tab never reached the Username input")
    await page.keyboard.type("keyed-p2x5")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "import-button"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    await page.keyboard.press("Space")
    await finished(page)
    await expect(page.locator("#done-new")).to_have_text("10")

    # Enter in the input starts the next one.
    await page.get_by_label("Username").fill("keyed-two-p1x5")
    await page.get_by_label("Username").press("Enter")
    await expect(page.locator("#status-player")).to_have_text("keyed-two-p1x5 on chess.com")
    await finished(page)


@pytest.mark.parametrize("width", [360, 1440])
async def test_layout_has_no_horizontal_scroll(
    width: int, sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    page = await pages.new(page_url(hub), width=width, height=800)
    await start_import(page, "narrow-p24x40")
    await finished(page)
    await expect(page.locator("#chart-rating svg.chart")).to_be_visible()
    scroll = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"page is {scroll} px wide in a {width} px window"
    await assert_record_tables_fit(page)
    await page.screenshot(path=screenshot_path(f"done-{width}"), full_page=True)


async def test_leave_queue_and_cancel(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    runner = await pages.new(page_url(hub))
    await start_import(runner, "runner-p80x2")
    await expect(runner.locator("#run-pages")).to_contain_text("page ", timeout=LONG)

    leaver = await pages.new(page_url(hub))
    await start_import(leaver, "leaver-p3x2")
    await expect(leaver.locator("#status-headline")).to_have_text("You are #1 in line")
    await leaver.get_by_role("button", name="Leave queue").click()
    # Leaving is the visitor's choice: said plainly, not drawn as an error.
    await expect(leaver.locator("#status-headline")).to_have_text("You left the line")
    await expect(leaver).to_have_title("Left the line · Import hub")
    message = leaver.locator("#failed-message")
    await expect(message).to_have_text(
        "You left the line. Nothing was imported; you can join it again at any time."
    )
    await expect(message).to_have_class("outcome")
    assert await message.evaluate("m => getComputedStyle(m, '::before').content") == "none"
    await expect(leaver.get_by_role("button", name="Import again")).to_be_visible()
    await expect(runner.locator("#board-waiting")).to_have_text("Nobody is waiting.")
    assert await leaver.evaluate("localStorage.getItem('importHub.ticket')") is None

    await runner.get_by_role("button", name="Cancel").click()
    await expect(runner.locator("#status-headline")).to_have_text("Import stopped", timeout=LONG)
    await expect(runner).to_have_title("Stopped · Import hub")
    await expect(runner.locator("#failed-message")).to_have_text(
        "You stopped the import. Games already imported are kept."
    )
    await expect(runner.get_by_role("button", name="Import again")).to_be_visible()
    await expect(leaver.locator("#board-running")).to_have_text("Nothing is importing right now.")


async def test_dropped_socket_reconnects_and_resumes(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    blocker = await pages.new(page_url(hub))
    await start_import(blocker, "holder-p80x2")
    await expect(blocker.locator("#run-pages")).to_contain_text("page ", timeout=LONG)

    # Every socket of this page goes through Playwright, so the test can cut it like a hub restart.
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def through(ws: WebSocketRoute) -> None:
        routes.append((ws, ws.connect_to_server()))

    context = await pages.context()
    await context.route_web_socket(re.compile(r"/ws$"), through)
    page = await pages.new(page_url(hub), context=context)
    await start_import(page, "dropper-p3x2")
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    ticket = await page.evaluate("localStorage.getItem('importHub.ticket')")

    to_page, to_hub = routes[-1]
    await to_hub.close(code=1000)
    await to_page.close(code=1012, reason="service restart")
    banner = page.locator("#connection")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("The hub is restarting — reconnecting…")
    await expect(page.locator("#board-stale")).to_be_visible()
    await page.screenshot(path=screenshot_path("reconnecting"))
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")  # never blank
    await expect(banner).to_be_hidden(timeout=LONG)
    assert len(routes) == 2
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") == ticket
    assert hub.get_json("/api/queue")["waiting_total"] == 1

    # The running import resumes too, with its progress.
    await blocker.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#run-pages")).to_contain_text("page ", timeout=LONG)
    to_page, to_hub = routes[-1]
    await to_hub.close(code=1000)
    await to_page.close(code=1001)
    await expect(banner).to_contain_text("Connection lost — reconnecting…")
    await expect(page.locator("#run-progress")).to_be_visible()
    await expect(banner).to_be_hidden(timeout=LONG)
    await finished(page)
    assert len(routes) == 3


async def test_upstream_trouble_is_explained(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    # `flaky…` players fail every first request with a 503; the hub backs off before retrying.
    hub = hub_factory(sim, HUB_RETRY_BASE_S=3)
    page = await pages.new(page_url(hub))
    await start_import(page, "flaky-p4x5")
    waiting = page.locator("#run-waiting")
    await expect(waiting).to_be_visible(timeout=LONG)
    await expect(waiting).to_contain_text("chess.com did not answer properly — retrying")
    await page.screenshot(path=screenshot_path("waiting"), full_page=True)
    await finished(page)
    await expect(page.locator("#done-new")).to_have_text("20")


async def test_wording_and_countdowns_against_a_scripted_hub(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    context = await pages.context()
    await context.route_web_socket(re.compile(r"/ws$"), fake.accept)
    page = await pages.new(context=context)
    start = datetime.datetime(2026, 3, 1, 12, 0, 0)
    await page.clock.install(time=start)
    await page.clock.pause_at(start + datetime.timedelta(seconds=1))
    await page.goto(page_url(hub))
    await fake.heard("watch_queue")

    await start_import(page, "Scripted_1")
    assert await fake.heard("import") == {
        "type": "import",
        "source": "chesscom",
        "username": "Scripted_1",
    }
    ids = {"import_id": "i1"}
    fake.send(
        {
            "type": "ticket",
            "ticket": "T1",
            **ids,
            "source": "chesscom",
            "username": "scripted_1",
            "joined": False,
        }
    )
    queued = {"type": "queued", **ids, "slots_total": 2, "slots_free": 0}
    fake.send({**queued, "position": 3, "ahead": 2, "eta_s": 80})
    headline, eta = page.locator("#status-headline"), page.locator("#queue-eta")
    await expect(headline).to_have_text("You are #3 in line")
    await expect(page.locator("#status-player")).to_have_text("Scripted_1 on chess.com")
    await expect(page.locator("#queue-slots")).to_have_text("0 of 2 import slots available")
    await expect(eta).to_have_text("about 1 min 20 s")
    # The wait counts down every second on its own ...
    await page.clock.run_for(1000)
    await expect(eta).to_have_text("about 1 min 19 s")
    await page.clock.run_for(20_000)
    await expect(eta).to_have_text("about 59 s")
    # ... and jumps only when the hub says so.
    fake.send({**queued, "position": 2, "ahead": 1, "eta_s": 30})
    await expect(headline).to_have_text("You are #2 in line")
    await expect(eta).to_have_text("about 30 s")
    assert json.loads(await page.evaluate("localStorage.getItem('importHub.ticket')")) == {
        "ticket": "T1",
        "source": "chesscom",
        "username": "Scripted_1",
    }

    # The board: own rows marked with words, not only colour; the rest of a long line summed up.
    fake.send(
        {
            "type": "queue",
            "slots_total": 2,
            "slots_free": 0,
            "running": [
                {"import_id": "x9", "source": "lichess", "player": "zz…", "page": 3, "pages": 10},
                {
                    "import_id": "x8",
                    "source": "chesscom",
                    "player": "yy…",
                    "page": 0,
                    "pages": None,
                },
            ],
            "waiting": [
                {"position": 1, "source": "lichess", "player": "ab…"},
                {"position": 2, "source": "chesscom", "player": "scripted_1"},
            ],
            "waiting_total": 130,
        }
    )
    await expect(page.locator("#board-waiting li.mine")).to_contain_text("#2")
    await expect(page.locator("#board-waiting li.mine .you")).to_have_text("You")
    await expect(page.locator("#board-waiting li").first).not_to_contain_text("You")
    await expect(page.locator("#board-more")).to_have_text("+128 more waiting")
    await expect(page.locator("#board-running li").nth(0)).to_contain_text("page 3 of 10")
    await expect(page.locator("#board-running li").nth(1)).to_contain_text("starting")
    await expect(page.locator("#board-slots")).to_have_text(
        "0 of 2 import slots free · 130 waiting"
    )

    fake.send({"type": "started", **ids, "waited_s": 50.0})
    progress = {"type": "progress", **ids, "page": 7, "pages": 24, "games": 1432}
    fake.send({**progress, "eta_s": 50})
    await expect(page.locator("#run-pages")).to_have_text("page 7 of 24 · 1,432 games")
    assert await page.locator("#run-progress").evaluate("b => [b.value, b.max]") == [7, 24]
    await expect(page.locator("#run-eta")).to_have_text("about 50 s left")
    await expect(page.locator("#run-waiting")).to_be_hidden()
    fake.send({**progress, "eta_s": None, "waiting": {"reason": "rate_limited", "retry_in_s": 4}})
    waiting = page.locator("#run-waiting")
    await expect(waiting).to_have_text("chess.com asked us to slow down — retrying in 4 s")
    await page.clock.run_for(1000)
    await expect(waiting).to_have_text("chess.com asked us to slow down — retrying in 3 s")
    await page.clock.run_for(3000)
    await expect(waiting).to_have_text("chess.com asked us to slow down — retrying now")
    fake.send({**progress, "page": 8, "games": 1500, "eta_s": 40})
    await expect(waiting).to_be_hidden()
    await expect(page.locator("#run-pages")).to_have_text("page 8 of 24 · 1,500 games")

    await page.get_by_role("button", name="Cancel").click()
    assert await fake.heard("cancel") == {"type": "cancel", "ticket": "T1"}
    await expect(headline).to_have_text("Stopping after the current page…")
    fake.send(
        {"type": "failed", **ids, "code": "cancelled", "message": "The import was cancelled."}
    )
    await expect(headline).to_have_text("Import stopped")
    await expect(page.locator("#failed-message")).to_have_text(
        "You stopped the import. Games already imported are kept."
    )
    assert await page.evaluate("localStorage.getItem('importHub.ticket')") is None

    # A failure the page has no wording for shows the hub's own message, as text.
    await page.get_by_role("button", name="Import again").click()
    assert (await fake.heard("import"))["username"] == "Scripted_1"
    fake.send(
        {
            "type": "ticket",
            "ticket": "T2",
            "import_id": "i2",
            "source": "chesscom",
            "username": "scripted_1",
            "joined": False,
        }
    )
    fake.send({"type": "failed", "import_id": "i2", "code": "storage_full", "message": EVIL})
    await expect(page.locator("#failed-message")).to_have_text(EVIL)
    assert await page.evaluate("document.querySelectorAll('img').length") == 0


async def test_analytics_show_standard_games_unless_asked_for_all(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    page = await pages.new(page_url(hub))
    async with page.expect_request(lambda r: "/summary" in r.url) as first:
        await start_import(page, "filtered-p2x5")
        await finished(page)
    assert (await first.value).url == f"{hub.url}/api/players/chesscom/filtered-p2x5/summary"
    status = page.locator("#analytics-status")
    await expect(status).to_have_text("10 games of standard chess stored for this player.")
    include = page.get_by_label("Include variants")
    await expect(include).not_to_be_checked()

    async with page.expect_response(lambda r: r.url.endswith("/summary?games=all")) as every:
        await include.check()
    assert (await every.value).ok
    await expect(status).to_have_text(
        "10 games stored for this player, variants and set-up positions included."
    )
    await expect(page.locator("#chart-months svg rect.bar")).to_have_count(2)
