"""One import, several tickets: a cancel lets go of one ticket, not of what others still follow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.fanout import Client, Fanout
from hub.queue.core import Admit, Drop, Left, LineChanged, Release, Slots, Stop
from hub.queue.eta import Ewma
from hub.queue.local import LocalQueue
from hub.service import ImportHub
from hub.settings import Settings
from hub.store import open_store
from tests.unit.test_service import Harness, Scripted

# -- the core ---------------------------------------------------------------


def core(grace: float = 60.0) -> Slots:
    priors = {"chesscom": Ewma(10.0, 1.0), "lichess": Ewma(10.0, 1.0)}
    return Slots(1, {"chesscom": 1, "lichess": 1}, priors, grace)


def test_the_creator_cancels_a_waiting_import_the_other_keeps_its_place() -> None:
    s = core()
    s.join("t-run", "run", "chesscom", "runner", 0.0, "a0")
    s.join("t-front", "front", "chesscom", "front", 0.0, "a0")
    s.join("t-creator", "shared", "chesscom", "bob", 1.0, "a1")
    s.join("t-behind", "behind", "chesscom", "carol", 2.0, "a2")
    entry, joined, decisions = s.join("t-other", "unused", "chesscom", "BOB", 3.0, "a3")
    assert joined and entry.import_id == "shared" and decisions == []
    place = s.position(entry)
    assert place == 2
    s.take_moved()  # the runner's admission
    assert s.cancel("t-creator", 4.0) == [
        Left("t-creator", "shared", "chesscom", "bob"),
        Release("t-creator"),
    ]
    assert s.take_moved() is None  # nobody moved
    assert s.position(entry) == place and entry.tickets == {"t-other"}
    assert s.per_address == {"a0": 2, "a2": 1, "a3": 1}
    assert [d for d in s.finished("run", 5.0) if isinstance(d, Admit)] == [Admit("front")]
    assert [d for d in s.finished("front", 6.0) if isinstance(d, Admit)] == [Admit("shared")]


def test_both_cancel_a_waiting_import_it_leaves_the_line() -> None:
    s = core()
    s.join("t-run", "run", "chesscom", "runner", 0.0, "a0")
    s.join("t1", "shared", "chesscom", "bob", 1.0, "a1")
    s.join("t2", "unused", "chesscom", "bob", 1.0, "a2")
    assert not any(isinstance(d, Drop) for d in s.cancel("t2", 2.0))  # the joiner first
    decisions = s.cancel("t1", 3.0)
    assert Drop("shared", "cancelled", frozenset(), "chesscom", "bob") in decisions
    assert not s.line and "shared" not in s.entries and s.per_address == {"a0": 1}


def test_a_running_import_stops_only_when_every_follower_cancelled() -> None:
    s = core()
    s.join("t1", "shared", "chesscom", "bob", 0.0, "a1")
    s.join("t2", "unused", "chesscom", "bob", 1.0, "a2")
    s.join("t3", "unused", "chesscom", "bob", 1.0, "a3")
    assert "shared" in s.running
    assert s.cancel("t1", 2.0) == [Left("t1", "shared", "chesscom", "bob"), Release("t1")]
    assert s.cancel("t3", 2.5) == [Left("t3", "shared", "chesscom", "bob"), Release("t3")]
    assert s.cancel("t2", 3.0) == [
        Left("t2", "shared", "chesscom", "bob"),
        Release("t2"),
        Stop("shared"),
    ]
    assert "shared" in s.running  # until the import reaches a page boundary
    s.finished("shared", 4.0, ok=False)
    assert s.free == 1 and not s.tickets and not s.per_address


def test_a_running_import_that_lost_a_follower_to_the_grace_period_runs_to_its_end() -> None:
    s = core(grace=5.0)
    s.join("t1", "shared", "chesscom", "bob", 0.0, "a1")
    s.join("t2", "unused", "chesscom", "bob", 0.0, "a2")
    s.detach("t1", 1.0)  # its page closed; it never cancelled
    assert s.tick(5.9) == []
    assert s.tick(6.0) == [Release("t1")]
    # The one left cancels: the visitor who closed the page still gets the games.
    assert s.cancel("t2", 7.0) == [Left("t2", "shared", "chesscom", "bob"), Release("t2")]
    assert "shared" in s.running and not s.entries["shared"].stopping
    assert s.finished("shared", 20.0) == [LineChanged()]  # nobody left to tell
    assert s.free == 1 and not s.entries


def test_a_waiting_import_whose_last_follower_expired_is_abandoned() -> None:
    s = core(grace=5.0)
    s.join("t-run", "run", "chesscom", "runner", 0.0, "a0")
    s.join("t1", "shared", "chesscom", "bob", 0.0, "a1")
    s.join("t2", "unused", "chesscom", "bob", 0.0, "a2")
    s.detach("t1", 1.0)
    s.tick(6.0)
    assert "shared" in s.line  # t2 still follows it
    s.detach("t2", 7.0)
    decisions = s.tick(12.0)
    assert Drop("shared", "abandoned", frozenset(), "chesscom", "bob") in decisions
    assert not s.line


# -- the same through the hub -------------------------------------------------

Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[ImportHub] = []

    async def make(source: Scripted, grace_s: float = 60.0) -> Harness:
        settings = Settings(max_concurrent_imports=1, database_url=f"sqlite:///{tmp_path}/h.db")
        store = open_store(settings.database_url)
        await store.connect()
        slots = Slots(
            1,
            {"chesscom": 1, "lichess": 1},
            {"chesscom": Ewma(1.0, 0.1), "lichess": Ewma(1.0, 0.1)},
            grace_s,
        )
        made.append(
            ImportHub(
                settings,
                store,
                {"chesscom": source},
                LocalQueue(slots, time.monotonic, tick_s=0.02),
                Fanout(slots, time.monotonic),
            )
        )
        await made[-1].start()
        return Harness(made[-1])

    yield make
    for made_hub in made:
        await made_hub.stop()
        await made_hub.store.close()


def kinds(h: Harness, c: Client) -> list[str]:
    return [m["type"] for m in h.inbox[c]]


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the hub's own tasks move these
            await asyncio.sleep(0.005)


async def test_hub_creator_cancels_while_waiting_the_other_runs_it(hub: Make) -> None:
    source = Scripted("chesscom", pages=2)
    source.gate = asyncio.Event()
    h = await hub(source)
    blocker, creator, other = h.client(), h.client(), h.client()
    await h.hub.request_import(blocker, "chesscom", "blocker")
    await h.wait_for(blocker, "started")
    await h.hub.request_import(creator, "chesscom", "bob")
    await h.hub.request_import(other, "chesscom", "Bob")
    first, second = await h.wait_for(creator, "ticket"), await h.wait_for(other, "ticket")
    assert second["joined"] and second["import_id"] == first["import_id"]
    await h.hub.cancel(creator, first["ticket"])
    failed = await h.wait_for(creator, "failed")
    assert failed["code"] == "cancelled" and failed["import_id"] == first["import_id"]
    entry = h.hub.queue.slots.entries[first["import_id"]]
    assert entry.state == "waiting" and h.hub.queue.slots.position(entry) == 1
    source.gate.set()
    done = await h.wait_for(other, "done")
    assert done["import_id"] == first["import_id"] and done["games_new"] == 2
    assert kinds(h, other) == ["ticket", "queued", "started", "progress", "progress", "done"]
    assert "started" not in kinds(h, creator) and "done" not in kinds(h, creator)
    await until(lambda: not h.hub.queue.slots.entries)


async def test_hub_running_import_stops_only_when_both_cancelled(hub: Make) -> None:
    source = Scripted("chesscom", pages=3)
    source.gate = asyncio.Event()
    h = await hub(source)
    a, b = h.client(), h.client()
    await h.hub.request_import(a, "chesscom", "bob")
    await h.hub.request_import(b, "chesscom", "bob")
    ta, tb = await h.wait_for(a, "ticket"), await h.wait_for(b, "ticket")
    await h.wait_for(b, "started")
    await h.hub.cancel(a, ta["ticket"])
    assert not h.hub.queue.slots.entries[ta["import_id"]].stopping
    await h.hub.cancel(b, tb["ticket"])
    assert h.hub.queue.slots.entries[ta["import_id"]].stopping
    source.gate.set()  # the first page is stored, then the import stops at the boundary
    await until(lambda: h.hub.queue.slots.free == 1 and not h.hub.imports)
    stored = await h.hub.store.get_import(ta["import_id"])
    assert stored is not None and stored.state == "cancelled" and stored.pages == 1
    for c in (a, b):
        assert kinds(h, c)[-1] == "failed" and h.inbox[c][-1]["code"] == "cancelled"


async def test_hub_one_cancels_a_running_import_the_other_gets_done(hub: Make) -> None:
    source = Scripted("chesscom", pages=3)
    source.gate = asyncio.Event()
    h = await hub(source)
    a, b = h.client(), h.client()
    await h.hub.request_import(a, "chesscom", "bob")
    await h.hub.request_import(b, "chesscom", "bob")
    ta = await h.wait_for(a, "ticket")
    await h.hub.cancel(a, ta["ticket"])
    source.gate.set()
    done = await h.wait_for(b, "done")
    assert done["games_new"] == 3
    assert "done" not in kinds(h, a) and kinds(h, a)[-1] == "failed"


async def test_hub_follower_lost_to_grace_the_import_runs_to_its_end(hub: Make) -> None:
    source = Scripted("chesscom", pages=3)
    source.gate = asyncio.Event()
    h = await hub(source, grace_s=0.1)
    gone, stays = h.client(), h.client()
    await h.hub.request_import(gone, "chesscom", "bob")
    await h.hub.request_import(stays, "chesscom", "bob")
    tg, ts = await h.wait_for(gone, "ticket"), await h.wait_for(stays, "ticket")
    await h.wait_for(stays, "started")
    await h.hub.disconnected(gone)  # the page closed; its ticket's grace period runs out
    slots = h.hub.queue.slots
    await until(lambda: len(slots.entries[tg["import_id"]].tickets) == 1)
    await h.hub.cancel(stays, ts["ticket"])
    assert not slots.entries[ts["import_id"]].stopping
    source.gate.set()
    await until(lambda: slots.free == 1 and not h.hub.imports)
    stored = await h.hub.store.get_import(tg["import_id"])
    assert stored is not None and stored.state == "done" and stored.pages == 3
