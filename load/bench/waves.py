"""The 5,000-waiter set-up shared by the fan-out and memory benchmarks.

Hub: one slot (`MAX_CONCURRENT_IMPORTS=1`, one chess.com lane), a `slow-…` player holding it
for two slow simulator answers, one more slow player first in line (so the next import holds
the slot too and the wave of new positions stands alone), and N waiters behind it spread over
client processes. Bare: a `websockets` server holding N idle sockets that, on a trigger, sends
each one personalised message of the same shape and size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from load.procs import Child, rss_bytes, spawn, start_hub
from load.stats import summary


class Fleet:
    """Client processes, each holding a slice of the sockets; one JSON line each way."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, url: str, count: int, processes: int, any_message: bool) -> list[Any]:
        per = -(-count // processes)
        for k in range(processes):
            first, n = 1 + k * per, min(per, count - k * per)
            if n <= 0:
                break
            argv = ["-m", "load.bench.fanclient", "--url", url, "--first", str(first)]
            argv += ["--count", str(n)] + (["--any"] if any_message else [])
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**26,
            )
            self.procs.append(proc)
        return [await self._answer(p, 300) for p in self.procs]

    async def _answer(self, proc: asyncio.subprocess.Process, within_s: float) -> Any:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), within_s)
        if not line:
            raise RuntimeError(f"client process {proc.pid} ended early")
        return json.loads(line)

    async def ask(self, cmd: dict[str, Any], within_s: float = 120) -> list[Any]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await proc.stdin.drain()
        return [await self._answer(p, within_s) for p in self.procs]

    async def quiet(self, count: int, quiet_s: float, within_s: float, need_queued: bool) -> float:
        """Wait until no socket got a message for `quiet_s`; returns how long that took."""
        began = time.monotonic()
        while time.monotonic() - began < within_s:
            status = await self.ask({"cmd": "status"})
            last = max(s["last"] for s in status)
            queued = sum(s["queued"] for s in status)
            if (not need_queued or queued >= count) and time.monotonic() - last >= quiet_s:
                return time.monotonic() - began
            await asyncio.sleep(0.5)
        raise TimeoutError(f"sockets did not settle within {within_s} s")

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.write(b'{"cmd": "quit"}\n')
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@dataclass
class Phase:
    """What one side (hub or bare) measured."""

    sockets: int
    connect_s: float = 0.0
    rss_idle_mb: float = 0.0  # before any client socket
    rss_loaded_mb: float = 0.0  # with every socket open (and queued, for the hub)
    wave_s: dict[str, Any] = field(default_factory=dict)  # arrivals after the trigger
    missing: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kb_per_socket(self) -> float:
        return (self.rss_loaded_mb - self.rss_idle_mb) * 1024 / max(self.sockets, 1)


def _mb(pid: int) -> float:
    return (rss_bytes(pid) or 0) / 2**20


async def _ws(url: str, address: str) -> ClientConnection:
    return await websockets.connect(
        url, compression=None, proxy=None, open_timeout=60, ping_interval=None,
        local_addr=(address, 0),
    )  # fmt: skip


