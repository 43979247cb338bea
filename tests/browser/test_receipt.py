"""The receipt line against a real hub and simulator: a month that cannot be read, then repaired."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import LONG, Pages, finished, page_url, start_import
from tests.conftest import HubFactory
from tests.procs import Proc

pytestmark = pytest.mark.browser


async def test_a_hole_is_shown_then_repaired_by_retry(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    # One retry, quickly, and a breaker that stays shut: the hole is one failed month.
    hub = hub_factory(
        sim,
        HUB_RETRIES=1,
        HUB_RETRY_BASE_S=0.05,
        HUB_RETRY_MAX_S=0.1,
        HUB_BREAKER_FAILURES=100,
    )
    page = await pages.new(page_url(hub))
    await start_import(page, "hole-p4x5")
    await finished(page, timeout=2 * LONG)
    line, retry = page.locator("#receipt-line"), page.locator("#repair-button")
    await expect(line).to_have_text("1 month could not be read.")
    await expect(retry).to_have_text("Retry them")
    truth = sim.get_json("/_sim/truth/chesscom/hole-p4x5")
    sim.post("/_sim/heal/chesscom/hole-p4x5")
    await retry.click()
    # The repair reads the failed month again; the line then proves every game is here.
    await expect(line).to_contain_text(f"All {len(truth['games'])} games imported ✓", timeout=LONG)
    await expect(retry).to_be_hidden()
    receipt = hub.get_json("/api/players/chesscom/hole-p4x5/receipt")
    assert receipt["complete"] and receipt["gaps"] == []
