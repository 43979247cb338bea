"""The simulator: its state, and aiohttp routes impersonating chess.com and lichess."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
from aiohttp import web

from hub.sim import players
from hub.sim.corr import Corr
from hub.sim.faults import Attempts, Penalties, SiteStats

Clock = Callable[[], float]


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Simulator knobs: latency, lichess throttle and penalty, parallel limits, slow delay."""

    latency_ms: float = 50.0
    lichess_gps: float = 20.0
    lichess_penalty_s: float = 60.0
    chesscom_parallel: int = 2
    lichess_parallel: int = 1
    # Under the hub's default read timeout (30 s): `slow` players are slow, not dead.
    slow_s: float = 5.0


class Sim:
    """One simulator: its clock, counters, fault memory, penalties, growth and game endings."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.stats = {"chesscom": SiteStats(), "lichess": SiteStats()}
        self.attempts = Attempts()
        self.penalties = Penalties()
        self.growth: dict[tuple[str, str], dict[players.Month, list[int]]] = {}
        self.heals: set[tuple[str, str]] = set()
        self.corr = Corr()
        self.outages: dict[str, tuple[float, int]] = {}  # site -> (until, requests refused)

    def grown(self, source: str, name: str) -> dict[players.Month, list[int]]:
        return self.growth.get((source, name), {})

    def healed(self, source: str, name: str) -> bool:
        return (source, name) in self.heals

    def down(self, site: str) -> bool:
        """Whether the site is in an outage (`/_sim/outage`); counts the request it refuses."""
        until, refused = self.outages.get(site, (0.0, 0))
        if time.monotonic() >= until:
            return False
        self.outages[site] = (until, refused + 1)
        return True

    async def pause(self) -> None:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    def reset(self) -> None:
        for stats in self.stats.values():
            stats.reset()
        self.attempts.clear()
        self.penalties.clear()
        self.growth.clear()
        self.heals.clear()
        self.corr.clear()
        self.outages.clear()


SIM = web.AppKey("sim", Sim)


def make_app(config: SimConfig, *, clock: Clock = time.time) -> web.Application:
    """The simulator app; `clock` (epoch seconds) decides the current month and game times."""
    from hub.sim import control
    from hub.sim.chesscom import ChessComSite
    from hub.sim.lichess import LichessSite

    sim = Sim(config, clock)
    app = web.Application()
    app[SIM] = sim
    chesscom, lichess = ChessComSite(sim), LichessSite(sim)
    add = app.router.add_get
    add("/pub/player/{user}/games/archives", chesscom.archives)
    add(r"/pub/player/{user}/games/{year:\d{4}}/{month:\d{2}}", chesscom.month)
    add("/pub/player/{user}/stats", chesscom.stats)
    add("/api/user/{user}", lichess.user)
    add("/api/games/user/{user}", lichess.export)
    app.router.add_post("/api/games/export/_ids", lichess.ids)
    control.add_routes(app)
    return app


async def start_sim(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, *, clock: Clock = time.time
) -> tuple[web.AppRunner, int]:
    """Serve the simulator; returns the runner (call `cleanup()`) and the bound port."""
    # a short shutdown timeout so cleanup does not wait out `slow` players
    runner = web.AppRunner(make_app(config, clock=clock), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
