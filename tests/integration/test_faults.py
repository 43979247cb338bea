"""Faults around a real hub: its database goes away, a client vanishes, the hub is stopped.

PostgreSQL is never stopped: the hub reaches a scratch database through a TCP
proxy in the test, and the proxy is what fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets

from hub.store import open_store
from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import Proc, WsClient
from tests.tcpproxy import TcpProxy


async def importing(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    await client.recv()  # hello
    await client.send({"type": "import", "source": source, "username": username})
    return client


async def stored_ids(url: str, source: str, username: str) -> list[str]:
    store = open_store(url)
    await store.connect()
    try:
        return await store.game_ids(source, username)
    finally:
        await store.close()


def truth(sim: Proc, source: str, username: str) -> list[str]:
    games: list[str] = sim.get_json(f"/_sim/truth/{source}/{username}")["games"]
    return games


async def drain(client: WsClient, seconds: float) -> None:
    """Read (and keep) whatever arrives for `seconds`."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            await client.recv(left)


# -- SQLite: another process holds the write lock ------------------------------


def lock_exclusive(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=20, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


async def test_sqlite_locked_mid_import(
    slow_sim: Proc, hub_factory: HubFactory, tmp_path: Path
) -> None:
    user = "locked-p60x3"
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1, HUB_INFLIGHT_CHESSCOM=1)
    a = await importing(hub, "chesscom", user)
    await a.until("progress")
    lock = await asyncio.to_thread(lock_exclusive, tmp_path / "hub.db")
    try:
        # A second player asks meanwhile: its record waits for the lock like the pages do.
        b = await importing(hub, "lichess", "after-lock-p2x20")
        await drain(a, 0.5)
        pages_then = len(a.of("progress"))
        assert not a.of("done"), "the import ended before the lock was taken"
        await drain(a, 2.0)
        # Held up, not failed: no page was stored, the slot is still taken, the hub answers.
        assert not a.of("failed") and len(a.of("progress")) == pages_then
        assert not b.of("ticket")
        assert hub.get_json("/healthz") == {"status": "ok"}
        board = hub.get_json("/api/queue")
        assert board["slots_free"] == 0 and [r["player"] for r in board["running"]] == ["lo…"]
    finally:
        await asyncio.to_thread(lock.rollback)
        lock.close()
    done = await a.until("done", "failed")
    assert done["type"] == "done" and done["games_total"] == 180, done
    assert (await b.until("done", "failed"))["type"] == "done"  # no slot leaked
    c = await importing(hub, "chesscom", "after-lock-p2x3")
    assert (await c.until("done", "failed"))["type"] == "done"
    ids = await stored_ids(f"sqlite:///{tmp_path / 'hub.db'}", "chesscom", user)
    assert sorted(ids) == sorted(truth(slow_sim, "chesscom", user))


# -- PostgreSQL through a proxy that the test cuts ------------------------------


