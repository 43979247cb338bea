"""`python -m load.bench.memory`: RSS per idle queued socket, hub vs a bare websockets server.

For each N, a fresh bare server and a fresh hub run side by side. Each server's RSS is read
before any client socket connects (the hub's with its slot already held, see
`load/bench/line.py`), then with N sockets open: idle for the bare server, each queued behind
the held slot for the hub, once the line has gone quiet. The figure is (RSS delta / N), hub over
bare, from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from load.bench.bare import start_bare
from load.bench.common import RESULTS, show, write
from load.bench.line import join_waiters, rss_mb, start_held_hub
from load.bench.swarm import Swarm
from load.procs import raise_nofile, run_async
from load.stats import ratio

TARGET, AIM = 2.0, 1.6


async def one_size(sockets: int, processes: int, work: Path) -> dict[str, Any]:
    bare = start_bare(work / "bare.log")
    line = start_held_hub(work / "hub", sockets)
    bare_swarm, hub_swarm = Swarm(), Swarm()
    try:
        await line.hold(1)
        await asyncio.sleep(1.0)
        idle = {"bare": rss_mb(bare.pid), "hub": rss_mb(line.pid)}
        bare_connect = await bare_swarm.start(
            f"ws://127.0.0.1:{bare.port}/ws", sockets, processes, any_message=True
        )
        await asyncio.sleep(3.0)
        bare_loaded = rss_mb(bare.pid)
        hub_join = await join_waiters(line, hub_swarm, sockets, processes)
        loaded = {"bare": bare_loaded, "hub": rss_mb(line.pid)}
    finally:
        await bare_swarm.stop()
        await hub_swarm.stop()
        line.close()
        line.setup.stop()
        bare.stop()
    kib = {side: round((loaded[side] - idle[side]) * 1024 / sockets, 2) for side in idle}
    return {
        "sockets": sockets,
        "bare": {
            "connected": sum(c["ok"] for c in bare_connect),
            "rss_idle_mb": round(idle["bare"], 1),
            "rss_loaded_mb": round(loaded["bare"], 1),
            "kib_per_socket": kib["bare"],
        },
        "hub": {
            "join": hub_join,
            "rss_idle_mb": round(idle["hub"], 1),
            "rss_loaded_mb": round(loaded["hub"], 1),
            "kib_per_socket": kib["hub"],
        },
        "ratio_kib_per_socket": ratio(kib["hub"], kib["bare"]),
    }


async def bench(sizes: list[int], processes: int, work: Path) -> dict[str, Any]:
    runs = [await one_size(n, processes, work / str(n)) for n in sizes]
    return {"sizes": sizes, "runs": runs, "target": f"ratio <= {TARGET} (aim {AIM})"}


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("expected socket counts like 2000,5000")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.memory", description=__doc__)
    parser.add_argument(
        "--sockets", type=_sizes, default=[2000, 5000], help="comma-separated (default 2000,5000)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes per server (default 1)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-memory"
    result = run_async(bench(args.sockets, args.processes, work))
    rows = [
        [run["sockets"], run["bare"]["kib_per_socket"], run["hub"]["kib_per_socket"],
         run["ratio_kib_per_socket"]]
        for run in result["runs"]
    ]  # fmt: skip
    show(
        f"RSS per idle queued socket (target hub / bare <= {TARGET}, aim {AIM})",
        ["sockets", "bare KiB", "hub KiB", "hub / bare"],
        rows,
    )
    print(write("memory", result, args.out))


if __name__ == "__main__":
    main()
