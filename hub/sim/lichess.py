"""The simulated lichess API: profile, game export, games by id; one stream at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from hub.sim import players
from hub.sim.faults import identifies, with_dups
from hub.sim.replies import FAKE_404, TOO_MANY, UNAVAILABLE, encoder, html_reply, json_reply

if TYPE_CHECKING:
    from hub.sim.app import Sim

SITE = "lichess"
IDS_PER_REQUEST = 300
_BURST_S = 0.05  # the throttled stream sends what is due in bursts this far apart
_WRITE_LINES = 500  # lines per write when the stream is not throttled


class LichessSite:
    """lichess's paths: a fake HTML 404 without a User-Agent, one export stream per client."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    async def user(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "user")

    async def export(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "export")

    async def ids(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "ids")

    async def _serve(self, request: web.Request, kind: str) -> web.StreamResponse:
        sim = self.sim
        stats = sim.stats[SITE]
        address = request.remote or ""
        punished = sim.penalties.active(address, time.monotonic())
        known = identifies(request.headers.get("User-Agent"))
        # Exports and lookups by id share lichess's one-request-at-a-time rule.
        tracked = kind != "user" and known and not punished
        stats.begin(tracked)
        crowded = tracked and stats.in_flight > sim.config.lichess_parallel
        try:
            await sim.pause()
            response: web.StreamResponse
            if sim.down(SITE):
                response = html_reply(503, UNAVAILABLE)
            elif punished:
                response = html_reply(429, TOO_MANY)
            elif not known:
                response = html_reply(404, FAKE_404)
            elif crowded:
                if sim.config.lichess_penalty_s > 0:
                    until = time.monotonic() + sim.config.lichess_penalty_s
                    sim.penalties.start(address, until)
                response = html_reply(429, TOO_MANY)
            elif kind == "export":
                response = await self._export(request)
            elif kind == "ids":
                response = await self._ids(request)
            else:
                response = await self._user(request)
        finally:
            stats.end(tracked)
        stats.record(response.status)
        return response

    async def _gate(self, request: web.Request, name: str) -> web.Response | None:
        """The answer for a missing, slow or flaky player, or None to go on."""
        fault = players.fault_of(name)
        if not players.exists(name) or fault == "gone":
            return json_reply(404, {"error": "Not found"})
        if fault == "slow":
            await asyncio.sleep(self.sim.config.slow_s)
        if fault == "flaky" and self.sim.attempts.first(request.path_qs):
            return html_reply(503, UNAVAILABLE)
        return None

    async def _user(self, request: web.Request) -> web.Response:
        name = request.match_info["user"].lower()
        refused = await self._gate(request, name)
        if refused is not None:
            return refused
        sim, now = self.sim, self.sim.clock()
        growth = sim.grown(SITE, name)
        if players.fault_of(name) != "corr":
            return json_reply(200, players.lichess_user(name, now, growth))
        finished = sim.corr.finished(name, now, growth)
        playing = sim.corr.playing(name, now, growth)
        return json_reply(200, players.lichess_user(name, now, growth, finished, playing))

    async def _export(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["user"].lower()
        refused = await self._gate(request, name)
        if refused is not None:
            return refused
        query = request.query
        try:
            since = int(query.get("since", 0))
            until = int(query.get("until", 2**62))
            limit = int(query.get("max", 0))
        except ValueError:
            return json_reply(400, {"error": "Invalid since, until or max"})
        if limit < 0 or ("max" in query and limit == 0):
            return json_reply(400, {"error": "max must be positive"})
        rows = self._rows(name, query, since, until, limit)
        lines = [line for _, _, line in rows]
        fault = players.fault_of(name)
        if fault == "dup":
            lines = with_dups(lines)
        cut: int | None = None
        if fault == "drop" and self.sim.attempts.first(request.path_qs):
            cut = len(lines) // 2
        if fault == "hole" and not self.sim.healed(SITE, name):
            broken = players.hole_game(name, self.sim.clock(), self.sim.grown(SITE, name))
            cut = next((i for i, row in enumerate(rows) if row[1] == broken), None)
        return await self._stream(request, lines, cut)

    def _rows(
        self, name: str, query: Mapping[str, str], since: int, until: int, limit: int
    ) -> list[players.Line]:
        sim, now = self.sim, self.sim.clock()
        growth = sim.grown(SITE, name)
        newest_first = query.get("sort", "dateDesc") != "dateAsc"
        extra: Sequence[players.Line] = ()
        if players.fault_of(name) == "corr":
            sim.corr.read(name, now)
            extra = sim.corr.lines(name, now, growth, ongoing=query.get("ongoing") == "true")
        rows = players.lichess_rows(name, now, growth, since, until, limit, newest_first, extra)
        if query.get("finished") == "false":  # only the games in progress
            going = {game for _, game, line in extra if b'"status":"started"' in line}
            rows = [row for row in rows if row[1] in going]
        return rows

    async def _ids(self, request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode(errors="replace")
        wanted = [part.strip() for part in body.split(",") if part.strip()]
        if len(wanted) > IDS_PER_REQUEST:
            return json_reply(400, {"error": f"At most {IDS_PER_REQUEST} ids per request"})
        sim, now = self.sim, self.sim.clock()
        found: dict[str, bytes] = {}
        for owner in {sim.corr.owner[g] for g in wanted if g in sim.corr.owner}:
            sim.corr.read(owner, now)
            for game in sim.corr.games(owner, now, sim.grown(SITE, owner)):
                found[game["id"]] = encoder.encode(game) + b"\n"
        return await self._stream(request, [found[g] for g in wanted if g in found], None)

    async def _stream(
        self, request: web.Request, lines: Sequence[bytes], cut: int | None
    ) -> web.StreamResponse:
        """NDJSON lines at the throttle's pace; with `cut`, the connection breaks there."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            await self._send(response, lines[:cut] if cut is not None else lines)
            if cut is not None and request.transport is not None:
                # close without the last chunk: the client sees a truncated body
                request.transport.close()
            else:
                await response.write_eof()
        except ConnectionError:
            pass  # the client hung up; nobody is left to answer
        return response

    async def _send(self, response: web.StreamResponse, lines: Sequence[bytes]) -> None:
        gps = self.sim.config.lichess_gps
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
