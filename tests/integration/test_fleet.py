"""Several `hub serve` replicas on one PostgreSQL database share one line."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import asyncpg
import pytest

from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import Proc, WsClient

pytestmark = pytest.mark.postgres


def replicas(factory: HubFactory, sim: Proc, url: str, n: int, **env: Any) -> list[Proc]:
    settings = {"DATABASE_URL": url, "HUB_POLL_S": "0.5", **env}
    return [factory(sim, **settings) for _ in range(n)]


async def ask(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.send({"type": "import", "source": source, "username": username})
    await client.until("ticket")
    return client


def first(client: WsClient, kind: str) -> float:
    return next(t for t, m in client.messages if m["type"] == kind)


class LineSampler:
    """Reads the shared line from the database every few milliseconds, as the truth."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak = {"all": 0, "chesscom": 0, "lichess": 0}
        self.seq: dict[str, int] = {}
        self.fifo_breaks: list[tuple[str, int, int]] = []
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while not stop.is_set():
                rows = await conn.fetch("SELECT import_id, source, seq, state FROM queue_entries")
                self.samples += 1
                running = [r for r in rows if r["state"] == "running"]
                self.peak["all"] = max(self.peak["all"], len(running))
                for source in ("chesscom", "lichess"):
                    mine = [r["seq"] for r in running if r["source"] == source]
                    self.peak[source] = max(self.peak[source], len(mine))
                    waiting = [
                        r["seq"] for r in rows if r["source"] == source and r["state"] == "waiting"
                    ]
                    # No import of an upstream may run while an older one of it still waits.
                    if mine and waiting and min(waiting) < max(mine):
                        self.fifo_breaks.append((source, min(waiting), max(mine)))
                for r in rows:
                    self.seq[r["import_id"]] = r["seq"]
                await asyncio.sleep(0.005)
        finally:
            await conn.close()


async def test_fleet_keeps_one_line(
    scratch_pg: str, slow_sim: Proc, hub_factory: HubFactory
) -> None:
    hubs = replicas(hub_factory, slow_sim, scratch_pg, 3, MAX_CONCURRENT_IMPORTS=2)
    sampler, stop = LineSampler(scratch_pg), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    clients: list[tuple[str, WsClient]] = []
    for n in range(40):  # one after another: request order is well defined
        source = "lichess" if n % 4 == 3 else "chesscom"
        clients.append((source, await ask(hubs[n % 3], source, f"fleet{n}-p2x3")))
    ends = await asyncio.gather(
        *(c.until("done", "failed", timeout=90) for _, c in clients), return_exceptions=True
    )
    stop.set()
    await sampling
    stuck = [
        (n, [m["type"] for _, m in c.messages])
        for n, ((_, c), end) in enumerate(zip(clients, ends, strict=True))
        if not isinstance(end, dict) or end["type"] != "done"
    ]
    assert not stuck, stuck
    assert sampler.samples > 100
    assert sampler.peak["all"] <= 2, sampler.peak
    assert sampler.peak["chesscom"] <= 2 and sampler.peak["lichess"] <= 1, sampler.peak
    assert sampler.peak["all"] == 2  # the line was busy enough to fill both slots
    assert not sampler.fifo_breaks, sampler.fifo_breaks
    # One line for everyone: places were given in request order, whichever replica took it.
    import_ids = [
        next(m for _, m in c.messages if m["type"] == "ticket")["import_id"] for _, c in clients
    ]
    seqs = [sampler.seq[i] for i in import_ids if i in sampler.seq]
    assert len(seqs) >= 30 and seqs == sorted(seqs)
    # Every browser saw its import start and finish, on whichever replica it ran.
    for _, c in clients:
        kinds = [m["type"] for _, m in c.messages]
        assert kinds.index("started") < kinds.index("done")


