"""Litestar wiring: routes, lifespan and static files."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, WebSocket, get, websocket
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.response import File, Response
from litestar.static_files import create_static_files_router

from hub import admin, receipt
from hub import protocol as p
from hub.fanout import Fanout
from hub.fetch import make_sources
from hub.fetch.http import Http
from hub.fetch.shared import SharedLimit
from hub.guard import POLICY_VIOLATION, Door, origin_allowed
from hub.headers import OPENAPI, add_security_headers
from hub.janitor import Janitor
from hub.mailbox import Outbox
from hub.metrics import CONTENT_TYPE as METRICS_TYPE
from hub.metrics import Metrics
from hub.queue.accuracy import Accuracy
from hub.queue.core import Limits, Slots
from hub.queue.driver import QueueDriver
from hub.queue.eta import Ewma
from hub.queue.local import LocalQueue
from hub.queue.postgres import PostgresQueue, asyncpg_dsn
from hub.service import ImportHub
from hub.session import serve_socket
from hub.settings import Settings
from hub.store import PlayerSummary, open_store
from hub.store.base import Games
from hub.summary import Summaries

STATIC = Path(os.environ.get("HUB_STATIC_DIR", Path(__file__).resolve().parent.parent / "static"))


def build_slots(settings: Settings) -> Slots:
    lanes = {"chesscom": settings.lane_chesscom, "lichess": settings.lane_lichess}
    priors = {
        "chesscom": Ewma(
            settings.eta_prior_chesscom_s, settings.eta_page_chesscom_s, settings.eta_alpha
        ),
        "lichess": Ewma(
            settings.eta_prior_lichess_s, settings.eta_page_lichess_s, settings.eta_alpha
        ),
    }
    return Slots(
        settings.max_concurrent_imports,
        lanes,
        priors,
        settings.resume_grace_s,
        limits=Limits(settings.max_tickets_per_ip, settings.max_queue),
        horizon=settings.eta_horizon,
        accuracy=Accuracy(settings.eta_window),
    )


def _hub(state: State) -> ImportHub:
    hub: ImportHub = state.hub
    return hub


@websocket("/ws")
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    state = socket.app.state
    door: Door = state.door
    # Read from the raw scope: Litestar's Headers and URL objects would stay cached in the
    # scope for the socket's whole life, about a kilobyte per socket.
    raw = socket.scope["headers"]
    if not origin_allowed(
        _header(raw, b"origin"), _header(raw, b"host"), socket.scope["scheme"], door.allowed_origins
    ):
        # Closing before accept refuses the handshake itself (HTTP 403).
        await socket.close(POLICY_VIOLATION, "origin not allowed")
        return
    peer = socket.client.host if socket.client is not None else ""
    address = door.address(peer, socket.scope["headers"])
    refused = door.enter(address)
    await socket.accept()
    if refused is not None:
        reason = "too many sockets" if refused == POLICY_VIOLATION else "hub is full"
        await socket.close(refused, reason)
        return
    try:
        await serve_socket(socket, _hub(state), state.outbox, address)
    finally:
        door.leave(address)


def _header(raw: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of one request header, from an ASGI header list."""
    for key, value in raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", media_type=MediaType.JSON)
