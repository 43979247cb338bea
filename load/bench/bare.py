"""A bare websockets server: the reference for fan-out speed and per-socket memory.

`python -m load.bench.bare --port P`. Sockets on `/ws` are held idle. A socket on `/control`
that sends `go` gets `{"type":"trigger"}`, then every held socket gets one personalised message
shaped like the hub's `queued`, then the control socket gets `{"type":"sent","sent":n,…}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from load.bench.rawws import RawSocket, Recorder
from load.bench.swarm import Swarm
from load.procs import Child, raise_nofile, run_async, spawn


def payload(index: int) -> str:
    """The same fields and about the same size as the hub's `queued` message (protocol v1 with
    the estimate's interval)."""
    position = index + 2
    eta = round(100000.0 + position * 1.0, 1)
    return json.dumps(
        {
            "type": "queued",
            "import_id": f"{index:016x}",
            "position": position,
            "ahead": position - 1,
            "eta_s": eta,
            "eta_low_s": round(eta * 0.8, 1),
            "eta_high_s": round(eta * 1.3, 1),
            "slots_total": 1,
            "slots_free": 0,
        },
        separators=(",", ":"),
    )


async def serve_forever(port: int) -> None:
    clients: dict[ServerConnection, None] = {}  # insertion-ordered, O(1) removal
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)

    async def control(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "go":
                await ws.send('{"type":"trigger"}')
                began = time.monotonic()
                sent = 0
                for index, client in enumerate(list(clients)):
                    with contextlib.suppress(ConnectionClosed):
                        await client.send(payload(index))
                        sent += 1
                took = time.monotonic() - began
                await ws.send(json.dumps({"type": "sent", "sent": sent, "send_s": took}))
            elif message == "count":
                await ws.send(json.dumps({"clients": len(clients)}))

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/control":
            await control(ws)
            return
        clients[ws] = None
        try:
            await ws.wait_closed()
        finally:
            clients.pop(ws, None)

    def health(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        process_request=health,
        ping_interval=None,
        backlog=2048,
    ):
        await stop


async def bare_wave(swarm: Swarm, control: RawSocket[Recorder], seen: Recorder) -> dict[str, Any]:
    """One round: `swarm`'s sockets (on `/ws`) armed, `go` on the control socket; when each
    socket had its message, from the arrival of `trigger`."""
    await swarm.ask({"cmd": "arm"})
    mark = len(seen.messages)
    control.send("go")
    t0 = await seen.until(("trigger",), 30, after=mark)
    result = await swarm.wave(t0)
    await seen.until(("sent",), 60, after=mark)
    result["server_send_s"] = round(json.loads(seen.raw[-1])["send_s"], 4)
    return result


def start_bare(log: Path) -> Child:
    """This server in a process of its own, answering `/healthz`."""
    return spawn(["-m", "load.bench.bare"], log, "/healthz")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.bare", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_nofile()
    run_async(serve_forever(args.port))


if __name__ == "__main__":
    main()
