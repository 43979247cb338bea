"""A client process holding many sockets for the fan-out and memory benchmarks.

`python -m load.bench.fanclient --url URL --first I --count N` opens N sockets (user indices
I..I+N-1, each from its own 127.x.y.z address) and obeys one JSON command per stdin line,
answering one JSON line each on stdout:

- `{"cmd": "import", "names": "fan{i}-p1x1", "source": "chesscom"}`: every socket asks for an
  import of its own player, in index order;
- `{"cmd": "status"}`: messages received and the arrival of the last one;
- `{"cmd": "arm"}`: from now on, note each socket's first message that moves it forward
  (a `queued` with a smaller position than the last one it had, or, with `--any`, any message);
- `{"cmd": "wave", "timeout": s}`: wait until every socket has that message, then send the
  arrivals (monotonic, the clock is system-wide);
- `{"cmd": "quit"}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from load.client import loopback_address
from load.procs import raise_nofile, run_async


class _Message(msgspec.Struct):
    type: str = "?"
    position: int | None = None


_decode = msgspec.json.Decoder(_Message).decode


@dataclass(eq=False)
class Sock:
    index: int
    conn: ClientConnection | None = None
    position: int | None = None
    messages: int = 0
    wave_at: float | None = None


class Worker:
    def __init__(self, url: str, first: int, count: int, any_message: bool) -> None:
        self.url = url
        self.socks = [Sock(first + i) for i in range(count)]
        self.any_message = any_message
        self.armed = False
        self.last = 0.0
        self.messages = 0
        self.errors: dict[str, int] = {}
        self.waves = 0
        self.wave_done = asyncio.Event()
        self.readers: list[asyncio.Task[None]] = []

    async def connect(self, concurrency: int = 200) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(sock: Sock) -> None:
            async with gate:
                try:
                    sock.conn = await websockets.connect(
                        self.url,
                        compression=None,
                        proxy=None,
                        open_timeout=60,
                        ping_interval=None,
                        close_timeout=2,
                        local_addr=(loopback_address(sock.index), 0),
                    )
                except Exception as exc:
                    key = type(exc).__name__
                    self.errors[key] = self.errors.get(key, 0) + 1
                    return
            self.readers.append(asyncio.create_task(self.read(sock)))

        await asyncio.gather(*(one(s) for s in self.socks))

    async def read(self, sock: Sock) -> None:
        assert sock.conn is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in sock.conn:
                t = time.monotonic()
                self.messages += 1
                self.last = t
                sock.messages += 1
                m = _decode(raw)
                if self.armed and sock.wave_at is None:
                    moved = m.type == "queued" and (
                        m.position is not None
                        and sock.position is not None
                        and m.position < sock.position
                    )
                    if self.any_message or moved or m.type == "started":
                        sock.wave_at = t
                        self.waves += 1
                        if self.waves >= self.live():
                            self.wave_done.set()
                if m.type == "queued" and m.position is not None:
                    sock.position = m.position

    def live(self) -> int:
        return sum(1 for s in self.socks if s.conn is not None)

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd.get("cmd")
        if name == "import":
            began = time.monotonic()
            for sock in self.socks:
                if sock.conn is None:
                    continue
                message = {
                    "type": "import",
                    "source": cmd.get("source", "chesscom"),
                    "username": str(cmd["names"]).format(i=sock.index),
                }
                with contextlib.suppress(websockets.ConnectionClosed):
                    await sock.conn.send(json.dumps(message))
            return {"event": "sent", "began": began, "ended": time.monotonic()}
        if name == "status":
            positions = [s.position for s in self.socks if s.position is not None]
            return {
                "event": "status",
                "messages": self.messages,
                "last": self.last,
                "queued": len(positions),
                "live": self.live(),
            }
        if name == "arm":
            self.armed = True
            return {"event": "armed", "at": time.monotonic()}
        if name == "wave":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wave_done.wait(), float(cmd.get("timeout", 60)))
            arrivals = [s.wave_at for s in self.socks if s.wave_at is not None]
            return {
                "event": "wave",
                "arrivals": arrivals,
                "missing": self.live() - len(arrivals),
                "messages": self.messages,
            }
        return {"event": "error", "message": f"unknown command {name!r}"}

    async def close(self) -> None:
        conns = [s.conn for s in self.socks if s.conn is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, '{"cmd": "quit"}')

    threading.Thread(target=pump, daemon=True).start()
    worker = Worker(args.url, args.first, args.count, args.any)
    began = time.monotonic()
    await worker.connect()
    _reply(
        {
            "event": "connected",
            "ok": worker.live(),
            "errors": worker.errors,
            "connect_s": time.monotonic() - began,
        }
    )
    for _ in range(10_000):
        cmd = json.loads(await lines.get())
        if cmd.get("cmd") == "quit":
            break
        _reply(await worker.command(cmd))
    await worker.close()
    _reply({"event": "bye"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.fanclient", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--any", action="store_true", help="any message counts as the wave")
    args = parser.parse_args()
    raise_nofile()
    run_async(_main(args))


if __name__ == "__main__":
    main()
