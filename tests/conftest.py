"""Shared fixtures: the simulator and hub as real processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import Proc, WsClient, start

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
