"""`python -m load.bench.burst`: the load tool's burst at 1,000, then at 5,000 sockets.

Each size is a whole `python -m load --sockets N --scenario burst` run (own hub, 2 slots; its
report lands in `load/results/` as usual). The figure is imports a second at the largest size
against the smallest: a hub whose cost per event does not grow with the line keeps it near 1.
Beside it, for each size, the times from `import` sent to `ticket` and to the first `queued`,
and how many of the imports that waited saw a position before their `started` (must be all).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from load.bench.common import RESULTS, show, spread, write
from load.report import build
from load.run import Options, run
from load.stats import ratio

TARGET = 0.9


def one(sockets: int, timeout_s: float, out: Path, console: Console) -> dict[str, Any]:
    opts = Options(sockets=sockets, scenario="burst", timeout_s=timeout_s, out=out, plot=False)
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-burst"
    data = run(opts, out / "logs" / name, console)
    report, series = build(data)
    path = out / f"{name}.json"
    path.write_text(json.dumps({"report": report, "series": series}, indent=1))
    c = report["completion"]
    return {
        "sockets": sockets,
        "report": str(path),
        "done": c["done"],
        "lost": c["lost"],
        "timed_out": report["timed_out"],
        "imports_per_s": c["imports_per_s"],
        "time_to_ticket_ms": report["time_to_ticket_ms"],
        "time_to_first_queued_ms": report["time_to_first_queued_ms"],
        "saw_position_before_started": report["saw_position_before_started"],
        "running_at_once": report["running_at_once"],
    }


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError("expected at least two socket counts, like 1000,5000")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.burst", description=__doc__)
    parser.add_argument(
        "--sockets", type=_sizes, default=[1000, 5000], help="comma-separated (default 1000,5000)"
    )
    parser.add_argument("--timeout", type=float, default=1500.0, help="bound on each run, s")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console(stderr=True)
    runs = [one(n, args.timeout, args.out, console) for n in args.sockets]
    small, large = runs[0], runs[-1]
    result = {
        "runs": runs,
        "ratio_imports_per_s": ratio(large["imports_per_s"], small["imports_per_s"]),
        "target": f"imports/s at {large['sockets']} / at {small['sockets']} >= {TARGET}",
    }
    rows: list[list[Any]] = []
    for r in runs:
        k, q, w = (
            r["time_to_ticket_ms"],
            r["time_to_first_queued_ms"],
            r["saw_position_before_started"],
        )
        rows.append([
            r["sockets"], f"{r['done']} / {r['lost']}", r["imports_per_s"],
            spread(k), spread(q),
            f"{w['saw_position']} of {w['waited']}",
        ])  # fmt: skip
    rows.append([f"{large['sockets']} / {small['sockets']}", "", result["ratio_imports_per_s"],
                 "", "", ""])  # fmt: skip
    show(
        f"burst, 2 slots (target imports/s ratio >= {TARGET})",
        ["sockets", "done / lost", "imports/s", "ticket p50 / p99 ms",
         "first queued p50 / p99 ms", "saw a position before started"],
        rows,
    )  # fmt: skip
    print(write("burst", result, args.out))


if __name__ == "__main__":
    main()
