"""The `hub` command: `hub serve` runs the hub, `hub sim` runs the upstream simulator."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import sys
from collections.abc import Sequence
from typing import Any

from hub.settings import ENV, Settings, SettingsError, load_settings

LOG_HELP = "critical, error, warning, info or debug (default %(default)s)"


def version() -> str:
    try:
        return importlib.metadata.version("chess-import-hub")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the import hub under uvicorn",
        description="Run the import hub. Every setting also comes from the environment "
        "(README: Configuration); a flag given here wins over its variable.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default %(default)s)"
    )
    serve.add_argument(
        "--sim",
        action="store_true",
        help="run the upstream simulator in this process, on a free port logged at start-up, "
        "and point both upstream URLs at it (default off)",
    )
    _setting(serve, "max_concurrent_imports", int, "import slots for the whole hub")
    _setting(serve, "database_url", str, "sqlite:///path or postgresql://user@host/db")
    _setting(serve, "chesscom_url", str, "chess.com API base")
    _setting(serve, "lichess_url", str, "lichess base")
    serve.add_argument("--log-level", default="info", help=LOG_HELP)
    _sim_flags(serve, prefix="sim-")

    sim = commands.add_parser("sim", help="run the chess.com and lichess simulator")
    sim.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    sim.add_argument(
        "--port", type=int, default=8001, help="port to listen on (default %(default)s)"
    )
    sim.add_argument("--log-level", default="info", help=LOG_HELP)
    _sim_flags(sim, prefix="")
    return parser


def _setting(parser: argparse.ArgumentParser, field: str, kind: type, what: str) -> None:
    """A flag over a setting: None unless given, so that the variable, then the default, hold."""
    default = getattr(Settings(), field)
    parser.add_argument(
        "--" + field.replace("_", "-"),
        type=kind,
        dest=field,
        help=f"{what} (env {ENV[field]}, default {default})",
    )


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
