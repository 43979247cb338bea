"""axe-core, the live region's rule and reduced motion, in a real Chromium."""

from __future__ import annotations

import itertools

import pytest
from playwright.async_api import expect

from tests.browser.conftest import (
    LONG,
    AxeCheck,
    Pages,
    finished,
    page_url,
    screenshot_path,
    start_import,
)
from tests.browser.scripted import ScriptedHub, queued, said, scripted_page, scripted_ticket
from tests.conftest import HubFactory
from tests.procs import Proc

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [360, 1440])
async def test_axe_finds_nothing_serious_in_any_state(
    width: int, slow_sim: Proc, hub_factory: HubFactory, pages: Pages, axe: AxeCheck
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    # Long enough to stay running (and keep the other page queued) until it is cancelled.
    runner = await pages.new(page_url(hub), width=width, height=800)
    await start_import(runner, "axerun-p900x1")
    await expect(runner.locator("#run-pages")).to_contain_text("page ", timeout=LONG)
    await runner.screenshot(path=screenshot_path(f"a11y-running-{width}"), full_page=True)
    await axe(runner, f"running at {width} px")

    waiter = await pages.new(page_url(hub), width=width, height=800)
    await start_import(waiter, "axewait-p3x20")
    await expect(waiter.locator("#status-headline")).to_have_text("You are #1 in line")
    await expect(waiter.locator("#queue-eta")).to_contain_text("about ")
    await waiter.screenshot(path=screenshot_path(f"a11y-queued-{width}"), full_page=True)
    await axe(waiter, f"queued at {width} px")
    # Both were checked in the state named: neither has moved on yet.
    await expect(waiter.locator("#status-headline")).to_have_text("You are #1 in line")
    await expect(runner.locator("#status-headline")).to_have_text("Importing your games")

    await runner.get_by_role("button", name="Cancel").click()
    await finished(waiter, timeout=2 * LONG)
    await expect(waiter.locator("#chart-rating svg.chart")).to_be_visible()
    await waiter.screenshot(path=screenshot_path(f"a11y-done-{width}"), full_page=True)
    await waiter.locator(".chart-results").screenshot(path=screenshot_path(f"tables-{width}"))
    await axe(waiter, f"done at {width} px")

    await start_import(waiter, "ghost-of-axe", source="lichess")
    await expect(waiter.locator("#status-headline")).to_have_text("Import failed", timeout=LONG)
    await waiter.screenshot(path=screenshot_path(f"a11y-failed-{width}"), full_page=True)
    await axe(waiter, f"failed at {width} px")


async def test_live_region_announces_no_more_than_the_rule(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    """Positions at most once every 10 s, every change from #3 on; started; 25/50/75/100 %; the end.

    Driven by the scripted hub (a test fixture) so that the page's clock, which the 10 s rule
    reads, is the test's to move."""
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake)
    await scripted_ticket(page, fake)
    headline, region = page.locator("#status-headline"), page.locator("#announcer")

    # Twelve places in quick succession: the first is said, the rest only shown.
    for position in range(20, 8, -1):
        fake.send(queued(position))
        await expect(headline).to_have_text(f"You are #{position} in line")
    assert [s["text"] for s in await said(page)] == ["You are 20th in line."]
    await expect(page).to_have_title("(#9) Import hub")

    # When the 10 s are over, the latest place is said once, not the ones in between.
    await page.clock.run_for(9_000)
    assert len(await said(page)) == 1
    await page.clock.run_for(1_000)
    await expect(region).to_have_text("You are 9th in line.")
    assert len(await said(page)) == 2

    # A change inside the next 10 s waits again; an unchanged place is not news.
    fake.send(queued(8))
    fake.send(queued(7))
    fake.send(queued(7))
    await expect(headline).to_have_text("You are #7 in line")
    await page.clock.run_for(10_000)
    await expect(region).to_have_text("You are 7th in line.")
    assert len(await said(page)) == 3

    # From #3 on, every change is said at once; #5, within 10 s of #7, is held, then outdated.
    for position in (5, 3, 2, 1):
        fake.send(queued(position))
        await expect(headline).to_have_text(f"You are #{position} in line")
    await expect(region).to_have_text("You are 1st in line.")
    await page.clock.run_for(30_000)
    announced = await said(page)
    assert [s["text"] for s in announced][3:] == [
        "You are 3rd in line.",
        "You are 2nd in line.",
        "You are 1st in line.",
    ]
    # #5 was never said: it came within 10 s of the last place said.
    far = [s["at"] for s in announced[:3]]
    assert all(b - a >= 10_000 for a, b in itertools.pairwise(far)), announced

    # Started, then progress only at the quarter marks (12 pages, each one a message).
    fake.send({"type": "started", "import_id": "i1", "waited_s": 60.0})
    await expect(page).to_have_title("Starting · Import hub")
    for page_no in range(1, 13):
        fake.send(
            {
                "type": "progress",
                "import_id": "i1",
                "page": page_no,
                "pages": 12,
                "games": page_no * 10,
                "eta_s": 12.0 - page_no,
            }
        )
        await expect(page.locator("#run-pages")).to_contain_text(f"page {page_no} of 12")
    await expect(page).to_have_title("100% · Import hub")
    fake.send(
        {
            "type": "done",
            "import_id": "i1",
            "games_new": 120,
            "games_total": 120,
            "pages": 12,
            "duration_s": 30.0,
        }
    )
    await expect(headline).to_have_text("Import finished")
    await expect(page).to_have_title("✓ Done · Import hub")
    texts = [s["text"] for s in await said(page)]
    assert texts[6:] == [
        "Your import has started.",
        "25 % imported.",
        "50 % imported.",
        "75 % imported.",
        "100 % imported.",
        "Import finished: 120 new games, 120 games in all.",
    ]
    # The region is the page's only live region; the headline shows, it does not speak.
    assert (
        await page.evaluate("document.querySelectorAll('[aria-live], [role=status]').length") == 1
    )


async def test_reduced_motion_keeps_bars_still(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    fake = ScriptedHub()
    page = await scripted_page(pages, hub, fake, reduced_motion="reduce")
    await scripted_ticket(page, fake)
    fake.send({"type": "started", "import_id": "i1", "waited_s": 0.0})
    await expect(page.locator("#run-pages")).to_have_text("Looking up how many pages there are…")
    # An indeterminate bar animates; with reduced motion it is an empty, still bar instead.
    assert await page.locator("#run-progress").evaluate("b => b.hasAttribute('value')")
    assert await page.evaluate("matchMedia('(prefers-reduced-motion: reduce)').matches")
