"""One import: source pages into the store, with a progress event per stored page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from hub import receipt
from hub.errors import Cancelled, HubError, StorageUnavailable
from hub.fetch.base import Page, Source, WaitCallback
from hub.store.base import Store

log = logging.getLogger("hub.importer")


@dataclass
class Outcome:
    state: str  # done | failed | cancelled
    pages: int = 0
    games_new: int = 0
    games_total: int = 0
    code: str | None = None
    message: str | None = None
    complete: bool = False  # the receipt at the end: every unit read and the counts agree
    gaps: int = 0  # units that could not be read, or hold games that could not be parsed


OnPage = Callable[[int, int, int], None]  # (page, pages, games stored so far)


async def run_import(
    import_id: str,
    source: Source,
    username: str,
    store: Store,
    stop: asyncio.Event,
    on_page: OnPage,
    on_wait: WaitCallback,
    wall: Callable[[], float],
    repair: bool = False,
) -> Outcome:
    """Fetch and store every page, stopping at a page boundary when asked.

    Pages already stored stay stored on every path: each page is its own
    transaction, and the player's cursor and ledger move with it. A database
    that goes away ends the import as `storage_unavailable`; the next import of
    the player continues from the last stored page. `repair` reads again only
    the units the ledger shows as failed or short.
    """
    outcome = Outcome(state="done")
    try:
        await store.mark_running(import_id, wall())
        cursor = await store.get_cursor(source.name, username)
        ledger = await store.read_ledger(source.name, username, with_stored=repair)
        pages = source.pages(username, cursor, on_wait, ledger=ledger, repair=repair)
        await _store_pages(outcome, import_id, source.name, username, store, stop, on_page, pages)
        await _conclude(outcome, store, source, username, on_wait, repair, ledger.site_count)
    except HubError as exc:
        outcome.state = "cancelled" if isinstance(exc, Cancelled) else "failed"
        outcome.code, outcome.message = exc.code, exc.message
    except asyncio.CancelledError:
        # The hub is shutting down: the stored pages are the checkpoint.
        outcome.state, outcome.code = "failed", "interrupted"
        outcome.message = "The hub restarted during the import; import again to continue."
        # In a task of its own: `databases` keeps one connection per task, and this
        # task's may be stuck in the release the cancellation interrupted.
        await asyncio.shield(_record(store, import_id, outcome, wall))
        raise
    except Exception as exc:
        outcome.state = "failed"
        if store.is_unavailable(exc):
            # Met by the store or, in a fleet, by the shared request caps (the
            # fetch layer turns every upstream failure into a HubError).
            log.warning(
                "storage unavailable - import stops",
                extra={"import_id": import_id, "error": describe(exc)},
            )
            unavailable = StorageUnavailable()
            outcome.code, outcome.message = unavailable.code, unavailable.message
        else:
            log.exception("import crashed", extra={"import_id": import_id})
            outcome.code = "internal"
            outcome.message = "The import failed inside the hub; the games stored so far are kept."
    await _record(store, import_id, outcome, wall)
    return outcome


async def _store_pages(
    outcome: Outcome,
    import_id: str,
    source: str,
    username: str,
    store: Store,
    stop: asyncio.Event,
    on_page: OnPage,
    pages: AsyncGenerator[Page, None],
) -> None:
    """Each page in its own transaction, with a progress event; stop at a page boundary."""
    # Closed on every path: an open lichess export holds the upstream's one stream slot.
    async with contextlib.aclosing(pages):
        async for page in pages:
            rows, total = page.rows, page.pages_total
            new = await store.store_page(
                import_id, source, username, rows, total, page.cursor, page.ledger
            )
            outcome.pages += 1
            outcome.games_new += new
            on_page(outcome.pages, max(total or 0, outcome.pages), outcome.games_new)
            if stop.is_set():
                raise Cancelled()


async def _conclude(
    outcome: Outcome,
    store: Store,
    source: Source,
    username: str,
    on_wait: WaitCallback,
    repair: bool,
    kept: int | None,
) -> None:
    """The site's own count, then the totals and the receipt for `done`."""
    # A repair answers the other units from the ledger, the site's count included.
    if not repair or kept is None:
        count = await site_count(source, username, on_wait)
        await store.record_site_count(source.name, username, count)
    outcome.games_total = await store.count_games(source.name, username)
    outcome.complete, outcome.gaps = await summary(store, source, username)


async def site_count(source: Source, username: str, on_wait: WaitCallback) -> int | None:
    """The site's own count, or None when it cannot be had: the receipt then says so."""
    try:
        return await source.site_count(username, on_wait)
    except HubError as exc:
        log.warning("no site count for %s/%s: %s", source.name, username, exc.message)
        return None


async def summary(store: Store, source: Source, username: str) -> tuple[bool, int]:
    """(complete, gaps) of the player's receipt, for the `done` message."""
    found = await receipt.load(store, source, username)
    return (False, 0) if found is None else (found.complete, len(found.gaps))


async def _record(
    store: Store, import_id: str, outcome: Outcome, wall: Callable[[], float]
) -> None:
    try:
        await store.finish_import(import_id, outcome.state, wall(), outcome.code, outcome.message)
    except Exception as exc:
        # The outcome still reaches the browser; only the history row is stale.
        if not store.is_unavailable(exc):
            log.exception("could not record the end of an import", extra={"import_id": import_id})
            return
        log.warning(
            "could not record the end of an import",
            extra={"import_id": import_id, "error": describe(exc)},
        )


def describe(exc: BaseException) -> str:
    """One line naming a driver error, for a log field."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