async def test_failover_after_kill(
    scratch_pg: str, slow_sim: Proc, hub_factory: HubFactory
) -> None:
    lease = 3
    a, b = replicas(hub_factory, slow_sim, scratch_pg, 2, HUB_LEASE_S=lease)
    client = await ask(a, "chesscom", "failover-p30x4")
    ticket = next(m for _, m in client.messages if m["type"] == "ticket")["ticket"]
    await client.until("progress")
    a.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    again = await WsClient.open(b.ws_url)
    await again.recv()
    await again.send({"type": "resume", "ticket": ticket})
    assert (await again.until("ticket"))["ticket"] == ticket
    done = await again.until("done", timeout=lease + 30)
    assert time.monotonic() - killed_at < lease + 20
    assert again.of("progress"), "the browser saw the import continue"
    truth = slow_sim.get_json("/_sim/truth/chesscom/failover-p30x4")
    assert done["games_total"] == len(truth["games"]) == 120


async def test_restart_keeps_line_and_order(
    scratch_pg: str, slow_sim: Proc, hub_factory: HubFactory
) -> None:
    hubs = replicas(hub_factory, slow_sim, scratch_pg, 2, MAX_CONCURRENT_IMPORTS=2)
    tickets: list[str] = []
    import_ids: list[str] = []
    for n in range(12):
        c = await ask(hubs[n % 2], "chesscom", f"restart{n}-p20x2")
        answer = next(m for _, m in c.messages if m["type"] == "ticket")
        tickets.append(answer["ticket"])
        import_ids.append(answer["import_id"])
    expected = ["running"] * 2 + ["waiting"] * 10

    async def settled() -> bool:
        conn = await asyncpg.connect(scratch_pg)
        try:
            rows = await conn.fetch("SELECT state FROM queue_entries ORDER BY seq")
        finally:
            await conn.close()
        return [r["state"] for r in rows] == expected

    await eventually(settled, "two running, ten waiting", timeout=30)
    for hub in hubs:
        hub.stop(signal.SIGKILL)
    # Nothing lost or reordered while no replica runs.
    conn = await asyncpg.connect(scratch_pg)
    rows = await conn.fetch("SELECT import_id, state FROM queue_entries ORDER BY seq")
    await conn.close()
    assert [r["import_id"] for r in rows] == import_ids
    assert [r["state"] for r in rows] == ["running"] * 2 + ["waiting"] * 10

    revived = replicas(
        hub_factory, slow_sim, scratch_pg, 2, MAX_CONCURRENT_IMPORTS=2, HUB_LEASE_S=2
    )
    sampler, stop = LineSampler(scratch_pg), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    followers = []
    for n, ticket in enumerate(tickets):
        c = await WsClient.open(revived[n % 2].ws_url)
        await c.recv()
        await c.send({"type": "resume", "ticket": ticket})
        await c.until("ticket")
        followers.append(c)
    ends = await asyncio.gather(*(c.until("done", "failed", timeout=240) for c in followers))
    stop.set()
    await sampling
    assert [m["type"] for m in ends] == ["done"] * 12, ends
    assert sampler.peak["all"] <= 2 and not sampler.fifo_breaks
    for n, end in enumerate(ends):
        truth = slow_sim.get_json(f"/_sim/truth/chesscom/restart{n}-p20x2")
        assert end["games_total"] == len(truth["games"]) == 40


async def test_abandoned_ticket_dropped_by_any_replica(
    scratch_pg: str, slow_sim: Proc, hub_factory: HubFactory
) -> None:
    a, b = replicas(
        hub_factory, slow_sim, scratch_pg, 2, MAX_CONCURRENT_IMPORTS=1, HUB_RESUME_GRACE_S=2
    )
    blocker = await ask(a, "chesscom", "hold-p40x2")
    leaver = await ask(a, "chesscom", "leaver-p2x2")
    await leaver.until("queued")
    watcher = await ask(b, "chesscom", "stays-p2x2")
    await leaver.close()
    # Kept during the grace period (on the board every replica serves)...
    board = b.get_json("/api/queue")
    assert board["waiting_total"] == 2
    # ...then dropped, though its socket was on the other replica.
    await eventually(
        lambda: b.get_json("/api/queue")["waiting_total"] == 1, "the leaver dropped", timeout=15
    )
    # The watcher, on the other replica, moves up to first place.
    while (await watcher.until("queued", timeout=5))["position"] != 1:
        pass
    await blocker.until("done", timeout=60)
    await watcher.until("done", timeout=60)
