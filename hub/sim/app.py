"""aiohttp routes impersonating the chess.com Published-Data API and the lichess export."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from hub.sim import players
from hub.sim.faults import Attempts, Penalties, SiteStats, identifies, with_dups

Clock = Callable[[], float]


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Simulator knobs: latency, lichess throttle and penalty, parallel limits, slow delay."""

    latency_ms: float = 50.0
    lichess_gps: float = 20.0
    lichess_penalty_s: float = 60.0
    chesscom_parallel: int = 2
    lichess_parallel: int = 1
    slow_s: float = 30.0


_encoder = msgspec.json.Encoder()
_BURST_S = 0.05  # the throttled stream sends what is due in bursts this far apart
_WRITE_LINES = 500  # lines per write when the stream is not throttled
_OPEN_MAX_AGE = 300
_CLOSED_MAX_AGE = 43200
_PAGE = "<!DOCTYPE html><html><head><title>{0}</title></head><body><h1>{0}</h1></body></html>"
_FAKE_404 = _PAGE.format("Page not found!")
_TOO_MANY = _PAGE.format("Too many requests. Try again later.")
_UNAVAILABLE = _PAGE.format("503 Service Temporarily Unavailable")


class Sim:
    """One simulator: its clock, counters, fault memory, penalties and grown games."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.stats = {"chesscom": SiteStats(), "lichess": SiteStats()}
        self.attempts = Attempts()
        self.penalties = Penalties()
        self.growth: dict[tuple[str, str], dict[players.Month, list[int]]] = {}
        self.outages: dict[str, tuple[float, int]] = {}  # site -> (until, requests refused)

    def grown(self, source: str, name: str) -> dict[players.Month, list[int]]:
        return self.growth.get((source, name), {})

    async def _pause(self) -> None:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    # chess.com

    async def chesscom(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats["chesscom"]
        known = identifies(request.headers.get("User-Agent"))
        stats.begin(known)
        crowded = known and stats.in_flight > self.config.chesscom_parallel
        try:
            await self._pause()
            if self._down("chesscom"):
                response = _html(503, _UNAVAILABLE)
            elif not known:
                response = _json(403, {"code": 0, "message": "Forbidden"})
            elif crowded:
                response = _json(429, {"code": 0, "message": "Too many requests"})
            else:
                response = await self._chesscom(request)
        finally:
            stats.end(known)
        stats.record(response.status)
        return response

    async def _chesscom(self, request: web.Request) -> web.Response:
        raw = request.match_info["user"]
        name = raw.lower()
        if raw != name:
            tail = request.path[len(f"/pub/player/{raw}") :]
            query = f"?{request.query_string}" if request.query_string else ""
            location = f"{request.url.origin()}/pub/player/{name}{tail}{query}"
            return web.Response(status=301, headers={"Location": location})
        if not players.exists(name):
            return _json(404, {"code": 0, "message": f'User "{name}" not found.'})
        fault = players.fault_of(name)
        if fault == "slow":
            await asyncio.sleep(self.config.slow_s)
        if fault == "gone":
            return _json(410, {"code": 0, "message": "The data is no longer available."})
        if fault == "flaky" and self.attempts.first(request.path_qs):
            return _html(503, _UNAVAILABLE)
        now = self.clock()
        growth = self.grown("chesscom", name)
        months = players.player_months(name, now, growth)
        year, month = request.match_info.get("year"), request.match_info.get("month")
        if year is None or month is None:
            base = f"{request.url.origin()}/pub/player/{name}/games"
            body = _encoder.encode({"archives": [f"{base}/{y:04d}/{m:02d}" for y, m in months]})
            tag = players.etag(body)
            if not months:
                start = players.month_start_ms(players.month_of(now)) // 1000
                return _conditional(request, body, tag, start, _OPEN_MAX_AGE)
            last = months[-1]
            data = players.month_data("chesscom", name, last, now, growth.get(last, ()))
            modified = players.last_modified_s(data, last, now)
            return _conditional(request, body, tag, modified, _OPEN_MAX_AGE)
        key = (int(year), int(month))
        if key not in months:
            return _json(404, {"code": 0, "message": "Data not found."})
        data = players.month_data("chesscom", name, key, now, growth.get(key, ()))
        age = _OPEN_MAX_AGE if key == players.month_of(now) else _CLOSED_MAX_AGE
        modified = players.last_modified_s(data, key, now)
        return _conditional(request, data.body, data.etag, modified, age)

    # lichess

    async def lichess_user(self, request: web.Request) -> web.StreamResponse:
        return await self._lichess(request, stream=False)

    async def lichess_export(self, request: web.Request) -> web.StreamResponse:
        return await self._lichess(request, stream=True)

    async def _lichess(self, request: web.Request, stream: bool) -> web.StreamResponse:
        stats = self.stats["lichess"]
        address = request.remote or ""
        punished = self.penalties.active(address, time.monotonic())
        known = identifies(request.headers.get("User-Agent"))
        tracked = stream and known and not punished
        stats.begin(tracked)
        crowded = tracked and stats.in_flight > self.config.lichess_parallel
        try:
            await self._pause()
            response: web.StreamResponse
            if self._down("lichess"):
                response = _html(503, _UNAVAILABLE)
            elif punished:
                response = _html(429, _TOO_MANY)
            elif not known:
                response = _html(404, _FAKE_404)
            elif crowded:
                if self.config.lichess_penalty_s > 0:
                    until = time.monotonic() + self.config.lichess_penalty_s
                    self.penalties.start(address, until)
                response = _html(429, _TOO_MANY)
            elif stream:
                response = await self._export(request)
            else:
                response = await self._user(request)
        finally:
            stats.end(tracked)
        stats.record(response.status)
        return response

    async def _lichess_gate(self, request: web.Request, name: str) -> web.Response | None:
        """The answer for a missing, slow or flaky player, or None to go on."""
        fault = players.fault_of(name)
        if not players.exists(name) or fault == "gone":
            return _json(404, {"error": "Not found"})
        if fault == "slow":
            await asyncio.sleep(self.config.slow_s)
        if fault == "flaky" and self.attempts.first(request.path_qs):
            return _html(503, _UNAVAILABLE)
        return None

    async def _user(self, request: web.Request) -> web.Response:
        name = request.match_info["user"].lower()
        refused = await self._lichess_gate(request, name)
        if refused is not None:
            return refused
        return _json(200, players.lichess_user(name, self.clock(), self.grown("lichess", name)))

    async def _export(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["user"].lower()
        refused = await self._lichess_gate(request, name)
        if refused is not None:
            return refused
        query = request.query
        try:
            since = int(query.get("since", 0))
            until = int(query.get("until", 2**62))
            limit = int(query.get("max", 0))
        except ValueError:
            return _json(400, {"error": "Invalid since, until or max"})
        if limit < 0 or ("max" in query and limit == 0):
            return _json(400, {"error": "max must be positive"})
        newest_first = query.get("sort", "dateDesc") != "dateAsc"
        growth = self.grown("lichess", name)
        lines = players.lichess_lines(name, self.clock(), growth, since, until, limit, newest_first)
        fault = players.fault_of(name)
        if fault == "dup":
            lines = with_dups(lines)
        cut = fault == "drop" and self.attempts.first(request.path_qs)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            await self._send(response, lines[: len(lines) // 2] if cut else lines)
            if cut and request.transport is not None:
                # close without the last chunk: the client sees a truncated body
                request.transport.close()
            else:
                await response.write_eof()
        except ConnectionError:
            pass  # the client hung up; nobody is left to answer
        return response

    async def _send(self, response: web.StreamResponse, lines: Sequence[bytes]) -> None:
        gps = self.config.lichess_gps
        if gps <= 0:
            for i in range(0, len(lines), _WRITE_LINES):
                await response.write(b"".join(lines[i : i + _WRITE_LINES]))
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while sent < len(lines):
            # line k is due k/gps seconds after the start; send everything due so far
            due = min(len(lines), max(sent + 1, int((loop.time() - start) * gps) + 1))
            await response.write(b"".join(lines[sent:due]))
            sent = due
            if sent < len(lines):
                await asyncio.sleep(max(sent / gps - (loop.time() - start), _BURST_S))

    def _down(self, site: str) -> bool:
        """Whether the site is in an outage; counts the request it refuses."""
        until, refused = self.outages.get(site, (0.0, 0))
        if time.monotonic() >= until:
            return False
        self.outages[site] = (until, refused + 1)
        return True

    async def outage(self, request: web.Request) -> web.Response:
        """POST starts an outage of `s` seconds (0 ends it); GET tells how it goes."""
        site = request.match_info["source"]
        if site not in players.SOURCES:
            return _json(404, {"error": "Not found"})
        if request.method == "POST":
            try:
                seconds = float(request.query.get("s", ""))
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 86400:
                return _json(400, {"error": "s must be a number of seconds in 0..86400"})
            self.outages[site] = (time.monotonic() + seconds, 0)
        until, refused = self.outages.get(site, (0.0, 0))
        left = max(until - time.monotonic(), 0.0)
        return _json(200, {"source": site, "left_s": round(left, 3), "refused": refused})

    # introspection

    async def truth(self, request: web.Request) -> web.Response:
        source, name = request.match_info["source"], request.match_info["user"].lower()
        if source not in players.SOURCES or not players.exists(name):
            return _json(404, {"error": "Not found"})
        ids: list[str] = []
        months: list[players.Month] = []
        if players.fault_of(name) != "gone":  # gone players hold nothing a client can fetch
            ids, months = players.all_games(source, name, self.clock(), self.grown(source, name))
        return _json(
            200,
            {
                "source": source,
                "username": name,
                "games": ids,
                "months": [f"{y:04d}/{m:02d}" for y, m in months],
            },
        )

    async def grow(self, request: web.Request) -> web.Response:
        source, name = request.match_info["source"], request.match_info["user"].lower()
        if source not in players.SOURCES or not players.exists(name):
            return _json(404, {"error": "Not found"})
        try:
            count = int(request.query.get("games", "1"))
        except ValueError:
            count = -1
        if not 0 <= count <= 100_000:
            return _json(400, {"error": "games must be an integer in 0..100000"})
        now = self.clock()
        month = players.month_of(now)
        times = self.growth.setdefault((source, name), {}).setdefault(month, [])
        data = players.month_data(source, name, month, now, times)
        last = data.last_ms or players.month_start_ms(month)
        times.extend(players.grow_times(last, int(now * 1000), count))
        return _json(
            200,
            {
                "source": source,
                "username": name,
                "month": f"{month[0]:04d}/{month[1]:02d}",
                "added": count,
                "games_in_month": len(data.ids) + count,
            },
        )

    async def stats_view(self, request: web.Request) -> web.Response:
        return _json(200, {site: stats.to_json() for site, stats in self.stats.items()})

    async def reset(self, request: web.Request) -> web.Response:
        for stats in self.stats.values():
            stats.reset()
        self.attempts.clear()
        self.penalties.clear()
        self.growth.clear()
        self.outages.clear()
        return _json(200, {"reset": True})


SIM = web.AppKey("sim", Sim)


def make_app(config: SimConfig, *, clock: Clock = time.time) -> web.Application:
    """The simulator app; `clock` (epoch seconds) decides the current month and game times."""
    sim = Sim(config, clock)
    app = web.Application()
    app[SIM] = sim
    add = app.router.add_get
    add("/pub/player/{user}/games/archives", sim.chesscom)
    add(r"/pub/player/{user}/games/{year:\d{4}}/{month:\d{2}}", sim.chesscom)
    add("/api/user/{user}", sim.lichess_user)
    add("/api/games/user/{user}", sim.lichess_export)
    add("/_sim/truth/{source}/{user}", sim.truth)
    add("/_sim/stats", sim.stats_view)
    app.router.add_post("/_sim/grow/{source}/{user}", sim.grow)
    app.router.add_post("/_sim/reset", sim.reset)
    add("/_sim/outage/{source}", sim.outage)
    app.router.add_post("/_sim/outage/{source}", sim.outage)
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


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(
        status=status, body=_encoder.encode(payload), content_type="application/json"
    )


def _html(status: int, page: str) -> web.Response:
    return web.Response(status=status, text=page, content_type="text/html")


def _conditional(
    request: web.Request, body: bytes, tag: str, modified: int, max_age: int
) -> web.Response:
    """200 with validators, or 304 when the client's copy is still current."""
    headers = {
        "ETag": tag,
        "Last-Modified": email.utils.formatdate(modified, usegmt=True),
        "Cache-Control": f"max-age={max_age}",
    }
    match = request.headers.get("If-None-Match")
    if match is not None:
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        fresh = "*" in tags or tag in tags
    else:
        since = request.if_modified_since
        fresh = since is not None and since.timestamp() >= modified
    if fresh:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")
