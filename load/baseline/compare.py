"""`python -m load.baseline.compare`: the old design against the hub, burst by burst.

Old design: `POST /import` behind `asyncio.Semaphore(N)`, one blocking request per user with a
timeout. Import durations are scaled down (the simulator answers in milliseconds), and the
user's patience with them: timeout = 120 s x (measured solo import / a real import of 20 s).
The same bursts then hit a hub with N slots. Reported per burst and design: how many imports
completed (and, for the hub, how many within that same timeout), and how many users saw a
position or an estimate while they waited.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from load.bench.common import RESULTS, show, write
from load.derive import derive
from load.extra import missing
from load.procs import Child, raise_nofile, run_async, spawn, start_hub
from load.run import Options, drive

try:
    from rich.console import Console
except ModuleNotFoundError as exc:
    raise missing(exc) from None


def _server(work: Path, slots: int, sim: Child, tag: str) -> Child:
    db = f"sqlite:///{work / f'baseline-{tag}.db'}"
    argv = ["-m", "load.baseline.server", "--slots", str(slots), "--sim", sim.url]
    return spawn([*argv, "--database", db], work / f"baseline-{tag}.log", "/healthz")


async def _post(session: aiohttp.ClientSession, url: str, name: str, timeout_s: float) -> str:
    try:
        async with session.post(
            url + "/import",
            json={"source": "chesscom", "username": name},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            body = await resp.json()
            return "done" if resp.status == 200 and body.get("state") == "done" else "failed"
    except TimeoutError:
        return "timed_out"
    except aiohttp.ClientError:
        return "error"


async def calibrate(url: str, pages: int, games: int, runs: int = 3) -> float:
    """Median seconds of one import alone on the baseline."""
    took = []
    async with aiohttp.ClientSession() as session:
        for i in range(runs):
            began = time.monotonic()
            outcome = await _post(session, url, f"calib{i}-p{pages}x{games}", 120)
            if outcome != "done":
                raise RuntimeError(f"calibration import ended {outcome}")
            took.append(time.monotonic() - began)
    return statistics.median(took)


async def baseline_burst(
    url: str, users: int, pages: int, games: int, timeout_s: float
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        outcomes = await asyncio.gather(
            *(_post(session, url, f"base{users}u{i}-p{pages}x{games}", timeout_s)
              for i in range(users))
        )  # fmt: skip
        elapsed = time.monotonic() - began
    done = outcomes.count("done")
    return {
        "users": users,
        "done": done,
        "timed_out": outcomes.count("timed_out"),
        "failed": outcomes.count("failed") + outcomes.count("error"),
        "completion_rate": round(done / users, 4),
        "saw_position": 0,
        "saw_eta": 0,
        "wall_s": round(elapsed, 3),
    }


def hub_burst(work: Path, users: int, slots: int, latency_ms: float, pages: int, games: int,
              timeout_s: float, bound_s: float) -> dict[str, Any]:  # fmt: skip
    opts = Options(
        sockets=users,
        scenario="burst",
        player_pages=pages,
        player_games=games,
        timeout_s=bound_s,
        max_concurrent=slots,
        latency_ms=latency_ms,
        plot=False,
    )
    setup = start_hub(work / f"hub-{users}", max_concurrent=slots, latency_ms=latency_ms,
                      lichess_gps=0.0)  # fmt: skip
    try:
        users_, _, timing = run_async(drive(opts, [setup.hub.ws_url], Console(stderr=True)))
    finally:
        setup.stop()
    imports = [derive(u) for u in users_]
    done = [i for i in imports if i.outcome == "done"]
    in_time = [i for i in done if i.end is not None and i.sent is not None
               and i.end - i.sent <= timeout_s]  # fmt: skip
    saw_eta = sum(
        1 for u in users_
        if any(e < 1e8 for e in u.q_etas)
        or any(m.get("type") == "progress" and m.get("eta_s") is not None for _, m, _ in u.events)
    )  # fmt: skip
    return {
        "users": users,
        "done": len(done),
        "done_within_baseline_timeout": len(in_time),
        "lost": sum(1 for i in imports if i.outcome in ("lost", "not_sent")),
        "completion_rate": round(len(done) / users, 4),
        "completion_rate_within_timeout": round(len(in_time) / users, 4),
        "saw_position": sum(1 for u in users_ if len(u.q_positions) > 0),
        "saw_eta": saw_eta,
        "wall_s": round(timing.ended - timing.started, 3),
    }


async def _baseline_all(
    work: Path, sim: Child, args: argparse.Namespace, bursts: list[int]
) -> dict[str, Any]:
    server = _server(work, args.slots, sim, "calibration")
    try:
        solo = await calibrate(server.url, args.pages, args.games)
    finally:
        server.stop()
    scale = solo / args.real_import_s
    timeout_s = args.real_timeout_s * scale
    results = []
    for users in bursts:
        server = _server(work, args.slots, sim, str(users))
        try:
            burst = await baseline_burst(server.url, users, args.pages, args.games, timeout_s)
            results.append(burst)
        finally:
            server.stop()
    return {"solo_import_s": round(solo, 4), "scale": scale, "timeout_s": round(timeout_s, 4),
            "bursts": results}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.baseline.compare", description=__doc__)
    parser.add_argument("--users", default="10,50,200", help="burst sizes, comma-separated")
    parser.add_argument("--slots", type=int, default=2, help="N: semaphore size and hub slots")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--pages", type=int, default=2, help="months per player")
    parser.add_argument("--games", type=int, default=10, help="games per month")
    parser.add_argument("--real-import-s", type=float, default=20.0)
    parser.add_argument("--real-timeout-s", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    bursts = [int(x) for x in args.users.split(",") if x.strip()]
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-compare"
    sim = spawn(["-m", "hub", "sim", "--log-level", "warning", "--latency-ms",
                 str(args.latency_ms)], work / "sim.log", "/_sim/stats")  # fmt: skip
    try:
        base = run_async(_baseline_all(work, sim, args, bursts))
    finally:
        sim.stop()
    timeout_s = base["timeout_s"]
    # Bound the hub runs generously: everyone must finish, whatever the timeout.
    bound = max(120.0, 20 * base["solo_import_s"] * max(bursts) / args.slots)
    hub = [hub_burst(work, users, args.slots, args.latency_ms, args.pages, args.games,
                     timeout_s, bound) for users in bursts]  # fmt: skip
    result = {"slots": args.slots, "latency_ms": args.latency_ms, "pages": args.pages,
              "games": args.games, "baseline": base, "hub": hub}  # fmt: skip
    rows = []
    for b, h in zip(base["bursts"], hub, strict=True):
        n = b["users"]
        rows.append([n, b["completion_rate"], h["completion_rate"],
                     h["completion_rate_within_timeout"], f"{b['saw_position']}/{n}",
                     f"{h['saw_position']}/{n}", f"{h['saw_eta']}/{n}"])  # fmt: skip
    show(
        f"old design vs hub, {args.slots} slots, user timeout {timeout_s:.2f} s "
        f"(= {args.real_timeout_s:.0f} s scaled by {base['scale']:.4f})",
        ["users", "baseline done", "hub done", "hub done in timeout", "baseline saw position",
         "hub saw position", "hub saw ETA"],
        rows,
    )  # fmt: skip
    print(write("compare", result, args.out))


if __name__ == "__main__":
    main()
