"""The `hub` command: `hub serve` runs the hub, `hub sim` runs the upstream simulator."""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Sequence
from typing import Any

from hub.settings import SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the import hub under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--sim", action="store_true", help="run the upstream simulator in this process and use it"
    )
    serve.add_argument("--max-concurrent-imports", type=int, dest="max_concurrent_imports")
    serve.add_argument("--database-url", dest="database_url")
    serve.add_argument("--chesscom-url", dest="chesscom_url")
    serve.add_argument("--lichess-url", dest="lichess_url")
    serve.add_argument("--log-level", default="info")
    _sim_flags(serve, prefix="sim-")

    sim = commands.add_parser("sim", help="run the chess.com and lichess simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    sim.add_argument("--log-level", default="info")
    _sim_flags(sim, prefix="")
    return parser


def _sim_flags(parser: argparse.ArgumentParser, prefix: str) -> None:
    group = parser.add_argument_group("simulator")
    group.add_argument(
        f"--{prefix}latency-ms",
        type=float,
        default=50.0,
        dest="latency_ms",
        help="delay added to every simulated response (default 50)",
    )
    group.add_argument(
        f"--{prefix}lichess-gps",
        type=float,
        default=20.0,
        dest="lichess_gps",
        help="lichess export throttle in games per second, 0 for none (default 20)",
    )
    group.add_argument(
        f"--{prefix}lichess-penalty-s",
        type=float,
        default=60.0,
        dest="lichess_penalty_s",
        help="how long lichess refuses a client after a 429 (default 60)",
    )
    group.add_argument(
        f"--{prefix}slow-s",
        type=float,
        default=5.0,
        dest="slow_s",
        help="delay of `slow…` players, under the hub's read timeout (default 5)",
    )


def _sim_config(args: argparse.Namespace) -> Any:
    from hub.sim import SimConfig

    return SimConfig(
        latency_ms=args.latency_ms,
        lichess_gps=args.lichess_gps,
        lichess_penalty_s=args.lichess_penalty_s,
        slow_s=args.slow_s,
    )


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from hub.app import create_app
    from hub.header_timeout import http_protocol
    from hub.logs import setup_logging
    from hub.store.lockfile import DatabaseInUse, hold_database

    settings = load_settings(
        max_concurrent_imports=args.max_concurrent_imports,
        database_url=args.database_url,
        chesscom_url=args.chesscom_url,
        lichess_url=args.lichess_url,
    )
    setup_logging(args.log_level)
    app = create_app(settings, sim=_sim_config(args) if args.sim else None)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # deflate costs ~40 KiB per idle socket
        ws_max_size=settings.ws_max_bytes,  # larger frames close the socket with 1009
        ws_ping_interval=settings.ws_ping_s,  # reaps clients that vanished without a close
        ws_ping_timeout=settings.ws_ping_s,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_s),
        proxy_headers=False,  # X-Forwarded-For is believed only per HUB_TRUST_PROXY (hub.guard)
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # uvicorn has no deadline for request headers; slow clients are closed after this.
        http=http_protocol(
            "httptools" if importlib.util.find_spec("httptools") else "h11",
            settings.header_timeout_s,
        ),
        log_level=args.log_level,
        log_config=None,
        lifespan="on",
    )
    try:
        with hold_database(settings.database_url):
            uvicorn.Server(config).run()
    except DatabaseInUse as exc:
        print(f"hub: {exc}", file=sys.stderr)
        sys.exit(1)


def _sim(args: argparse.Namespace) -> None:
    from aiohttp import web

    from hub.logs import setup_logging
    from hub.sim import make_app

    setup_logging(args.log_level)
    web.run_app(make_app(_sim_config(args)), host=args.host, port=args.port, print=None)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            _serve(args)
        else:
            _sim(args)
    except SettingsError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