def via_port(url: str, port: int) -> str:
    """The same database, reached on another local port."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return parts._replace(
        netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    ).geturl()


@pytest.mark.postgres
async def test_postgres_goes_away_mid_import(
    slow_sim: Proc, hub_factory: HubFactory, scratch_pg: str
) -> None:
    target = urlsplit(scratch_pg)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.restore()
    try:
        hub = hub_factory(slow_sim, DATABASE_URL=via_port(scratch_pg, proxy.port))
        a = await importing(hub, "chesscom", "pgcut-p30x2")
        await a.until("progress")
        await a.until("progress")
        proxy.cut()  # every pooled connection reset, new ones refused
        failed = await a.until("failed", "done", timeout=30)
        assert failed["type"] == "failed" and failed["code"] == "storage_unavailable", failed
        assert hub.get_json("/healthz") == {"status": "ok"}  # what needs no database still works
        # Asking meanwhile gets a clear answer (the line itself is in the database).
        refused = await importing(hub, "lichess", "pgcut-meanwhile-p2x5")
        assert (await refused.until("error", "ticket"))["code"] == "storage_unavailable"
        # Down until the hub itself reports it, so the pools have retried and failed.
        await eventually(lambda: ready_status(hub) == 503, "/readyz reports the outage")
        proxy.restore()
        # The line lives in the database too: the end is recorded once it is back.
        board = await eventually(
            lambda: idle_board(hub), "the stopped import leaves the board", timeout=15
        )
        assert board is not None and board["slots_free"] == board["slots_total"], board
        # The same player again: it goes on from the last stored page, without duplicates.
        b = await importing(hub, "chesscom", "pgcut-p30x2")
        done = await b.until("done", "failed", timeout=60)
        assert done["type"] == "done" and done["games_total"] == 60, done
        assert done["pages"] < 30  # resumed, not started over
        c = await importing(hub, "lichess", "pgcut-after-p2x30")
        assert (await c.until("done", "failed", timeout=60))["type"] == "done"
        ids = await stored_ids(scratch_pg, "chesscom", "pgcut-p30x2")
        assert sorted(ids) == sorted(truth(slow_sim, "chesscom", "pgcut-p30x2"))
        logs = hub.logs()
        assert "storage unavailable - import stops" in logs
        assert "code=storage_unavailable" in logs
    finally:
        proxy.close()


def ready_status(hub: Proc) -> int:
    try:
        with urllib.request.urlopen(hub.url + "/readyz", timeout=5) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status


def idle_board(hub: Proc) -> dict[str, Any] | None:
    board: dict[str, Any] = hub.get_json("/api/queue")
    return None if board["running"] else board


# -- a client that vanishes without a close frame ---------------------------------


def waiting(hub: Proc) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = hub.get_json("/api/queue")["waiting"]
    return rows


async def keep_reading(client: WsClient) -> None:
    """A live client reads all the time; one whose reading stalls is reaped like a dead one."""
    with contextlib.suppress(Exception):
        while True:
            await client.recv(3600)


async def test_vanished_client_is_reaped_then_dropped(
    slow_sim: Proc, hub_factory: HubFactory
) -> None:
    grace = 2.0
    hub = hub_factory(
        slow_sim,
        MAX_CONCURRENT_IMPORTS=1,
        HUB_INFLIGHT_CHESSCOM=1,
        HUB_WS_PING_S=1,
        HUB_RESUME_GRACE_S=grace,
    )
    blocker = await importing(hub, "chesscom", "blocker-p240x1")  # holds the only slot
    ticket = (await blocker.until("ticket"))["ticket"]
    await blocker.until("started")
    watcher = await WsClient.open(hub.ws_url)
    await watcher.recv()
    await watcher.send({"type": "watch_queue"})
    readers = [asyncio.create_task(keep_reading(c)) for c in (blocker, watcher)]
    # The client's own keepalive is off: it only stops answering the hub's pings.
    ghost = await websockets.connect(hub.ws_url, proxy=None, ping_interval=None)
    try:
        await ghost.recv()
        await ghost.send('{"type":"import","source":"chesscom","username":"vanish-p2x2"}')
        assert '"ticket"' in await ghost.recv()
        rows = await eventually(lambda: waiting(hub), "the ghost's import waits", timeout=10)
        assert [r["player"] for r in rows] == ["va…"]
        ghost.transport.pause_reading()  # pings now go unanswered, and no close frame is sent
        gone_at = time.monotonic()

        last_seen = gone_at
        while time.monotonic() - gone_at < 15 and waiting(hub):
            last_seen = time.monotonic()
            await asyncio.sleep(0.1)
        dropped_at = time.monotonic()
        assert not waiting(hub), "the vanished client's import was never dropped"
        # At least a ping timeout and the whole grace; at most a ping cycle, grace and a tick.
        assert last_seen - gone_at >= 1.0 + grace - 0.3
        assert dropped_at - gone_at <= 2 * 1.0 + grace + 1.0 + 2.0  # + slack
        assert "code=abandoned" in hub.logs()

        def boards() -> list[int]:
            return [m["waiting_total"] for _, m in watcher.messages if m["type"] == "queue"]

        # The watcher saw it wait, then leave.
        await eventually(lambda: boards() and boards()[-1] == 0, "a board without it", timeout=10)
        assert 1 in boards()

        assert blocker.conn.close_code is None and watcher.conn.close_code is None
        readers[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers[0]
        await blocker.send({"type": "cancel", "ticket": ticket})
        assert (await blocker.until("failed", timeout=10))["code"] == "cancelled"
    finally:
        ghost.transport.abort()
        for reader in readers:
            reader.cancel()


# -- SIGTERM, then the next import of the player continues ----------------------------


async def test_import_resumes_after_sigterm(
    slow_sim: Proc, hub_factory: HubFactory, tmp_path: Path
) -> None:
    user = "sigterm-p24x5"
    first = hub_factory(slow_sim, HUB_SHUTDOWN_S=5)
    a = await importing(first, "chesscom", user)
    for _ in range(3):
        await a.until("progress")
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(15) in (0, -signal.SIGTERM)
    assert "code=interrupted" in first.logs()
    stored_before = max(m["games"] for m in a.of("progress"))
    interrupted = a.of("ticket")[0]["import_id"]

    second = hub_factory(slow_sim)  # the same database file
    assert second.get_json(f"/api/imports/{interrupted}")["error"] == "interrupted"
    b = await importing(second, "chesscom", user)
    done = await b.until("done", "failed", timeout=60)
    expected = truth(slow_sim, "chesscom", user)
    assert done["type"] == "done" and done["games_total"] == len(expected) == 120, done
    assert done["games_new"] <= 120 - stored_before  # earlier pages were not fetched again
    assert done["pages"] < 24
    ids = await stored_ids(f"sqlite:///{tmp_path / 'hub.db'}", "chesscom", user)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(expected)
