"""One simulated browser per user: connect, press Import, record every message, maybe drop and
resume with its ticket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

FINAL = ("done", "failed")


class _Queued(msgspec.Struct):
    position: int
    eta_s: float


_queued = msgspec.json.Decoder(_Queued)
_QUEUED_PREFIX = '{"type":"queued"'


def loopback_address(index: int) -> str:
    """A distinct 127.x.y.z source address for user `index` (all of 127/8 is loopback)."""
    if not 0 <= index < 250 * 250 * 100:
        raise ValueError("too many users for distinct loopback addresses")
    return f"127.{100 + index // 62500}.{index // 250 % 250}.{index % 250 + 1}"


def kind(raw: str) -> str:
    """The `type` of a hub message; cheap for the shape msgspec writes (type first)."""
    if raw.startswith('{"type":"'):
        end = raw.find('"', 9)
        if end > 9:
            return raw[9:end]
    try:
        return str(json.loads(raw).get("type", "?"))
    except (ValueError, AttributeError):
        return "?"


@dataclass
class Tally:
    """Live counts for the progress display."""

    connected: int = 0
    connect_failed: int = 0
    attempted: int = 0
    sent: int = 0
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    churned: int = 0
    resumed: int = 0
    dropped: int = 0
    messages: int = 0


@dataclass(eq=False)
class User:
    """Everything one user's sockets saw, with monotonic arrival times."""

    index: int
    hub: int
    url: str
    source: str
    username: str
    churn_after_s: float | None = None  # drop the socket this long after the first `queued`
    local_address: str | None = None  # a loopback source address of its own, like a real visitor
    sent_at: float | None = None
    ticket: str | None = None
    state: str = "new"  # new, sent, waiting, running, done, failed, connect_failed
    connect_error: str | None = None
    connects: int = 0
    # `queued` messages, compactly: arrival, position, eta
    q_times: array[float] = field(default_factory=lambda: array("d"))
    q_positions: array[int] = field(default_factory=lambda: array("i"))
    q_etas: array[float] = field(default_factory=lambda: array("d"))
    # every other message: (arrival, decoded, replayed as the answer to a `resume`)
    events: list[tuple[float, dict[str, Any], bool]] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # no socket open
    drops: list[tuple[float, str]] = field(default_factory=list)  # closes we did not ask for
    conn: ClientConnection | None = None
    _replay: bool = False

    def first(
        self, kind_: str, live: bool | None = None
    ) -> tuple[float, dict[str, Any], bool] | None:
        """The first message of a type: (arrival, message, replayed after a resume)."""
        for t, message, replayed in self.events:
            if message.get("type") == kind_ and (live is None or live != replayed):
                return t, message, replayed
        return None


@dataclass
class Context:
    """What all users share."""

    tally: Tally
    connect_slots: asyncio.Semaphore
    open_timeout: float
    go: asyncio.Event | None  # burst: everyone sends when set
    t0: float  # ramp: arrival i happens at t0 + i / rate
    rate: float
    churn_delay_s: float
    max_reconnects: int = 3


def _set_state(user: User, tally: Tally, state: str) -> None:
    old = user.state
    if old == state:
        return
    for name, step in ((old, -1), (state, 1)):
        if name in ("waiting", "running", "done", "failed"):
            setattr(tally, name, getattr(tally, name) + step)
    user.state = state


async def _open(user: User, ctx: Context) -> ClientConnection | None:
    async with ctx.connect_slots:
        user.connects += 1
        try:
            conn = await websockets.connect(
                user.url,
                compression=None,
                proxy=None,
                open_timeout=ctx.open_timeout,
                ping_interval=None,  # a busy hub must not make the client hang up
                close_timeout=2,
                max_size=2**22,
                local_addr=None if user.local_address is None else (user.local_address, 0),
            )
        except Exception as exc:
            user.connect_error = f"{type(exc).__name__}: {exc}"[:300]
            return None
    user.conn = conn
    return conn


def _record(user: User, raw: str | bytes, ctx: Context) -> str:
    t = time.monotonic()
    ctx.tally.messages += 1
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if raw.startswith(_QUEUED_PREFIX):
        q = _queued.decode(raw)
        user.q_times.append(t)
        user.q_positions.append(q.position)
        user.q_etas.append(q.eta_s)
        if user.state in ("sent", "new"):
            _set_state(user, ctx.tally, "waiting")
        user._replay = False
        return "queued"
    message: dict[str, Any] = json.loads(raw)
    k = str(message.get("type"))
    user.events.append((t, message, user._replay))
    if k == "ticket":
        user.ticket = user.ticket or message.get("ticket")
    elif k == "started":
        _set_state(user, ctx.tally, "running")
        user._replay = False
    elif k in FINAL:
        _set_state(user, ctx.tally, k)
        user._replay = False
    return k


async def _read(user: User, conn: ClientConnection, ctx: Context, churn: bool) -> str:
    """Read until a final message ('final'), the churn moment ('churn') or a close ('closed')."""
    try:
        async with asyncio.timeout(None) as deadline:
            async for raw in conn:
                k = _record(user, raw, ctx)
                if k in FINAL:
                    return "final"
                if churn and k == "queued" and deadline.when() is None:
                    assert user.churn_after_s is not None
                    deadline.reschedule(asyncio.get_running_loop().time() + user.churn_after_s)
    except TimeoutError:
        return "churn"
    except websockets.ConnectionClosed:
        pass
    return "closed"


async def run_user(user: User, ctx: Context) -> None:
    """The whole life of one user; returns when its import ended or it gave up."""
    if ctx.go is None:
        delay = ctx.t0 + user.index / ctx.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    ctx.tally.attempted += 1
    conn = await _open(user, ctx)
    if conn is None:
        ctx.tally.connect_failed += 1
        _set_state(user, ctx.tally, "connect_failed")
        return
    ctx.tally.connected += 1
    if ctx.go is not None:
        await ctx.go.wait()
    user.sent_at = time.monotonic()
    await conn.send(
        json.dumps({"type": "import", "source": user.source, "username": user.username})
    )
    ctx.tally.sent += 1
    _set_state(user, ctx.tally, "sent")
    churn = user.churn_after_s is not None
    reconnects = 0
    while reconnects <= ctx.max_reconnects:
        outcome = await _read(user, conn, ctx, churn)
        if outcome == "final":
            return
        closed_at = time.monotonic()
        if outcome == "churn":
            churn = False
            if user.state != "waiting":  # started meanwhile: nothing to drop mid-queue
                continue
            ctx.tally.churned += 1
            await conn.close()
            await asyncio.sleep(ctx.churn_delay_s)
        else:
            code = conn.close_code
            user.drops.append((closed_at, f"close {code} {conn.close_reason or ''}".strip()))
            ctx.tally.dropped += 1
            reconnects += 1
            if user.ticket is None:
                return  # nothing to resume; the user is lost
            await asyncio.sleep(min(0.5 * reconnects, 2.0))
        reopened = await _open(user, ctx)
        if reopened is None:
            user.gaps.append((closed_at, time.monotonic()))
            return
        conn = reopened
        user._replay = True
        user.gaps.append((closed_at, time.monotonic()))
        with contextlib.suppress(websockets.ConnectionClosed):  # the next read sees the close
            await conn.send(json.dumps({"type": "resume", "ticket": user.ticket}))
        ctx.tally.resumed += 1


async def close_all(users: list[User], within_s: float = 10.0) -> None:
    """Close every socket still open, politely first, then by force."""
    conns = [u.conn for u in users if u.conn is not None]
    if not conns:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_s):
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    for c in conns:
        with contextlib.suppress(Exception):
            c.transport.abort()
