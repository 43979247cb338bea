"""The operator's routes under /admin/: caps, pauses and draining, behind a bearer token."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ServiceUnavailableException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler

from hub.fetch.http import Http
from hub.protocol import SOURCES
from hub.queue.driver import Event
from hub.service import ImportHub

log = logging.getLogger("hub.admin")

MAX_SLOTS = 10000
MAX_REASON = 200


class SlotsBody(msgspec.Struct, forbid_unknown_fields=True):
    slots: int | None = None
    lanes: dict[str, int] | None = None


class PauseBody(msgspec.Struct, forbid_unknown_fields=True):
    source: str | None  # required: null pauses every source, and must be said
    reason: str


class ResumeBody(msgspec.Struct, forbid_unknown_fields=True):
    source: str | None


class PausedRow(msgspec.Struct):
    source: str
    reason: str
    since: float  # unix seconds
    by: str  # "operator" or "breaker"


class RunningRow(msgspec.Struct):
    import_id: str
    source: str
    player: str
    pages: int
    pages_total: int | None
    replica: str | None


class BreakerRow(msgspec.Struct):
    upstream: str
    open: bool
    openings: int


class AdminState(msgspec.Struct):
    replica: str
    slots: int
    slots_free: int
    lanes: dict[str, int]
    paused: list[PausedRow]
    draining: bool
    waiting: int
    waiting_by_source: dict[str, int]
    running: list[RunningRow]
    breakers: list[BreakerRow]


def router(token: str) -> Router:
    """The /admin/ routes, answering only a request that bears `token`."""
    expected = hashlib.sha256(token.encode()).digest()

    def bearer(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        scheme, _sep, given = connection.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(given.strip().encode()).digest()
        # Digests of equal length, compared in constant time: neither the token nor
        # its length leaks through the timing of a refusal.
        if not hmac.compare_digest(digest, expected) or scheme.lower() != "bearer":
            raise NotAuthorizedException(
                "An admin token is required: Authorization: Bearer <HUB_ADMIN_TOKEN>.",
                headers={"WWW-Authenticate": 'Bearer realm="hub admin"'},
            )

    return Router(
        path="/admin",
        route_handlers=[current, slots, pause, resume, drain, undrain],
        guards=[bearer],
        include_in_schema=False,
    )


@get("/state")
async def current(state: State) -> AdminState:
    return _state(state)


@post("/slots", status_code=200)
async def slots(state: State, request: Request[Any, Any, Any]) -> AdminState:
    body = _decode(await request.body(), SlotsBody)
    hub = _hub(state)
    core = hub.queue.slots
    if body.slots is None and body.lanes is None:
        raise ValidationException("Give `slots`, `lanes` or both.")
    if body.slots is not None and not 1 <= body.slots <= MAX_SLOTS:
        raise ValidationException(f"`slots` must be between 1 and {MAX_SLOTS}.")
    for source, cap in (body.lanes or {}).items():
        _known(source, "lanes")
        if not 1 <= cap <= MAX_SLOTS:
            raise ValidationException(f"`lanes.{source}` must be between 1 and {MAX_SLOTS}.")
    new_slots = core.slots if body.slots is None else body.slots
    lanes = {**core.lanes, **(body.lanes or {})}
    await _apply(hub, hub.queue.resize(new_slots, lanes))
    log.info("operator: caps changed", extra={"slots": new_slots, "lanes": lanes})
    return _state(state)


@post("/pause", status_code=200)
async def pause(state: State, request: Request[Any, Any, Any]) -> AdminState:
    body = _decode(await request.body(), PauseBody)
    if body.source is not None:
        _known(body.source, "source")
    reason = " ".join(body.reason.split())
    if not 1 <= len(reason) <= MAX_REASON:
        raise ValidationException(f"`reason` must say why, in 1 to {MAX_REASON} characters.")
    hub = _hub(state)
    await _apply(hub, hub.queue.pause(body.source, reason))
    log.info("operator: paused", extra={"source": body.source or "all", "reason": reason})
    return _state(state)


@post("/resume", status_code=200)
async def resume(state: State, request: Request[Any, Any, Any]) -> AdminState:
    body = _decode(await request.body(), ResumeBody)
    if body.source is not None:
        _known(body.source, "source")
    hub = _hub(state)
    await _apply(hub, hub.queue.resume(body.source))
    log.info("operator: resumed", extra={"source": body.source or "all"})
    return _state(state)


@post("/drain", status_code=200)
async def drain(state: State) -> AdminState:
    hub = _hub(state)
    await _apply(hub, hub.queue.drain())
    log.info("operator: draining: admitting nothing here, /readyz answers 503")
    return _state(state)


@post("/undrain", status_code=200)
async def undrain(state: State) -> AdminState:
    hub = _hub(state)
    await _apply(hub, hub.queue.undrain())
    log.info("operator: admitting again")
    return _state(state)


def _hub(state: State) -> ImportHub:
    hub: ImportHub = state.hub
    return hub


async def _apply(hub: ImportHub, change: Awaitable[list[Event]]) -> None:
    """Hand the change to the queue (the core decides) and its decisions to the hub."""
    try:
        events = await change
    except HTTPException:
        raise
    except Exception as exc:
        # In a fleet the change is one transaction on the shared line: nothing applied.
        log.warning("operator change failed", extra={"error": str(exc)})
        raise ServiceUnavailableException(f"The change could not be applied: {exc}") from exc
    hub.dispatch(events)


T = TypeVar("T")


def _decode(raw: bytes, kind: type[T]) -> T:
    if not raw.strip():
        raise ValidationException("A JSON body is required.")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ValidationException(f"Invalid body: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise ValidationException(f"The body is not JSON: {exc}.") from None


def _known(source: str, field: str) -> None:
    if source not in SOURCES:
        raise ValidationException(
            f"`{field}`: unknown source {source!r}; one of {', '.join(SOURCES)}."
        )


def _state(state: State) -> AdminState:
    hub = _hub(state)
    core, queue = hub.queue.slots, hub.queue
    http: Http = state.http
    breaker = http.breakers.breaker
    return AdminState(
        replica=queue.replica,
        slots=core.slots,
        slots_free=core.free,
        lanes=dict(core.lanes),
        paused=[PausedRow(source, p.reason, p.since, p.by) for source, p in core.holds],
        draining=core.draining,
        waiting=len(core.line),
        waiting_by_source={source: len(line) for source, line in core.lines.items()},
        running=[
            RunningRow(
                e.import_id,
                e.source,
                e.username,
                e.pages,
                e.pages_total,
                queue.running_on(e.import_id),
            )
            for e in core.running.values()
        ],
        breakers=[
            BreakerRow(upstream, breaker.is_open(upstream), breaker.openings(upstream))
            for upstream in SOURCES
        ],
    )
