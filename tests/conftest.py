"""Shared fixtures: the simulator and hub as real processes, scratch PostgreSQL databases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.procs import Proc, WsClient, start

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

SIM_FAST = ["--latency-ms", "0", "--lichess-gps", "0", "--lichess-penalty-s", "1", "--slow-s", "3"]


@pytest.fixture(autouse=True)
async def _close_sockets() -> AsyncIterator[None]:
    yield
    while WsClient.opened:
        await WsClient.opened.pop().close()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Proc]:
    p = start(["sim", *SIM_FAST], {}, tmp_path / "sim.log", "/_sim/stats")
    yield p
    p.stop()


@pytest.fixture
def slow_sim(tmp_path: Path) -> Iterator[Proc]:
    """Every response takes 60 ms, so imports last long enough to queue behind each other."""
    args = ["sim", "--latency-ms", "60", "--lichess-gps", "0", "--lichess-penalty-s", "1"]
    p = start(args, {}, tmp_path / "slow-sim.log", "/_sim/stats")
    yield p
    p.stop()


HubFactory = Callable[..., Proc]


@pytest.fixture
def hub_factory(tmp_path: Path) -> Iterator[HubFactory]:
    """Start hubs against a simulator; each is stopped, and its log checked, at teardown."""
    started: list[Proc] = []

    def make(sim: Proc, tracebacks_ok: bool = False, **env: object) -> Proc:
        n = len(started)
        base = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
            "HUB_CHESSCOM_URL": sim.url,
            "HUB_LICHESS_URL": sim.url,
            "HUB_RETRY_BASE_S": "0.05",
            "HUB_PAUSE_CHESSCOM_S": "0.2",
            "HUB_PAUSE_LICHESS_S": "1",
            # Every test client comes from 127.0.0.1; the per-address limits have their own tests.
            "HUB_MAX_SOCKETS_PER_IP": "100000",
            "HUB_MAX_TICKETS_PER_IP": "100000",
            "HUB_WS_MSGS_PER_S": "1000",
        }
        base.update({k: str(v) for k, v in env.items()})
        p = start(["serve"], base, tmp_path / f"hub{n}.log", "/healthz")
        p.env["tracebacks_ok"] = "1" if tracebacks_ok else ""
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()
        if not p.env.get("tracebacks_ok"):
            assert "Traceback" not in p.logs(), p.logs()


def pg_url(database: str) -> str:
    """TEST_DATABASE_URL naming another database."""
    parts = urlsplit(PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://", 1))
    return parts._replace(path=f"/{database}").geturl()


def _admin(statement: str) -> None:
    """One statement on the admin database, from a thread of its own so that no running
    event loop of the test is touched."""

    async def run() -> None:
        admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@contextlib.contextmanager
def scratch_database(prefix: str = "hub_test") -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards: its URL.

    Without a reachable server the test is skipped with the reason, or fails with CI=true.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        password = urlsplit(PG_ADMIN_URL).password
        shown = PG_ADMIN_URL.replace(f":{password}@", ":***@") if password else PG_ADMIN_URL
        reason = f"PostgreSQL not reachable at {shown}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield pg_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    """A PostgreSQL database for one test, dropped afterwards: its URL."""
    with scratch_database() as url:
        yield url
