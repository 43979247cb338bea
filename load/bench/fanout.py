"""`python -m load.bench.fanout`: one wave of new positions to N waiters, hub vs bare websockets.

The figure is the time from the trigger (the running import's end for the hub, the `trigger`
frame for the bare server) until the LAST socket has its message, as a ratio hub / bare.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from load.bench.common import RESULTS, show, write
from load.bench.waves import Phase, bare_phase, hub_phase
from load.procs import raise_nofile, run_async
from load.stats import ratio


def _side(phase: Phase) -> dict[str, Any]:
    return {
        "sockets": phase.sockets,
        "connect_s": round(phase.connect_s, 3),
        "wave_s": phase.wave_s,
        "missing": phase.missing,
        "rss_idle_mb": round(phase.rss_idle_mb, 1),
        "rss_loaded_mb": round(phase.rss_loaded_mb, 1),
        "kb_per_socket": round(phase.kb_per_socket, 2),
        **phase.extra,
    }


async def bench(sockets: int, processes: int, settle_s: float, work: Path) -> dict[str, Any]:
    bare = await bare_phase(work / "bare", sockets, processes, wave=True)
    hub = await hub_phase(work / "hub", sockets, processes, settle_s, wave=True)
    return {
        "sockets": sockets,
        "client_processes": processes,
        "bare": _side(bare),
        "hub": _side(hub),
        "ratio_last_waiter": ratio(hub.wave_s.get("max"), bare.wave_s.get("max")),
        "ratio_median_waiter": ratio(hub.wave_s.get("p50"), bare.wave_s.get("p50")),
        "goal": "ratio_last_waiter <= 2",
        # the same set-up also gives the memory figure (load.bench.memory measures it alone)
        "ratio_kb_per_socket": ratio(hub.kb_per_socket, bare.kb_per_socket),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.fanout", description=__doc__)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument(
        "--settle-timeout", type=float, default=900.0, help="most seconds for the line to settle"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-fanout"
    result = run_async(bench(args.sockets, args.processes, args.settle_timeout, work))
    rows = [
        [name, result[name]["wave_s"].get("p50"), result[name]["wave_s"].get("max"),
         result[name]["missing"]]
        for name in ("bare", "hub")
    ]  # fmt: skip
    rows.append(["hub / bare", result["ratio_median_waiter"], result["ratio_last_waiter"], ""])
    show(f"fan-out to {args.sockets} waiters (s after the trigger)",
         ["side", "median waiter", "last waiter", "missing"], rows)  # fmt: skip
    print(write("fanout", result, args.out))


if __name__ == "__main__":
    main()
