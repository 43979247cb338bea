"""`python -m load.bench.fanout`: a slot frees with N waiters; hub vs a bare websockets server.

Both servers run side by side, each with N sockets held by the same raw-Protocol client (one
process per server by default). The hub's N sockets are chess.com imports queued behind a held
slot (`load/bench/line.py`); the bare server's are idle. Then, in turns, for each round: the
bare server is told to send every socket one personalised `queued`-shaped message (the clock
starts at its `trigger` frame), and the hub's running import is cancelled (the clock starts at
its `failed`), which moves every waiter up one place. The figure is the time until the LAST
socket has its message (for the hub: a `queued` with a smaller position), as a ratio hub / bare
of the medians over the rounds, all in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from load.bench.bare import bare_wave, start_bare
from load.bench.common import RESULTS, show, write
from load.bench.line import hub_wave, join_waiters, rss_mb, start_held_hub
from load.bench.rawws import open_recorded
from load.bench.swarm import Swarm
from load.procs import raise_nofile, run_async
from load.stats import ratio

TARGET = 1.5


async def bench(sockets: int, rounds: int, processes: int, work: Path) -> dict[str, Any]:
    bare = start_bare(work / "bare.log")
    line = start_held_hub(work / "hub", sockets)
    bare_swarm, hub_swarm = Swarm(), Swarm()
    try:
        await line.hold(rounds + 1)
        await asyncio.sleep(1.0)
        idle = {"bare": rss_mb(bare.pid), "hub": rss_mb(line.pid)}
        bare_connect = await bare_swarm.start(
            f"ws://127.0.0.1:{bare.port}/ws", sockets, processes, any_message=True
        )
        hub_join = await join_waiters(line, hub_swarm, sockets, processes)
        loaded = {"bare": rss_mb(bare.pid), "hub": rss_mb(line.pid)}
        control, seen = await open_recorded(f"ws://127.0.0.1:{bare.port}/control", "127.99.1.1")
        waves: dict[str, list[dict[str, Any]]] = {"bare": [], "hub": []}
        for _ in range(rounds):  # in turns, so drift on the shared machine hits both sides
            waves["bare"].append(await bare_wave(bare_swarm, control, seen))
            waves["hub"].append(await hub_wave(hub_swarm, line))
        control.close()
    finally:
        await bare_swarm.stop()
        await hub_swarm.stop()
        line.close()
        line.setup.stop()
        bare.stop()
    last = {side: [w["s"]["max"] for w in waves[side]] for side in waves}
    median = {side: [w["s"]["p50"] for w in waves[side]] for side in waves}
    per_socket = {
        side: round((loaded[side] - idle[side]) * 1024 / sockets, 2) for side in ("bare", "hub")
    }
    return {
        "sockets": sockets,
        "rounds": rounds,
        "client_processes_per_server": processes,
        "bare": {"connect": bare_connect, "waves": waves["bare"]},
        "hub": {"join": hub_join, "waves": waves["hub"]},
        "last_waiter_s": {side: _median(v) for side, v in last.items()},
        "median_waiter_s": {side: _median(v) for side, v in median.items()},
        "ratio_last_waiter": ratio(_median(last["hub"]), _median(last["bare"])),
        "ratio_last_waiter_by_round": [
            ratio(h, b) for h, b in zip(last["hub"], last["bare"], strict=True)
        ],
        "ratio_median_waiter": ratio(_median(median["hub"]), _median(median["bare"])),
        "target": f"ratio_last_waiter <= {TARGET}",
        "rss_mb": {"idle": idle, "loaded": loaded},
        "kib_per_socket": per_socket,
        "ratio_kib_per_socket": ratio(per_socket["hub"], per_socket["bare"]),
    }


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 4) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.fanout", description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000, help="waiters (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="waves on each side (default 5)")
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes per server (default 1)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-fanout"
    result = run_async(bench(args.sockets, args.rounds, args.processes, work))
    rows: list[list[Any]] = [
        [side, result["median_waiter_s"][side], result["last_waiter_s"][side],
         sum(w["missing"] for w in result[side]["waves"])]
        for side in ("bare", "hub")
    ]  # fmt: skip
    rows.append(["hub / bare", result["ratio_median_waiter"], result["ratio_last_waiter"], ""])
    show(
        f"a slot frees: {args.sockets} waiters get their new position (s after the trigger, "
        f"median of {args.rounds} rounds; target last waiter <= {TARGET}x)",
        ["side", "median waiter", "last waiter", "missing"],
        rows,
    )
    print(write("fanout", result, args.out))


if __name__ == "__main__":
    main()