class Watcher:
    """Reads one socket in the background, keeping (arrival, type) of every message."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.seen: list[tuple[float, str]] = []
        self.ticket: str | None = None
        self._news = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.conn:
                message = json.loads(raw)
                self.seen.append((time.monotonic(), str(message.get("type"))))
                if message.get("type") == "ticket":
                    self.ticket = message["ticket"]
                self._news.set()
        self._news.set()

    async def until(self, kinds: tuple[str, ...], within_s: float, after: int = 0) -> float:
        """Arrival of the first message of one of `kinds` at index >= `after`."""
        async with asyncio.timeout(within_s):
            while True:
                for t, kind in self.seen[after:]:
                    if kind in kinds:
                        return t
                if self._task.done():
                    raise ConnectionError("socket closed")
                self._news.clear()
                await self._news.wait()

    async def close(self) -> None:
        await self.conn.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _import(source: str, username: str) -> str:
    return json.dumps({"type": "import", "source": source, "username": username})


async def hub_phase(
    workdir: Path, sockets: int, processes: int, settle_s: float, wave: bool
) -> Phase:
    """The hub with `sockets` queued behind two long lichess imports (one page per game).

    The holder is stopped with `cancel` once the line is quiet: it ends at its next page
    boundary (half a second at 2 games/s), the next lichess import takes the slot and holds
    it, and every waiter's position falls by one in a single wave.
    """
    setup = start_hub(
        workdir,
        max_concurrent=1,
        latency_ms=0.0,
        lichess_gps=2.0,
        env={
            "HUB_LANE_CHESSCOM": "1",
            "HUB_LANE_LICHESS": "1",
            "HUB_LICHESS_PAGE": "1",
            "HUB_MAX_QUEUE": str(sockets + 100),
            "HUB_LOG_JSON": "1",
        },
    )
    fleet = Fleet()
    phase = Phase(sockets)
    pid = setup.hub.pid
    try:
        await asyncio.sleep(1.0)
        phase.rss_idle_mb = _mb(pid)
        holder = Watcher(await _ws(setup.hub.ws_url, "127.99.0.1"))
        first = Watcher(await _ws(setup.hub.ws_url, "127.99.0.2"))
        await holder.conn.send(_import("lichess", "hold-p1x5000"))
        await holder.until(("started",), 30)
        await first.conn.send(_import("lichess", "first-p1x5000"))
        await first.until(("queued",), 30)
        began = time.monotonic()
        phase.extra["connect"] = await fleet.start(setup.hub.ws_url, sockets, processes, False)
        phase.connect_s = time.monotonic() - began
        sent = await fleet.ask({"cmd": "import", "names": "fan{i}-p1x1"}, within_s=600)
        phase.extra["import_send_s"] = max(s["ended"] for s in sent) - began - phase.connect_s
        phase.extra["settle_s"] = await fleet.quiet(sockets, 3.0, settle_s, need_queued=True)
        phase.rss_loaded_mb = _mb(pid)
        if wave:
            await fleet.ask({"cmd": "arm"})
            mark = len(holder.seen)
            cancel_at = time.monotonic()
            await holder.conn.send(json.dumps({"type": "cancel", "ticket": holder.ticket}))
            done_at = await holder.until(("done", "failed"), 30, after=mark)
            started_at = await first.until(("started",), 30)
            answers = await fleet.ask({"cmd": "wave", "timeout": 120}, within_s=200)
            arrivals = [t for a in answers for t in a["arrivals"]]
            phase.missing = sum(a["missing"] for a in answers)
            phase.wave_s = summary([t - done_at for t in arrivals])
            phase.extra["holder_ended_after_cancel_s"] = done_at - cancel_at
            phase.extra["started_after_done_s"] = started_at - done_at
            phase.extra["wave_from_next_started_s"] = summary([t - started_at for t in arrivals])
        await holder.close()
        await first.close()
    finally:
        await fleet.stop()
        setup.stop()
    return phase


async def bare_phase(workdir: Path, sockets: int, processes: int, wave: bool) -> Phase:
    server: Child = spawn(["-m", "load.bench.bare"], workdir / "bare.log", "/healthz")
    url = f"ws://127.0.0.1:{server.port}"
    fleet = Fleet()
    phase = Phase(sockets)
    try:
        await asyncio.sleep(1.0)
        phase.rss_idle_mb = _mb(server.pid)
        began = time.monotonic()
        phase.extra["connect"] = await fleet.start(url + "/ws", sockets, processes, True)
        phase.connect_s = time.monotonic() - began
        await asyncio.sleep(3.0)
        phase.rss_loaded_mb = _mb(server.pid)
        if wave:
            control = await _ws(url + "/control", "127.99.0.3")
            await fleet.ask({"cmd": "arm"})
            await control.send("go")
            trigger = await control.recv()
            t0 = time.monotonic()
            assert trigger == "trigger"
            phase.extra["server"] = json.loads(await control.recv())
            answers = await fleet.ask({"cmd": "wave", "timeout": 120}, within_s=200)
            arrivals = [t for a in answers for t in a["arrivals"]]
            phase.missing = sum(a["missing"] for a in answers)
            phase.wave_s = summary([t - t0 for t in arrivals])
            await control.close()
    finally:
        await fleet.stop()
        server.stop()
    return phase
