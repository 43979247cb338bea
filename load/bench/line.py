"""A hub whose one slot stays held, so that a benchmark frees exactly one slot when it chooses.

One slot (`MAX_CONCURRENT_IMPORTS=1`), one lane per site. A chain of long lichess imports (one
game a page at 2 games a second: a page boundary every half second) comes first: the first
holds the slot, the others wait at the head of the line, before every chess.com waiter a
benchmark adds. `free_slot()` cancels the running holder through its own ticket: it stops at
its next page boundary, the next holder takes the slot and holds it in turn, and every waiter
behind moves up by exactly one place. The moment the slot freed is the arrival of the
cancelled holder's `failed`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load.bench.rawws import RawSocket, Recorder, open_recorded
from load.bench.swarm import Swarm
from load.procs import HubSetup, rss_bytes, start_hub

HOLDER = "hold{k}-p1x5000"  # 5,000 lichess games: 40 minutes at 2 games a second


def lifted_limits(sockets: int) -> dict[str, str]:
    """The hub's per-address, per-process and rate limits, lifted for `sockets` clients."""
    room = str(sockets + 1000)
    return {
        "HUB_MAX_SOCKETS": room,
        "HUB_MAX_SOCKETS_PER_IP": room,
        "HUB_MAX_TICKETS_PER_IP": room,
        "HUB_MAX_QUEUE": room,
        "HUB_WS_MSGS_PER_S": "1000",
    }


def rss_mb(pid: int) -> float:
    return (rss_bytes(pid) or 0) / 2**20


@dataclass
class Holder:
    sock: RawSocket[Recorder]
    seen: Recorder
    ticket: str


@dataclass
class HeldLine:
    """The hub, and the holders in line order; `freed` counts the slots freed so far."""

    setup: HubSetup
    holders: list[Holder] = field(default_factory=list)
    freed: int = 0

    @property
    def ws_url(self) -> str:
        return self.setup.hub.ws_url

    @property
    def pid(self) -> int:
        return self.setup.hub.pid

    async def hold(self, count: int) -> None:
        """Queue `count` holders; the first is running when this returns."""
        for k in range(count):
            sock, seen = await open_recorded(self.ws_url, f"127.99.0.{k + 1}")
            sock.send_json({"type": "import", "source": "lichess", "username": HOLDER.format(k=k)})
            await seen.until(("ticket",), 30)
            hit = seen.first(("ticket",))
            assert hit is not None and hit[1].ticket is not None
            self.holders.append(Holder(sock, seen, hit[1].ticket))
            await seen.until(("started",) if k == 0 else ("queued",), 60)

    async def free_slot(self, within_s: float = 60.0) -> dict[str, float]:
        """Cancel the running holder; returns when the next holder has its `started`.

        The cancelled holder hears `failed` at once, but its import stops, and frees the
        slot, only at its next page boundary. The first sign from outside that the slot
        freed is the next holder's `started`, which the hub sends in the same turn as the
        waiters' new positions: `freed_at` is its arrival.
        """
        if self.freed + 1 >= len(self.holders):
            raise RuntimeError("no holder left to take the slot: hold more")
        holder, following = self.holders[self.freed], self.holders[self.freed + 1]
        mark = len(holder.seen.messages)
        asked_at = time.monotonic()
        holder.sock.send_json({"type": "cancel", "ticket": holder.ticket})
        left_at = await holder.seen.until(("failed", "done"), within_s, after=mark)
        started_at = await following.seen.until(("started",), within_s)
        self.freed += 1
        return {
            "freed_at": started_at,
            "next_started_at": started_at,
            "cancel_to_freed_s": round(started_at - asked_at, 3),
            "cancel_to_left_s": round(left_at - asked_at, 3),
        }

    def close(self) -> None:
        for holder in self.holders:
            holder.sock.close()


async def join_waiters(
    line: HeldLine, swarm: Swarm, sockets: int, processes: int, within_s: float = 900.0
) -> dict[str, Any]:
    """N chess.com imports behind the held slot, one socket each, from client processes.

    Returns how connecting, joining and settling went; the sockets stay open in `swarm`.
    """
    began = time.monotonic()
    connected = await swarm.start(line.ws_url, sockets, processes, first=100_001)
    connect_s = time.monotonic() - began
    sent = await swarm.ask({"cmd": "import", "names": "fan{i}-p1x1"})
    joined = await swarm.ask({"cmd": "joined", "timeout": within_s}, within_s=within_s + 60)
    queued = [t for j in joined for t in j["queued"] if t is not None]
    first_sent = min(s["began"] for s in sent)
    return {
        "connected": sum(c["ok"] for c in connected),
        "connect_errors": [c["errors"] for c in connected if c["errors"]],
        "connect_s": round(connect_s, 3),
        "joined_s": round(max(queued) - first_sent, 3) if queued else None,
        "missing": sum(j["missing"] for j in joined),
        "refused": [j["refused"] for j in joined if j["refused"]],
        "settle": await swarm.quiet(2.0, 60.0),
    }


async def hub_wave(swarm: Swarm, line: HeldLine) -> dict[str, Any]:
    """Free the slot once with `swarm`'s waiters armed; when each had its new position."""
    await swarm.ask({"cmd": "arm"})
    freed = await line.free_slot()
    result = await swarm.wave(freed["freed_at"])
    result["next_started_after_s"] = round(freed["next_started_at"] - freed["freed_at"], 4)
    result["cancel_to_freed_s"] = freed["cancel_to_freed_s"]
    result["settle"] = await swarm.quiet(1.0, 30.0)  # each wave stands alone
    return result


def start_held_hub(workdir: Path, sockets: int, env: dict[str, str] | None = None) -> HeldLine:
    setup = start_hub(
        workdir,
        max_concurrent=1,
        latency_ms=0.0,
        lichess_gps=2.0,
        # A new holder's export may reach the simulator before it has noticed the cancelled
        # one's close: a 429 then costs half a second, not a minute's penalty.
        lichess_penalty_s=0.0,
        env={
            "HUB_PAUSE_LICHESS_S": "0.5",
            "HUB_LANE_CHESSCOM": "1",
            "HUB_LANE_LICHESS": "1",
            "HUB_LICHESS_PAGE": "1",
            "HUB_LOG_JSON": "1",
            **lifted_limits(sockets),
            **(env or {}),
        },
    )
    return HeldLine(setup)


@contextlib.asynccontextmanager
async def held_hub(workdir: Path, sockets: int, holders: int) -> AsyncIterator[HeldLine]:
    """A held hub with `holders` lichess imports in it, stopped on the way out."""
    line = start_held_hub(workdir, sockets)
    try:
        await line.hold(holders)
        yield line
    finally:
        line.close()
        line.setup.stop()
