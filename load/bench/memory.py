"""`python -m load.bench.memory`: hub RSS per idle queued socket vs a bare websockets server.

Both sides: RSS before any client socket, then with N sockets open (queued behind a held slot
for the hub, idle for the bare server); the figure is (RSS delta / N) hub over bare.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from load.bench.common import RESULTS, show, write
from load.bench.waves import bare_phase, hub_phase
from load.procs import raise_nofile, run_async
from load.stats import ratio


async def bench(sockets: int, processes: int, settle_s: float, work: Path) -> dict[str, Any]:
    bare = await bare_phase(work / "bare", sockets, processes, wave=False)
    hub = await hub_phase(work / "hub", sockets, processes, settle_s, wave=False)
    sides = {}
    for name, phase in (("bare", bare), ("hub", hub)):
        sides[name] = {
            "sockets": sockets,
            "rss_idle_mb": round(phase.rss_idle_mb, 1),
            "rss_loaded_mb": round(phase.rss_loaded_mb, 1),
            "kb_per_socket": round(phase.kb_per_socket, 2),
            **phase.extra,
        }
    return {
        "sockets": sockets,
        **sides,
        "ratio_kb_per_socket": ratio(hub.kb_per_socket, bare.kb_per_socket),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.memory", description=__doc__)
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--settle-timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-memory"
    result = run_async(bench(args.sockets, args.processes, args.settle_timeout, work))
    rows = [
        [name, result[name]["rss_idle_mb"], result[name]["rss_loaded_mb"],
         result[name]["kb_per_socket"]]
        for name in ("bare", "hub")
    ]  # fmt: skip
    rows.append(["hub / bare", "", "", result["ratio_kb_per_socket"]])
    show(f"RSS per idle socket at {args.sockets} sockets",
         ["side", "RSS idle MB", "RSS loaded MB", "KiB per socket"], rows)  # fmt: skip
    print(write("memory", result, args.out))


if __name__ == "__main__":
    main()
