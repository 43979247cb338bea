"""`python -m load`: thousands of simulated browsers against one or more import hubs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from load.extra import INSTALL

if TYPE_CHECKING:
    from load.run import Options

# The modules that drive a run need the `load` extra (rich, matplotlib); they are imported
# only once the arguments are read, so --help works without it, and a run that lacks it
# stops in one line naming the install command.
SCENARIOS = ("burst", "ramp", "churn")
SOURCES = ("chesscom", "lichess", "mixed")


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load", description=__doc__, epilog=f"Needs the load extra: {INSTALL}"
    )
    p.add_argument("--sockets", type=int, default=1000, help="simulated browsers (default 1000)")
    p.add_argument(
        "--hub",
        action="append",
        default=[],
        metavar="URL",
        help="ws://host:port/ws of a running hub; repeat for several (round-robin). "
        "Default: start a `hub sim` and a `hub serve` on free ports",
    )
    p.add_argument("--scenario", choices=SCENARIOS, default="burst")
    p.add_argument("--rate", type=float, default=100.0, help="ramp: arrivals per second")
    p.add_argument("--churn", type=float, default=0.2, help="churn: fraction that drops mid-queue")
    p.add_argument("--churn-delay", type=float, default=3.0, help="churn: seconds before resume")
    p.add_argument("--source", choices=SOURCES, default="chesscom")
    p.add_argument("--player-pages", type=int, default=1, help="months (pages) per player")
    p.add_argument("--player-games", type=int, default=5, help="games per month")
    p.add_argument("--timeout", type=float, default=600.0, help="overall bound in seconds")
    p.add_argument("--out", type=Path, default=Path("load/results"))
    own = p.add_argument_group("own hub (ignored with --hub)")
    own.add_argument("--max-concurrent-imports", type=int, default=2)
    own.add_argument("--latency-ms", type=float, default=5.0, help="simulator latency")
    own.add_argument(
        "--lichess-gps", type=float, default=0.0, help="simulator lichess throttle, 0: none"
    )
    own.add_argument(
        "--hub-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the hub, e.g. HUB_LANE_CHESSCOM=4",
    )
    own.add_argument("--hub-log-level", default="info")
    p.add_argument(
        "--hub-pid", type=int, action="append", default=[], help="watch RSS/CPU of this pid"
    )
    p.add_argument(
        "--same-address",
        action="store_true",
        help="connect every socket from 127.0.0.1 (default: one 127.x.y.z address per user)",
    )
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--open-timeout", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-plot", action="store_true")
    return p


def options(args: argparse.Namespace) -> Options:
    from load.run import Options

    if args.sockets < 1:
        raise SystemExit("--sockets must be at least 1")
    for url in args.hub:
        if not url.startswith(("ws://127.", "ws://localhost", "ws://[::1]")):
            raise SystemExit(f"--hub {url!r}: only loopback hubs may be loaded")
    return Options(
        sockets=args.sockets,
        hubs=list(args.hub),
        scenario=args.scenario,
        rate=args.rate,
        churn=args.churn,
        churn_delay_s=args.churn_delay,
        source=args.source,
        player_pages=args.player_pages,
        player_games=args.player_games,
        timeout_s=args.timeout,
        out=args.out,
        max_concurrent=args.max_concurrent_imports,
        latency_ms=args.latency_ms,
        lichess_gps=args.lichess_gps,
        hub_env=dict(args.hub_env),
        hub_pids=list(args.hub_pid),
        connect_concurrency=args.connect_concurrency,
        open_timeout_s=args.open_timeout,
        seed=args.seed,
        plot=not args.no_plot,
        distinct_addresses=not args.same_address,
        hub_log_level=args.hub_log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    opts = options(args)
    from rich.console import Console

    from load.report import build, table
    from load.run import run

    console = Console(stderr=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{opts.scenario}"
    opts.out.mkdir(parents=True, exist_ok=True)
    data = run(opts, opts.out / "logs" / name, console)
    console.print("deriving figures…", highlight=False)
    report, series = build(data)
    path = opts.out / f"{name}.json"
    path.write_text(json.dumps({"report": report, "series": series}, indent=1))
    table(report, console)
    console.print(f"report: {path}", highlight=False)
    if opts.plot:
        from load.plot import draw  # matplotlib only when a plot is asked for

        png = draw(report, series, opts.out / f"{name}.png")
        console.print(f"plot: {png}", highlight=False)
    bad = report["completion"]["lost"] > 0 or report["timed_out"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
