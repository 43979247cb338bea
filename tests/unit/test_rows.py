"""The group commit of new imports' rows, and what the hub does when a batch fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from hub.errors import StorageUnavailable
from hub.fanout import Fanout
from hub.queue.core import Slots
from hub.queue.eta import Ewma
from hub.queue.local import LocalQueue
from hub.rows import NewRows
from hub.service import ImportHub
from hub.settings import Settings
from hub.store import open_store
from hub.store.base import ImportRecord
from tests.unit.test_service import Harness, Scripted


def record(n: int) -> ImportRecord:
    return ImportRecord(
        id=f"i{n}", source="chesscom", username=f"p{n}", state="queued", created_at=0.0
    )


class LoopTime:
    """The running loop's clock, moved by the test: the gather window ends when it says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def loop_time() -> AsyncIterator[LoopTime]:
    loop = asyncio.get_running_loop()
    fake = LoopTime()
    loop.time = fake  # type: ignore[method-assign]
    try:
        yield fake
    finally:
        del loop.time


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_everything_added_within_the_gather_window_is_one_batch(
    loop_time: LoopTime,
) -> None:
    rows = NewRows(gather_s=0.01)
    taking = asyncio.ensure_future(rows.take())
    await turns()
    assert not taking.done()  # nothing to write: it waits for a first row
    rows.add(record(1))
    await turns()
    for n in range(2, 6):  # the first row opened the window; these come within it
        rows.add(record(n))
        await turns()
    assert not taking.done()
    loop_time.now += 0.01
    await turns()
    assert [r.id for r in taking.result()] == ["i1", "i2", "i3", "i4", "i5"]
    assert rows.pending() == 5  # taken is not written
    # A row added after the batch was taken goes into the next one.
    rows.add(record(6))
    taking = asyncio.ensure_future(rows.take())
    await turns()
    loop_time.now += 0.01
    await turns()
    assert [r.id for r in taking.result()] == ["i6"]


async def test_a_batch_is_bounded(loop_time: LoopTime) -> None:
    rows = NewRows(gather_s=0.01, batch=3)
    for n in range(7):
        rows.add(record(n))
    sizes = []
    for _ in range(3):
        taking = asyncio.ensure_future(rows.take())
        await turns()
        loop_time.now += 0.01
        await turns()
        sizes.append(len(taking.result()))
    assert sizes == [3, 3, 1]


async def test_written_waits_for_its_batch_and_a_failed_batch_raises_once() -> None:
    rows = NewRows(gather_s=0.0)
    for n in range(4):
        rows.add(record(n))
    first, second = [record(0), record(1)], [record(2), record(3)]
    waiting = asyncio.ensure_future(rows.written("i0"))
    failing = asyncio.ensure_future(rows.written("i2"))
    await turns()
    assert not waiting.done() and not failing.done()
    rows.done(first)
    rows.done(second, StorageUnavailable())
    await turns()
    assert waiting.result() is None
    with pytest.raises(StorageUnavailable):
        failing.result()
    # The other import of the failed batch: nobody was waiting yet; it raises when asked...
    with pytest.raises(StorageUnavailable):
        await rows.written("i3")
    # ...once: the import is over, and so is its row's story.
    await rows.written("i3")
    await rows.written("i1")  # written: returns at once
    assert rows.pending() == 0


async def test_forget_drops_a_failure_nobody_asked_about() -> None:
    rows = NewRows()
    rows.add(record(1))
    rows.done([record(1)], StorageUnavailable())
    rows.forget("i1")
    await rows.written("i1")  # no longer raises, and holds nothing


# -- a failed batch through the hub -----------------------------------------


@pytest.fixture
async def failing_hub(tmp_path: Path) -> AsyncIterator[tuple[Harness, list[list[str]]]]:
    """A hub whose first batch of rows fails; the batches its store was handed."""
    settings = Settings(max_concurrent_imports=1, database_url=f"sqlite:///{tmp_path}/h.db")
    store = open_store(settings.database_url)
    await store.connect()
    batches: list[list[str]] = []
    working = store.create_imports

    async def create_imports(records: Sequence[ImportRecord]) -> None:
        batches.append([r.id for r in records])
        if len(batches) == 1:
            raise StorageUnavailable()  # the first batch only
        await working(records)

    store.create_imports = create_imports  # type: ignore[method-assign]
    core = Slots(
        1,
        {"chesscom": 1, "lichess": 1},
        {"chesscom": Ewma(1.0, 0.1), "lichess": Ewma(1.0, 0.1)},
        60.0,
    )
    source = Scripted("chesscom", pages=2)
    source.gate = asyncio.Event()  # no import stores a page
    hub = ImportHub(
        settings,
        store,
        {"chesscom": source},
        LocalQueue(core, time.monotonic),
        Fanout(core, time.monotonic),
    )
    await hub.start()
    try:
        yield Harness(hub), batches
    finally:
        await hub.stop()
        await store.close()


async def test_a_failed_batch_ends_each_of_its_imports(
    failing_hub: tuple[Harness, list[list[str]]],
) -> None:
    h, batches = failing_hub
    clients = [h.client() for _ in range(4)]
    # One socket per player, and a second socket that joins the first player's import.
    for n, c in enumerate(clients[:3]):
        await h.hub.request_import(c, "chesscom", f"player{n}")
    await h.hub.request_import(clients[3], "chesscom", "player1")
    tickets = [await h.wait_for(c, "ticket") for c in clients]
    assert [t["joined"] for t in tickets] == [False, False, False, True]
    for c, ticket in zip(clients, tickets, strict=True):
        error = await h.wait_for(c, "error")
        assert error["code"] == "storage_unavailable"
        assert error["import_id"] == ticket["import_id"]
    assert batches == [[t["import_id"] for t in tickets[:3]]]  # one batch, each row once
    slots = h.hub.queue.slots

    async def settled() -> None:
        while slots.entries or slots.tickets or h.hub.imports:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    async with asyncio.timeout(5.0):
        await settled()
    assert not slots.line and slots.free == 1 and not slots.per_address
    assert h.hub.rows.pending() == 0
    for ticket in tickets:  # nothing is kept about the lost rows once their imports ended
        await h.hub.rows.written(ticket["import_id"])
    for c in clients:
        kinds = [m["type"] for m in h.inbox[c]]
        assert "done" not in kinds and "failed" not in kinds, kinds
    # The next batch is written, and its import runs.
    again = h.client()
    await h.hub.request_import(again, "chesscom", "player1")
    ticket = await h.wait_for(again, "ticket")
    assert not ticket["joined"] and ticket["import_id"] != tickets[1]["import_id"]
    await h.wait_for(again, "started")  # it may start before its row is written...
    await h.hub.rows.written(ticket["import_id"])  # ...which it waits for before running
    assert batches[1:] == [[ticket["import_id"]]]
    stored = await h.hub.store.get_import(ticket["import_id"])
    assert stored is not None and stored.username == "player1"
