"""The simulated chess.com Published-Data API: archive list, monthly archives and stats."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from hub.sim import players
from hub.sim.faults import identifies
from hub.sim.replies import (
    CLOSED_MAX_AGE,
    OPEN_MAX_AGE,
    UNAVAILABLE,
    conditional,
    encoder,
    html_reply,
    json_reply,
)

if TYPE_CHECKING:
    from hub.sim.app import Sim

SITE = "chesscom"


class ChessComSite:
    """chess.com's paths: the User-Agent rule, 2 requests at a time, 301 to lower case."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    async def archives(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "archives")

    async def month(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "month")

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "stats")

    async def _serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        sim = self.sim
        stats = sim.stats[SITE]
        known = identifies(request.headers.get("User-Agent"))
        stats.begin(known)
        crowded = known and stats.in_flight > sim.config.chesscom_parallel
        try:
            await sim.pause()
            if sim.down(SITE):
                response = html_reply(503, UNAVAILABLE)
            elif not known:
                response = json_reply(403, {"code": 0, "message": "Forbidden"})
            elif crowded:
                response = json_reply(429, {"code": 0, "message": "Too many requests"})
            else:
                response = await self._answer(request, kind)
        finally:
            stats.end(known)
        stats.record(response.status)
        return response

    async def _answer(self, request: web.Request, kind: str) -> web.Response:
        raw = request.match_info["user"]
        name = raw.lower()
        if raw != name:
            tail = request.path[len(f"/pub/player/{raw}") :]
            query = f"?{request.query_string}" if request.query_string else ""
            location = f"{request.url.origin()}/pub/player/{name}{tail}{query}"
            return web.Response(status=301, headers={"Location": location})
        if not players.exists(name):
            return json_reply(404, {"code": 0, "message": f'User "{name}" not found.'})
        fault = players.fault_of(name)
        if fault == "slow":
            await asyncio.sleep(self.sim.config.slow_s)
        if fault == "gone":
            return json_reply(410, {"code": 0, "message": "The data is no longer available."})
        if fault == "flaky" and self.sim.attempts.first(request.path_qs):
            return html_reply(503, UNAVAILABLE)
        if kind == "stats":
            return self._stats(request, name)
        if kind == "archives":
            return self._archives(request, name)
        return self._month(request, name)

    def _archives(self, request: web.Request, name: str) -> web.Response:
        now = self.sim.clock()
        growth = self.sim.grown(SITE, name)
        months = players.player_months(name, now, growth)
        base = f"{request.url.origin()}/pub/player/{name}/games"
        body = encoder.encode({"archives": [f"{base}/{y:04d}/{m:02d}" for y, m in months]})
        return conditional(
            request, body, players.etag(body), self._modified(name, months), OPEN_MAX_AGE
        )

    def _month(self, request: web.Request, name: str) -> web.Response:
        now = self.sim.clock()
        growth = self.sim.grown(SITE, name)
        key = (int(request.match_info["year"]), int(request.match_info["month"]))
        if key not in players.player_months(name, now, growth):
            return json_reply(404, {"code": 0, "message": "Data not found."})
        broken = players.fault_of(name) == "hole" and not self.sim.healed(SITE, name)
        if broken and key == players.hole_month(name, now, growth):
            return json_reply(500, {"code": 0, "message": "An internal error has occurred."})
        data = players.month_data(SITE, name, key, now, growth.get(key, ()))
        age = OPEN_MAX_AGE if key == players.month_of(now) else CLOSED_MAX_AGE
        modified = players.last_modified_s(data, key, now)
        return conditional(request, data.body, data.etag, modified, age)

    def _stats(self, request: web.Request, name: str) -> web.Response:
        now = self.sim.clock()
        growth = self.sim.grown(SITE, name)
        body = encoder.encode(players.chesscom_stats(name, now, growth))
        months = players.player_months(name, now, growth)
        return conditional(
            request, body, players.etag(body), self._modified(name, months), OPEN_MAX_AGE
        )

    def _modified(self, name: str, months: list[players.Month]) -> int:
        """Last-Modified of the list and the stats: the latest game, or the month's start."""
        now = self.sim.clock()
        if not months:
            return players.month_start_ms(players.month_of(now)) // 1000
        last = months[-1]
        grown = self.sim.grown(SITE, name).get(last, ())
        return players.last_modified_s(players.month_data(SITE, name, last, now, grown), last, now)
