"""`python -m load.bench.fetchpool`: pages per second from the simulator (0 ms latency) through
the hub's fetch layer (one pooled session, `Http.open` + `make_sources`) against a fresh
`aiohttp.ClientSession` per request doing the same requests and the same parsing.

Both sides keep the same number of requests in flight (the hub's chess.com cap, which is also
what the simulator tolerates before it answers 429). Rounds alternate to share any noise.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from hub.fetch import make_sources
from hub.fetch.chesscom import parse_archives, parse_month
from hub.fetch.http import Http
from hub.settings import Settings, load_settings
from load.bench.common import RESULTS, show, write
from load.procs import run_async, spawn
from load.stats import ratio


def _players(round_: int, players: int, pages: int, games: int) -> list[str]:
    return [f"pool{round_}x{i}-p{pages}x{games}" for i in range(players)]


async def pooled(settings: Settings, names: list[str]) -> tuple[int, float, dict[str, Any]]:
    """Pages and seconds through the hub's own fetch layer."""
    http = await Http.open(settings)
    try:
        source = make_sources(http, settings)["chesscom"]
        gate = asyncio.Semaphore(settings.inflight_chesscom)

        async def one(name: str) -> int:
            async with gate:  # one import per in-flight slot, as the hub would run them
                return sum([1 async for _ in source.pages(name, None)])

        began = time.monotonic()
        pages = sum(await asyncio.gather(*(one(n) for n in names)))
        elapsed = time.monotonic() - began
        stats = {
            "connections_created": http.stats.connections_created,
            "connections_reused": http.stats.connections_reused,
            "requests_by_status": http.stats.requests_by_status.get("chesscom", {}),
            "retries": http.stats.retries.get("chesscom", 0),
        }
    finally:
        await http.close()
    return pages, elapsed, stats


async def fresh(settings: Settings, names: list[str]) -> tuple[int, float, dict[str, Any]]:
    """Pages and seconds with a new ClientSession (so a new connection) for every request."""
    headers = {"User-Agent": settings.user_agent}
    base = settings.chesscom_url.rstrip("/")
    gate = asyncio.Semaphore(settings.inflight_chesscom)
    statuses: dict[str, int] = {}

    async def get(url: str) -> bytes:
        async with (
            gate,
            aiohttp.ClientSession(headers=headers) as session,
            session.get(url) as resp,
        ):
            body = await resp.read()
            statuses[str(resp.status)] = statuses.get(str(resp.status), 0) + 1
            resp.raise_for_status()
            return body

    async def one(name: str) -> int:
        months = parse_archives(await get(f"{base}/pub/player/{name}/games/archives"))
        for _, url in months:
            path = url[url.index("/pub/") :]
            parse_month(await get(base + path), name)
        return len(months)

    began = time.monotonic()
    pages = sum(await asyncio.gather(*(one(n) for n in names)))
    elapsed = time.monotonic() - began
    requests = sum(statuses.values())
    return pages, elapsed, {"connections_created": requests, "requests_by_status": statuses}


async def _rounds(
    settings: Settings, rounds: int, names_for: Callable[[int, str], list[str]]
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"pooled": [], "fresh": []}
    for r in range(rounds):
        for name, fn in (("fresh", fresh), ("pooled", pooled)):
            got, elapsed, stats = await fn(settings, names_for(r, name))
            runs[name].append(
                {"pages": got, "seconds": round(elapsed, 3), "pages_per_s": got / elapsed, **stats}
            )
    med = {k: statistics.median(r["pages_per_s"] for r in v) for k, v in runs.items()}
    return {
        "rounds": runs,
        "pooled_pages_per_s": round(med["pooled"], 1),
        "fresh_pages_per_s": round(med["fresh"], 1),
        "ratio_pooled_over_fresh": ratio(med["pooled"], med["fresh"]),
    }


async def bench(sim_url: str, rounds: int, players: int, pages: int, games: int) -> dict[str, Any]:
    """Cold: every round asks for players the simulator has not built yet (its page building
    is part of each request). Warm: the same players again, built and cached by a first pass,
    so the figure is the fetch path's own cost."""
    settings = load_settings(environ={}, chesscom_url=sim_url, lichess_url=sim_url)

    def fresh_names(r: int, side: str) -> list[str]:
        return _players(2 * r + (side == "pooled"), players, pages, games)

    cold = await _rounds(settings, rounds, fresh_names)
    warm_names = _players(999, players, pages, games)
    await pooled(settings, warm_names)  # builds and caches them in the simulator
    warm = await _rounds(settings, rounds, lambda r, side: warm_names)
    return {
        "players": players,
        "pages_per_player": pages,
        "games_per_page": games,
        "in_flight": settings.inflight_chesscom,
        "cold": cold,
        "warm": warm,
        "goal": "ratio >= 2",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.fetchpool", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--players", type=int, default=40)
    parser.add_argument("--pages", type=int, default=10, help="months per player")
    parser.add_argument("--games", type=int, default=20, help="games per month")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-fetchpool"
    sim = spawn(
        ["-m", "hub", "sim", "--log-level", "warning", "--latency-ms", "0"],
        work / "sim.log",
        "/_sim/stats",
    )
    try:
        result = run_async(bench(sim.url, args.rounds, args.players, args.pages, args.games))
    finally:
        sim.stop()
    rows = []
    for kind in ("cold", "warm"):
        part = result[kind]
        pooled_run, fresh_run = part["rounds"]["pooled"][-1], part["rounds"]["fresh"][-1]
        rows += [
            [f"{kind}: fresh session per request", part["fresh_pages_per_s"],
             fresh_run["connections_created"], 0],
            [f"{kind}: hub fetch layer", part["pooled_pages_per_s"],
             pooled_run["connections_created"], pooled_run["connections_reused"]],
            [f"{kind}: pooled / fresh", part["ratio_pooled_over_fresh"], "", ""],
        ]  # fmt: skip
    show(
        "chess.com pages per second from the simulator (0 ms latency)",
        ["side", "pages/s (median)", "connections created", "reused"],
        rows,
    )
    print(write("fetchpool", result, args.out))


if __name__ == "__main__":
    main()
