"""Client processes that each hold thousands of raw WebSocket sockets, driven over stdin/stdout.

`python -m load.bench.swarm --url URL --first I --count N [--any]` opens N sockets (user
indices I..I+N-1, each from its own 127.x.y.z address, so per-address limits and ephemeral
ports are not what is measured), answers `{"event": "connected", …}`, then obeys one JSON
command per stdin line with one JSON line on stdout:

- `{"cmd": "import", "names": "fan{i}-p1x1", "source": "chesscom"}`: every socket asks for an
  import of its own player, in index order, as fast as the socket writes go;
- `{"cmd": "joined", "timeout": s}`: wait until every socket has its `ticket` and first
  `queued` (or an `error`, or `started`), then send each socket's send, ticket and first-queued
  times (monotonic: the clock is system-wide, so several processes compare directly);
- `{"cmd": "status"}`: messages so far and the arrival of the last one;
- `{"cmd": "arm"}`: from now on note each socket's first message that moves it forward (a
  `queued` with a smaller position than it had, or `started`; with `--any`, any message);
- `{"cmd": "wave", "timeout": s}`: wait until every socket has that message, send the arrivals
  and how many places each socket moved up by;
- `{"cmd": "quit"}`.

`Swarm` starts such processes and speaks to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from load.bench.rawws import RawSocket, connect, decode_seen
from load.client import loopback_address
from load.procs import raise_nofile, run_async
from load.stats import summary

POLL_S = 0.02  # how often waits re-check; arrival times come from the reads themselves


class Member:
    """What one socket has seen."""

    __slots__ = (
        "index",
        "messages",
        "moved_by",
        "position",
        "queued_at",
        "refused",
        "sent_at",
        "sock",
        "started_at",
        "ticket_at",
        "wave_at",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.sock: RawSocket[Member] | None = None
        self.messages = 0
        self.position: int | None = None
        self.sent_at: float | None = None
        self.ticket_at: float | None = None
        self.queued_at: float | None = None
        self.started_at: float | None = None
        self.refused: str | None = None  # the code of an `error` answer
        self.wave_at: float | None = None
        self.moved_by: int | None = None  # places gained by the wave's message

    @property
    def joined(self) -> bool:
        if self.refused is not None or self.started_at is not None:
            return True
        return self.ticket_at is not None and self.queued_at is not None


class Worker:
    def __init__(self, url: str, first: int, count: int, any_message: bool) -> None:
        self.url = url
        self.members = [Member(first + i) for i in range(count)]
        self.any_message = any_message
        self.armed = False
        self.messages = 0
        self.last = 0.0
        self.errors: Counter[str] = Counter()

    def on_message(self, m: Member, t: float, payload: bytes) -> None:
        self.messages += 1
        self.last = t
        m.messages += 1
        msg = decode_seen(payload)
        kind = msg.type
        if self.armed and m.wave_at is None:
            moved = kind == "started" or (
                kind == "queued"
                and msg.position is not None
                and m.position is not None
                and msg.position < m.position
            )
            if moved or self.any_message:
                m.wave_at = t
                if moved and kind == "queued":
                    assert msg.position is not None and m.position is not None
                    m.moved_by = m.position - msg.position
        if kind == "queued":
            m.position = msg.position
            if m.queued_at is None:
                m.queued_at = t
        elif kind == "ticket":
            if m.ticket_at is None:
                m.ticket_at = t
        elif kind == "started":
            if m.started_at is None:
                m.started_at = t
        elif kind == "error" and m.refused is None:
            m.refused = msg.code or "?"

    async def connect(self, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(m: Member) -> None:
            async with gate:
                try:
                    m.sock = await connect(
                        self.url, m, self.on_message, loopback_address(m.index), timeout_s=60
                    )
                except Exception as exc:
                    self.errors[type(exc).__name__] += 1

        await asyncio.gather(*(one(m) for m in self.members))

    def live(self) -> list[Member]:
        return [m for m in self.members if m.sock is not None and not m.sock.closed]

    async def _until(self, done: Callable[[], bool], within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if done():
                return True
            await asyncio.sleep(POLL_S)
        return bool(done())

    async def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd.get("cmd")
        if name == "import":
            began = time.monotonic()
            template = str(cmd["names"])
            source = str(cmd.get("source", "chesscom"))
            for m in self.live():
                assert m.sock is not None
                m.sent_at = time.monotonic()
                m.sock.send_json(
                    {"type": "import", "source": source, "username": template.format(i=m.index)}
                )
            return {"event": "sent", "began": began, "ended": time.monotonic()}
        if name == "joined":
            live = self.live()
            await self._until(lambda: all(m.joined for m in live), float(cmd.get("timeout", 60)))
            return {
                "event": "joined",
                "sent": [m.sent_at for m in live],
                "ticket": [m.ticket_at for m in live],
                "queued": [m.queued_at for m in live],
                "started": sum(m.started_at is not None for m in live),
                "refused": dict(Counter(m.refused for m in live if m.refused is not None)),
                "missing": sum(not m.joined for m in live),
                "closed": len(self.members) - len(live) - sum(self.errors.values()),
            }
        if name == "status":
            live = self.live()
            return {
                "event": "status",
                "messages": self.messages,
                "last": self.last,
                "queued": sum(m.position is not None for m in live),
                "live": len(live),
            }
        if name == "arm":
            for m in self.members:
                m.wave_at = m.moved_by = None
            self.armed = True
            return {"event": "armed", "at": time.monotonic(), "messages": self.messages}
        if name == "wave":
            live = self.live()
            cpu = time.process_time()
            await self._until(
                lambda: all(m.wave_at is not None for m in live), float(cmd.get("timeout", 60))
            )
            self.armed = False
            return {
                "event": "wave",
                "arrivals": [m.wave_at for m in live if m.wave_at is not None],
                "missing": sum(m.wave_at is None for m in live),
                "moved_by": dict(Counter(str(m.moved_by) for m in live if m.moved_by is not None)),
                "messages": self.messages,
                "cpu_s": time.process_time() - cpu,
            }
        return {"event": "error", "message": f"unknown command {name!r}"}

    def close(self) -> None:
        for m in self.members:
            if m.sock is not None:
                m.sock.close()


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
    await worker.connect(args.concurrency)
    _reply(
        {
            "event": "connected",
            "ok": len(worker.live()),
            "errors": dict(worker.errors),
            "connect_s": time.monotonic() - began,
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        }
    )
    for _ in range(100_000):
        cmd = json.loads(await lines.get())
        if cmd.get("cmd") == "quit":
            break
        _reply(await worker.command(cmd))
    worker.close()
    await asyncio.sleep(0.2)  # let the close frames go out
    _reply({"event": "bye"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.swarm", description=__doc__)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws")
    parser.add_argument("--first", type=int, default=0, help="index of the first socket")
    parser.add_argument("--count", type=int, required=True, help="sockets to hold")
    parser.add_argument("--any", action="store_true", help="any message counts as the wave")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once")
    args = parser.parse_args()
    raise_nofile()
    run_async(_main(args))


# -- the controller side ------------------------------------------------------


class Swarm:
    """Several swarm processes sharing `count` sockets; commands go to all of them."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(
        self, url: str, count: int, processes: int, first: int = 1, any_message: bool = False
    ) -> list[dict[str, Any]]:
        """Start the processes and wait until each has opened its sockets."""
        per = -(-count // max(processes, 1))
        for k in range(processes):
            n = min(per, count - k * per)
            if n <= 0:
                break
            argv = ["-m", "load.bench.swarm", "--url", url, "--first", str(first + k * per)]
            argv += ["--count", str(n)] + (["--any"] if any_message else [])
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=2**26,
                )
            )
        return [await self._answer(p, 600) for p in self.procs]

    async def _answer(self, proc: asyncio.subprocess.Process, within_s: float) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), within_s)
        if not line:
            raise RuntimeError(f"swarm process {proc.pid} ended early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, cmd: dict[str, Any], within_s: float = 120) -> list[dict[str, Any]]:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await proc.stdin.drain()
        return [await self._answer(p, within_s) for p in self.procs]

    async def wave(self, t0: float, within_s: float = 120.0) -> dict[str, Any]:
        """After `arm` and a trigger at `t0`: when each socket had its message, from `t0`."""
        answers = await self.ask({"cmd": "wave", "timeout": within_s}, within_s=within_s + 60)
        arrivals = [t - t0 for a in answers for t in a["arrivals"]]
        moved: Counter[str] = Counter()
        for a in answers:
            moved.update(a["moved_by"])
        return {
            "s": summary(arrivals),
            "missing": sum(a["missing"] for a in answers),
            # places each socket moved up by; one slot freed, so all should say 1
            "moved_by": dict(moved),
        }

    async def quiet(self, quiet_s: float, within_s: float) -> dict[str, float]:
        """Wait until no socket got a message for `quiet_s` (at most `within_s`).

        Returns how long that took and how many messages a second arrived meanwhile: a line
        that never goes quiet shows it here instead of stalling the benchmark.
        """
        began = time.monotonic()
        first = sum(s["messages"] for s in await self.ask({"cmd": "status"}))
        quiet = False
        while time.monotonic() - began < within_s:
            status = await self.ask({"cmd": "status"})
            if time.monotonic() - max(s["last"] for s in status) >= quiet_s:
                quiet = True
                break
            await asyncio.sleep(0.25)
        took = time.monotonic() - began
        last = sum(s["messages"] for s in await self.ask({"cmd": "status"}))
        return {
            "settle_s": round(took, 3),
            "quiet": quiet,
            "messages_per_s": round((last - first) / max(took, 1e-3), 1),
        }

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


if __name__ == "__main__":
    main()