async def readyz(state: State) -> Response[dict[str, str]]:
    """Ready when not draining, the database answers and, in a fleet, LISTEN is connected."""
    hub = _hub(state)
    if hub.queue.slots.draining:  # a load balancer stops sending sockets here
        return Response({"status": "unavailable", "reason": "draining"}, status_code=503)
    try:
        await hub.store.ping()
    except Exception as exc:
        return Response({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    if not hub.queue.ready():
        return Response({"status": "unavailable", "reason": "listen"}, status_code=503)
    return Response({"status": "ok"})


@get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    return Response(_hub(state).metrics.render(), media_type=METRICS_TYPE)


@get("/api/queue")
async def queue_board(state: State) -> p.Board:
    return _hub(state).fanout.board()


@get("/api/imports/{import_id:str}")
async def import_state(state: State, import_id: str) -> dict[str, Any]:
    record = await _hub(state).store.get_import(import_id)
    if record is None:
        raise NotFoundException(f"No import {import_id!r}.")
    return {
        "import_id": record.id,
        "source": record.source,
        # No username: import ids are on the public board, where players are masked.
        "state": record.state,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "pages": record.pages,
        "pages_total": record.pages_total,
        "games": record.games,
        "error": record.error,
        "message": record.message,
    }


@get("/api/players/{source:str}/{username:str}/summary")
async def player_summary(
    state: State, source: str, username: str, games: Games = "standard"
) -> PlayerSummary:
    if source not in p.SOURCES:
        raise NotFoundException(f"Unknown source {source!r}.")
    summaries: Summaries = state.summaries
    return await summaries.get(source, username.lower(), games)


@get("/api/players/{source:str}/{username:str}/receipt")
async def player_receipt(state: State, source: str, username: str) -> receipt.Receipt:
    """What the hub holds for the player, against the site's own count, and the gaps."""
    hub = _hub(state)
    if source not in hub.sources:
        raise NotFoundException(f"Unknown source {source!r}.")
    found = await receipt.load(hub.store, hub.sources[source], username.lower())
    if found is None:
        raise NotFoundException(f"No import of {username!r} from {source} yet.")
    return found


@get("/", include_in_schema=False)
async def index() -> File:
    return File(STATIC / "index.html", content_disposition_type="inline", media_type=MediaType.HTML)


@get("/favicon.ico", include_in_schema=False)
async def favicon() -> File:
    return File(
        STATIC / "favicon.ico", content_disposition_type="inline", media_type="image/x-icon"
    )


def create_app(settings: Settings, sim: Any = None) -> Litestar:
    """Build the app; `sim` is a SimConfig to run the upstream simulator in-process."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        nonlocal settings
        async with contextlib.AsyncExitStack() as stack:
            if sim is not None:
                from hub.sim import start_sim

                runner, port = await start_sim(sim)
                stack.push_async_callback(runner.cleanup)
                base = f"http://127.0.0.1:{port}"
                logging.getLogger("hub").info(
                    "simulator listening (chess.com and lichess, /_sim/…)", extra={"url": base}
                )
                settings = msgspec_replace(settings, chesscom_url=base, lichess_url=base)
            store = open_store(settings.database_url)
            await store.connect()
            stack.push_async_callback(store.close)
            await stack.enter_async_context(Janitor(store, settings.imports_keep_days, time.time))
            app.state.summaries = Summaries(store, settings.summary_concurrency)
            http = await Http.open(settings)
            stack.push_async_callback(http.close)
            slots = build_slots(settings)
            outbox = Outbox()
            fleet = settings.database_url.startswith(("postgres://", "postgresql"))
            # A fleet's replicas share wall time; one process keeps a monotonic clock.
            clock = time.time if fleet else time.monotonic
            fanout = Fanout(slots, clock, settings.board_hz, settings.queued_hz)
            queue: QueueDriver
            if fleet:
                # With PostgreSQL the line, and the upstream request caps, are shared
                # by every replica on that database.
                shared = SharedLimit(
                    asyncpg_dsn(settings.database_url),
                    {"chesscom": settings.inflight_chesscom, "lichess": settings.inflight_lichess},
                )
                await shared.start()
                stack.push_async_callback(shared.close)
                http.shared = shared
                queue = PostgresQueue(
                    slots,
                    settings.database_url,
                    attached=fanout.attached_tickets,
                    lease_s=settings.lease_s,
                    poll_s=settings.poll_s,
                    clock=clock,
                )
            else:
                queue = LocalQueue(slots, clock, store=store)
                # This process held the whole line: whatever it left unfinished is over.
                left = await store.interrupt_unfinished(time.time())
                if left:
                    logging.getLogger("hub").info(
                        "marked imports left by a stopped hub as interrupted",
                        extra={"imports": left},
                    )
            door = Door(settings)
            metrics = Metrics()
            metrics.watch(slots, lambda: door.total, http.stats, outbox.stats)
            hub = ImportHub(
                settings,
                store,
                make_sources(http, settings),
                queue,
                fanout,
                metrics=metrics,
                breakers=http.breakers,
            )
            await hub.start()
            stack.push_async_callback(hub.stop)
            app.state.hub = hub
            app.state.http = http
            app.state.outbox = outbox
            app.state.door = door
            yield

    static = create_static_files_router(
        path="/static", directories=[STATIC], include_in_schema=False
    )
    return Litestar(
        route_handlers=[
            ws,
            healthz,
            readyz,
            metrics,
            queue_board,
            import_state,
            player_summary,
            player_receipt,
            index,
            favicon,
            static,
            # Without a token the operator's routes do not exist (404).
            *([admin.router(settings.admin_token)] if settings.admin_token else []),
        ],
        lifespan=[lifespan],
        before_send=[add_security_headers],
        openapi_config=OPENAPI,
        logging_config=None,  # hub.logs owns the format (text or JSON lines)
    )


def msgspec_replace(settings: Settings, **changes: Any) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)
