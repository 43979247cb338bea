"""Notify me: asked after a click only, kept in localStorage, raised only in a hidden tab."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import LONG, Pages, finished, page_url, start_import
from tests.browser.scripted import NOTIFICATIONS, VISIBILITY, notifications
from tests.conftest import HubFactory
from tests.procs import Proc

pytestmark = pytest.mark.browser


async def watched_context(pages: Pages, **options: Any) -> BrowserContext:
    context = await pages.context(**options)
    await context.add_init_script(VISIBILITY)
    await context.add_init_script(NOTIFICATIONS)
    return context


async def test_hidden_tab_is_notified_when_its_import_starts_and_ends(
    slow_sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    # Runs until cancelled, so the other page waits as long as the test needs.
    blocker = await pages.new(page_url(hub))
    await start_import(blocker, "holdon-p900x1")
    await expect(blocker.locator("#run-pages")).to_contain_text("page ", timeout=LONG)

    context = await watched_context(pages, permissions=["notifications"])
    page = await pages.new(page_url(hub), context=context)
    await start_import(page, "notified-p3x5")
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    button = page.get_by_role("button", name="Notify me")
    await expect(button).to_have_attribute("aria-pressed", "false")
    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#notify-note")).to_contain_text("On: you get a notification")
    assert await page.evaluate("window.__asked") == 0  # already granted: nothing to ask
    assert await page.evaluate("localStorage.getItem('importHub.notify')") == "on"

    await page.evaluate("window.__hide()")
    await expect(page.locator("#status-headline")).to_have_text("You are #1 in line")
    assert await notifications(page) == []
    await blocker.get_by_role("button", name="Cancel").click()
    await page.wait_for_function("() => window.__notifications.length >= 1", timeout=LONG)
    started = (await notifications(page))[0]
    assert started["title"] == "Your import has started"
    assert "notified-p3x5 on chess.com" in started["body"]
    assert started["hidden"]

    await finished(page, timeout=2 * LONG)
    await expect(page).to_have_title("✓ Done · Import hub")
    await page.wait_for_function("() => window.__notifications.length >= 2")
    done = (await notifications(page))[1]
    assert done["title"] == "Import finished"
    assert done["body"] == "notified-p3x5 on chess.com: 15 new games, 15 games in all."
    assert done["tag"] == started["tag"]

    # In view, the page itself says it: no notification.
    await page.evaluate("window.__show()")
    await start_import(page, "inview-p1x5")
    await finished(page)
    assert len(await notifications(page)) == 2

    # The choice outlives a reload, and permission is still not asked on load.
    await page.reload()
    await start_import(page, "again-p1x5")
    await expect(page.get_by_role("button", name="Notify me")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert await page.evaluate("window.__asked") == 0
    await finished(page)


async def test_permission_is_asked_after_a_click_and_refusals_are_explained(
    sim: Proc, hub_factory: HubFactory, pages: Pages
) -> None:
    hub = hub_factory(sim)
    context = await watched_context(pages)
    await context.add_init_script("window.__permission = 'default'; window.__answer = 'denied';")
    page = await pages.new(page_url(hub), context=context)
    await start_import(page, "asked-p1x5")
    await finished(page)
    button = page.get_by_role("button", name="Notify me")
    await expect(button).to_be_enabled()
    assert await page.evaluate("window.__asked") == 0  # never on load

    await button.click()
    await expect(page.locator("#notify-note")).to_have_text(
        "Notifications are blocked for this site in your browser's settings."
    )
    await expect(button).to_be_disabled()
    await expect(button).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate("window.__asked") == 1
    assert await page.evaluate("localStorage.getItem('importHub.notify')") == "off"

    # A prompt closed without an answer can be asked again.
    context = await watched_context(pages)
    await context.add_init_script("window.__permission = 'default'; window.__answer = 'default';")
    closer = await pages.new(page_url(hub), context=context)
    await start_import(closer, "asked-again-p1x5")
    await finished(closer)
    await closer.get_by_role("button", name="Notify me").click()
    await expect(closer.locator("#notify-note")).to_contain_text(
        "press Notify me to be asked again"
    )
    await expect(closer.get_by_role("button", name="Notify me")).to_be_enabled()
    assert await closer.evaluate("window.__asked") == 1

    # A browser without notifications says so instead of offering them.
    bare = await pages.context()
    await bare.add_init_script("delete window.Notification;")
    other = await pages.new(page_url(hub), context=bare)
    await start_import(other, "bare-p1x5")
    await finished(other)
    await expect(other.locator("#notify-note")).to_have_text(
        "This browser cannot show notifications from this page, so keep the tab in view."
    )
    await expect(other.get_by_role("button", name="Notify me")).to_be_disabled()
