"""`python -m load.bench.summary`: player summaries under 500 clients, and a burst of 500.

A scratch store is seeded directly with a 50,000-game player (and a few of 5,000 games),
then a `hub serve` is started on it. Steady phase: 500 clients each ask for the big
player's summary one request at a time, 3 s between an answer and their next request,
while one client imports other players page by page. Burst: 500 requests sent at once
for summaries nobody has asked for yet. Throughout, the hub's thread count is read from
/proc/<pid>/task and `/healthz` is timed; its p99 is compared with an idle phase first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from hub.store import GameRow, ImportRecord, open_store
from load.bench.common import RESULTS, show, write
from load.procs import USER_AGENT, hub_running, raise_nofile, run_async
from load.stats import percentile

BIG = "summary-big"
BIG_GAMES = 50_000
SMALL_GAMES = 5_000
SMALL_PLAYERS = 9
PAGE = 1_000
TIME_CLASSES = ("bullet", "blitz", "rapid", "daily")


def _pct(values: list[float], q: float, digits: int = 1) -> float | None:
    value = percentile(sorted(values), q)
    return None if value is None else round(value, digits)


def _rows(username: str, games: int, seed: int) -> list[GameRow]:
    rng = random.Random(seed)
    start = 1_500_000_000
    rows = []
    for n in range(games):
        color = "white" if n % 2 else "black"
        outcome = rng.choice(("win", "draw", "loss"))
        rating, other = 1500 + rng.randrange(-200, 200), 1500 + rng.randrange(-200, 200)
        rows.append(
            GameRow(
                source="chesscom",
                game_id=f"{username}-{n}",
                username=username,
                end_time=start + n * 3000,
                time_class=TIME_CLASSES[n % len(TIME_CLASSES)],
                rated=True,
                white=username if color == "white" else "opponent",
                black=username if color == "black" else "opponent",
                white_rating=rating if color == "white" else other,
                black_rating=rating if color == "black" else other,
                white_result="win" if outcome == "win" else "resigned",
                black_result="resigned" if outcome == "win" else "win",
                color=color,
                outcome=outcome,
            )
        )
    return rows


async def seed(url: str, players: dict[str, int]) -> float:
    """Store the players' games through the store itself; seconds it took."""
    started = time.perf_counter()
    store = open_store(url)
    await store.connect()
    try:
        for k, (username, games) in enumerate(players.items()):
            import_id = f"seed-{username}"
            await store.create_import(
                ImportRecord(
                    id=import_id,
                    source="chesscom",
                    username=username,
                    state="running",
                    created_at=time.time(),
                )
            )
            rows = _rows(username, games, k)
            for at in range(0, games, PAGE):
                await store.store_page(
                    import_id, "chesscom", username, rows[at : at + PAGE], None, None
                )
            await store.finish_import(import_id, "done", time.time())
    finally:
        await store.close()
    return time.perf_counter() - started


