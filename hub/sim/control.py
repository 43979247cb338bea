"""The simulator's own routes under /_sim: ground truth, counters and the knobs of faults."""

from __future__ import annotations

import time

from aiohttp import web

from hub.sim import players
from hub.sim.app import SIM, Sim
from hub.sim.replies import json_reply


def _player(request: web.Request) -> tuple[Sim, str, str] | web.Response:
    source, name = request.match_info["source"], request.match_info["user"].lower()
    if source not in players.SOURCES or not players.exists(name):
        return json_reply(404, {"error": "Not found"})
    return request.app[SIM], source, name


def _count(request: web.Request) -> int | None:
    try:
        count = int(request.query.get("games", "1"))
    except ValueError:
        return None
    return count if 0 <= count <= 100_000 else None


async def truth(request: web.Request) -> web.Response:
    """Every game id a full export would return now, oldest first; games in progress not."""
    found = _player(request)
    if isinstance(found, web.Response):
        return found
    sim, source, name = found
    ids: list[str] = []
    months: list[players.Month] = []
    if players.fault_of(name) != "gone":  # gone players hold nothing a client can fetch
        now, growth = sim.clock(), sim.grown(source, name)
        extra: list[tuple[int, str]] = []
        if source == "lichess" and players.fault_of(name) == "corr":
            extra = [(g["createdAt"], g["id"]) for g in sim.corr.finished(name, now, growth)]
        ids, months = players.all_games(source, name, now, growth, extra)
    return json_reply(
        200,
        {
            "source": source,
            "username": name,
            "games": ids,
            "months": [f"{y:04d}/{m:02d}" for y, m in months],
        },
    )


async def grow(request: web.Request) -> web.Response:
    """Add games to the player's current month."""
    found = _player(request)
    if isinstance(found, web.Response):
        return found
    sim, source, name = found
    count = _count(request)
    if count is None:
        return json_reply(400, {"error": "games must be an integer in 0..100000"})
    now = sim.clock()
    month = players.month_of(now)
    times = sim.growth.setdefault((source, name), {}).setdefault(month, [])
    data = players.month_data(source, name, month, now, times)
    last = data.last_ms or players.month_start_ms(month)
    times.extend(players.grow_times(last, int(now * 1000), count))
    return json_reply(
        200,
        {
            "source": source,
            "username": name,
            "month": f"{month[0]:04d}/{month[1]:02d}",
            "added": count,
            "games_in_month": len(data.ids) + count,
        },
    )


async def heal(request: web.Request) -> web.Response:
    """A `hole` player's broken month (chess.com) or export (lichess) works from now on."""
    found = _player(request)
    if isinstance(found, web.Response):
        return found
    sim, source, name = found
    sim.heals.add((source, name))
    return json_reply(200, {"source": source, "username": name, "healed": True})


async def finish(request: web.Request) -> web.Response:
    """End N of a `corr` player's games in progress, 30 days or more after the last import."""
    found = _player(request)
    if isinstance(found, web.Response):
        return found
    sim, source, name = found
    if source != "lichess" or players.fault_of(name) != "corr":
        return json_reply(404, {"error": "Only lichess corr… players have games in progress"})
    count = _count(request)
    if count is None:
        return json_reply(400, {"error": "games must be an integer in 0..100000"})
    now, growth = sim.clock(), sim.grown(source, name)
    ended = sim.corr.finish(name, count, now, growth)
    left = sim.corr.playing(name, now, growth)
    return json_reply(200, {"source": source, "username": name, "finished": ended, "ongoing": left})


async def stats(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_reply(200, {site: s.to_json() for site, s in sim.stats.items()})


async def reset(request: web.Request) -> web.Response:
    """Forget counters, fault memory, growth, heals and finished games."""
    request.app[SIM].reset()
    return json_reply(200, {"reset": True})


async def outage(request: web.Request) -> web.Response:
    """POST starts an outage of `s` seconds (0 ends it); GET tells how it goes."""
    sim, site = request.app[SIM], request.match_info["source"]
    if site not in players.SOURCES:
        return json_reply(404, {"error": "Not found"})
    if request.method == "POST":
        try:
            seconds = float(request.query.get("s", ""))
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 86400:
            return json_reply(400, {"error": "s must be a number of seconds in 0..86400"})
        sim.outages[site] = (time.monotonic() + seconds, 0)
    until, refused = sim.outages.get(site, (0.0, 0))
    left = max(until - time.monotonic(), 0.0)
    return json_reply(200, {"source": site, "left_s": round(left, 3), "refused": refused})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/truth/{source}/{user}", truth)
    app.router.add_get("/_sim/stats", stats)
    app.router.add_post("/_sim/grow/{source}/{user}", grow)
    app.router.add_post("/_sim/heal/{source}/{user}", heal)
    app.router.add_post("/_sim/finish/{source}/{user}", finish)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/outage/{source}", outage)
    app.router.add_post("/_sim/outage/{source}", outage)
