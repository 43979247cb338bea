"""The hub service in one event loop, with a real SQLite store and scripted sources.

These prove a slot is released on every path an import can end by, including
a crash inside the source and a cancelled task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.fanout import Client, Fanout
from hub.fetch.base import Page, WaitCallback
from hub.mailbox import Mailbox, Outbox
from hub.queue.core import Slots
from hub.queue.eta import Ewma
from hub.queue.local import LocalQueue
from hub.service import ImportHub
from hub.settings import Settings
from hub.store import GameRow, open_store
from hub.store.base import Comparable, Ledger
from tests.poll import eventually


def row(source: str, username: str, n: int) -> GameRow:
    return GameRow(
        source=source,
        game_id=f"{username}-{n}",
        username=username,
        end_time=1_700_000_000 + n,
        time_class="blitz",
        rated=True,
        white=username,
        black="other",
        white_rating=1500,
        black_rating=1500,
        white_result="win",
        black_result="resigned",
        color="white",
        outcome="win",
    )


class Scripted:
    """A source whose pages, crash and pace the test decides."""

    comparable = Comparable(site_what="games", stored_what="stored games")

    def __init__(self, name: str, pages: int = 3, crash_at: int | None = None) -> None:
        self.name = name
        self.pages_n = pages
        self.crash_at = crash_at
        self.gate: asyncio.Event | None = None
        self.repairs: list[bool] = []  # the `repair` of every pages() call

    async def probe(self, username: str, cursor: str | None) -> int | None:
        return self.pages_n

    async def site_count(self, username: str, on_wait: WaitCallback | None = None) -> int | None:
        return self.pages_n

    async def pages(
        self,
        username: str,
        cursor: str | None,
        on_wait: WaitCallback | None = None,
        *,
        ledger: Ledger | None = None,
        repair: bool = False,
    ) -> AsyncGenerator[Page, None]:
        self.repairs.append(repair)
        for n in range(self.pages_n):
            if self.gate is not None:
                await self.gate.wait()
            if self.crash_at == n:
                raise RuntimeError("a bug in the source")
            yield Page(rows=[row(self.name, username, n)], pages_total=self.pages_n, cursor=str(n))


class Harness:
    def __init__(self, hub: ImportHub) -> None:
        self.hub = hub
        self.inbox: dict[Client, list[dict[str, Any]]] = {}
        self.outbox = Outbox()

    def client(self) -> Client:
        got: list[dict[str, Any]] = []

        async def send(text: str) -> None:
            got.append(msgspec.json.decode(text))

        c = Client(Mailbox(send, self.outbox), address=f"client-{len(self.inbox)}")
        self.inbox[c] = got
        return c

    async def wait_for(self, c: Client, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for m in self.inbox[c]:
                    if m["type"] == kind:
                        return m
                await asyncio.sleep(0.005)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Callable[..., Harness]]:
    made: list[ImportHub] = []

    async def make(slots: int = 1, **sources: Scripted) -> Harness:
        settings = Settings(max_concurrent_imports=slots, database_url=f"sqlite:///{tmp_path}/h.db")
        store = open_store(settings.database_url)
        await store.connect()
        core = Slots(
            slots,
            {"chesscom": 1, "lichess": 1},
            {"chesscom": Ewma(1.0, 0.1), "lichess": Ewma(1.0, 0.1)},
            60.0,
        )
        hub = ImportHub(
            settings,
            store,
            dict(sources),
            LocalQueue(core, time.monotonic),
            Fanout(core, time.monotonic),
        )
        await hub.start()
        made.append(hub)
        return Harness(hub)

    yield make  # type: ignore[misc]
    for hub in made:
        await hub.stop()
        await hub.store.close()


async def test_crash_inside_import_releases_slot(harness: Any) -> None:
    h: Harness = await harness(chesscom=Scripted("chesscom", pages=3, crash_at=1))
    c = h.client()
    await h.hub.request_import(c, "chesscom", "crashy")
    failed = await h.wait_for(c, "failed")
    assert failed["code"] == "internal"
    assert h.hub.queue.slots.free == 1 and not h.hub.queue.slots.entries
    record = await h.hub.store.get_import(failed["import_id"])
    assert record is not None and record.state == "failed" and record.pages == 1


async def test_cancel_running_releases_slot_at_page_boundary(harness: Any) -> None:
    src = Scripted("chesscom", pages=5)
    src.gate = asyncio.Event()
    h: Harness = await harness(chesscom=src)
    owner, other = h.client(), h.client()
    await h.hub.request_import(owner, "chesscom", "cancelme")
    await h.hub.request_import(other, "chesscom", "next")
    ticket = (await h.wait_for(owner, "ticket"))["ticket"]
    await h.hub.cancel(owner, ticket)
    src.gate.set()
    failed = await h.wait_for(owner, "failed")
    assert failed["code"] == "cancelled"
    await h.wait_for(other, "done")  # the freed slot went to the next in line
    assert h.hub.queue.slots.free == 1


async def test_shutdown_cancels_and_records_interruption(harness: Any) -> None:
    src = Scripted("lichess", pages=2)
    src.gate = asyncio.Event()
    h: Harness = await harness(lichess=src)
    c = h.client()
    await h.hub.request_import(c, "lichess", "stuck")
    started = await h.wait_for(c, "started")
    await h.hub.stop()
    record = await h.hub.store.get_import(started["import_id"])
    assert record is not None and record.state == "failed" and record.error == "interrupted"
    assert h.hub.queue.slots.free == 1


async def test_success_releases_and_reports_totals(harness: Any) -> None:
    h: Harness = await harness(chesscom=Scripted("chesscom", pages=4))
    c = h.client()
    await h.hub.request_import(c, "chesscom", "fine")
    done = await h.wait_for(c, "done")
    assert (done["games_new"], done["games_total"], done["pages"]) == (4, 4, 4)
    assert h.hub.queue.slots.free == 1 and not h.hub.runner.running


async def test_repair_reaches_the_source_and_done_carries_the_receipt(harness: Any) -> None:
    source = Scripted("chesscom", pages=2)
    h: Harness = await harness(chesscom=source)
    c = h.client()
    # admitted at once: the flag is known before the import starts
    await h.hub.request_import(c, "chesscom", "fixme", repair=True)
    done = await h.wait_for(c, "done")
    again = h.client()
    await h.hub.request_import(again, "chesscom", "fixme")
    await h.wait_for(again, "done")
    assert source.repairs == [True, False] and not h.hub.repairs
    # the scripted site counts its pages; two pages of one game each were stored
    assert (done["complete"], done["gaps"]) == (True, 0)


class Throttled(Scripted):
    """Stores one page, then sleeps on a long 429 pause, as a site that makes us wait."""

    async def pages(
        self,
        username: str,
        cursor: str | None,
        on_wait: WaitCallback | None = None,
        *,
        ledger: Ledger | None = None,
        repair: bool = False,
    ) -> AsyncGenerator[Page, None]:
        yield Page(rows=[row(self.name, username, 0)], pages_total=3, cursor="0")
        if on_wait is not None:
            on_wait("rate_limited", 600.0)
        await asyncio.sleep(600)  # the pause a cancel must cut short
        yield Page(rows=[row(self.name, username, 1)], pages_total=3, cursor="1")


async def test_cancel_during_an_upstream_pause_stops_at_once(harness: Any) -> None:
    h: Harness = await harness(chesscom=Throttled("chesscom"))
    owner, other = h.client(), h.client()
    await h.hub.request_import(owner, "chesscom", "paused")
    await h.hub.request_import(other, "chesscom", "next")
    ticket = (await h.wait_for(owner, "ticket"))["ticket"]
    import_id = (await h.wait_for(owner, "progress"))["import_id"]
    await eventually(
        lambda: any("waiting" in m for m in h.inbox[owner] if m["type"] == "progress"),
        "a stored page, then the pause",
        timeout=5.0,
        every=0.005,
    )
    await h.hub.cancel(owner, ticket)
    # The slot frees without waiting out the 600 s pause: the next import starts.
    await h.wait_for(other, "started", timeout=2.0)
    record = await h.hub.store.get_import(import_id)
    assert record is not None and (record.state, record.error) == ("cancelled", "cancelled")
    assert record.pages == 1 and record.games == 1  # what was stored stays