@dataclass
class Watch:
    """The hub's threads and `/healthz` latency, sampled until stopped."""

    pid: int
    url: str
    threads_max: int = 0
    healthz_ms: list[float] = field(default_factory=list)
    healthz_failed: int = 0

    async def threads(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.threads_max = max(self.threads_max, len(os.listdir(f"/proc/{self.pid}/task")))
            await asyncio.sleep(0.05)

    async def healthz(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with session.get(self.url + "/healthz") as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                self.healthz_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.healthz_failed += 1
            await asyncio.sleep(0.05)

    def figures(self) -> dict[str, Any]:
        ms = self.healthz_ms
        return {
            "threads_max": self.threads_max,
            "healthz_n": len(ms),
            "healthz_p50_ms": _pct(ms, 50, 2),
            "healthz_p99_ms": _pct(ms, 99, 2),
            "healthz_failed": self.healthz_failed,
        }


async def watched(
    pid: int, url: str, session: aiohttp.ClientSession, work: Any
) -> tuple[Any, dict[str, Any]]:
    """Run `work` while watching the hub; its result and the watch's figures."""
    watch, stop = Watch(pid, url), asyncio.Event()
    watchers = [
        asyncio.create_task(watch.threads(stop)),
        asyncio.create_task(watch.healthz(session, stop)),
    ]
    try:
        result = await work
    finally:
        stop.set()
        await asyncio.gather(*watchers)
    return result, watch.figures()


@dataclass
class Asks:
    latencies_ms: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    async def one(self, session: aiohttp.ClientSession, url: str) -> None:
        started = time.perf_counter()
        try:
            async with session.get(url) as response:
                body = await response.read()  # not decoded: the client must stay light
                if response.status != 200 or not body:
                    self.failed.append(f"HTTP {response.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failed.append(type(exc).__name__)
            return
        self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def figures(self) -> dict[str, Any]:
        ms = self.latencies_ms
        return {
            "answered": len(ms),
            "failed": len(self.failed),
            "failures": sorted(set(self.failed)),
            "p50_ms": _pct(ms, 50),
            "p99_ms": _pct(ms, 99),
            "max_ms": round(max(ms), 1) if ms else None,
        }


@dataclass
class Importer:
    """Imports players one after another over a WebSocket; counts pages and their gaps."""

    ws_url: str
    pages: int = 0
    imports_done: int = 0
    gaps_s: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        async with websockets.connect(self.ws_url, compression=None, proxy=None) as ws:
            last = time.monotonic()
            while not stop.is_set():
                n += 1
                user = f"busy{n}-p60x20"
                await ws.send(
                    json.dumps({"type": "import", "source": "chesscom", "username": user})
                )
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "progress":
                        now = time.monotonic()
                        self.gaps_s.append(now - last)
                        last, self.pages = now, self.pages + 1
                    elif message["type"] in ("done", "failed"):
                        self.imports_done += message["type"] == "done"
                        break
                    if stop.is_set():
                        return

    def figures(self) -> dict[str, Any]:
        return {
            "pages_stored": self.pages,
            "imports_done": self.imports_done,
            "longest_gap_s": round(max(self.gaps_s), 2) if self.gaps_s else None,
        }


async def steady(
    session: aiohttp.ClientSession, hub_url: str, clients: int, pause_s: float, duration_s: float
) -> Asks:
    asks = Asks()
    url = f"{hub_url}/api/players/chesscom/{BIG}/summary"
    deadline = time.monotonic() + duration_s

    async def client(k: int) -> None:
        await asyncio.sleep(pause_s * k / clients)  # spread the first requests over one pause
        while time.monotonic() < deadline:
            await asks.one(session, url)
            await asyncio.sleep(pause_s)

    await asyncio.gather(*(client(k) for k in range(clients)))
    return asks


async def burst(session: aiohttp.ClientSession, hub_url: str, requests: int) -> Asks:
    """Summaries no one asked for yet: the big player's `all`, and the smaller players."""
    paths = [f"/api/players/chesscom/{BIG}/summary?games=all"]
    paths += [f"/api/players/chesscom/small{n}/summary" for n in range(SMALL_PLAYERS)]
    asks = Asks()
    await asyncio.gather(
        *(asks.one(session, hub_url + paths[n % len(paths)]) for n in range(requests))
    )
    return asks


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    url = args.database_url or f"sqlite:///{work / 'hub.db'}"
    players = {BIG: BIG_GAMES, **{f"small{n}": SMALL_GAMES for n in range(SMALL_PLAYERS)}}
    seed_s = await seed(url, players)
    result: dict[str, Any] = {
        "database": url.partition(":")[0],
        "seed_games": sum(players.values()),
        "seed_s": round(seed_s, 1),
        "clients": args.clients,
        "pause_s": args.pause,
        "steady_s": args.duration,
        "burst": args.burst,
        "summary_concurrency": args.summary_concurrency,
    }
    env = {"HUB_SUMMARY_CONCURRENCY": str(args.summary_concurrency)}
    with hub_running(
        work, max_concurrent=2, latency_ms=args.latency_ms, lichess_gps=0, database_url=url, env=env
    ) as setup:
        hub, pid = setup.hub, setup.hub.pid
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=args.timeout)
        headers = {"User-Agent": USER_AGENT}
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers
        ) as session:
            _, result["idle"] = await watched(pid, hub.url, session, asyncio.sleep(args.idle))

            importer, stop = Importer(hub.ws_url), asyncio.Event()
            importing = asyncio.create_task(importer.run(stop))
            work_ = steady(session, hub.url, args.clients, args.pause, args.duration)
            asks, watch = await watched(pid, hub.url, session, work_)
            stop.set()
            await importing
            result["steady"] = {**asks.figures(), **watch, **importer.figures()}

            asks, watch = await watched(pid, hub.url, session, burst(session, hub.url, args.burst))
            result["burst_result"] = {**asks.figures(), **watch}
            async with session.get(f"{hub.url}/api/players/chesscom/{BIG}/summary") as response:
                result["big_games_seen"] = (await response.json())["games"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.summary", description=__doc__)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between answer and ask")
    parser.add_argument("--duration", type=float, default=60.0, help="steady phase, seconds")
    parser.add_argument("--idle", type=float, default=5.0, help="idle phase, seconds")
    parser.add_argument("--burst", type=int, default=500, help="requests sent at once")
    parser.add_argument("--summary-concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="simulator latency")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--database-url", help="default: a scratch SQLite file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-summary"
    work.mkdir(parents=True, exist_ok=True)
    result = run_async(bench(args, work))
    idle, steady_, burst_ = result["idle"], result["steady"], result["burst_result"]
    rows = [
        ["idle", "-", "-", "-", idle["threads_max"], idle["healthz_p99_ms"], "-"],
        ["steady", steady_["answered"], steady_["failed"], steady_["p99_ms"],
         steady_["threads_max"], steady_["healthz_p99_ms"], steady_["pages_stored"]],
        ["burst", burst_["answered"], burst_["failed"], burst_["p99_ms"],
         burst_["threads_max"], burst_["healthz_p99_ms"], "-"],
    ]  # fmt: skip
    show(
        f"summaries of a {BIG_GAMES:,}-game player, {args.clients} clients",
        ["phase", "answered", "failed", "p99 ms", "threads max", "healthz p99 ms", "pages"],
        rows,
    )
    print(write("summary", result, args.out))


if __name__ == "__main__":
    main()
