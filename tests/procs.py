"""Real `hub serve` and `hub sim` processes on free ports, for integration and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import websockets
from websockets.asyncio.client import ClientConnection

# The load tool starts the same processes the same way; one copy of how.
from load.procs import free_port, wait_http

USER_AGENT = "chess-import-hub-tests (+https://example.invalid; tests@example.invalid)"


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def get_json(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def get_text(self, path: str) -> tuple[str, str]:
        """(content type, body) of a GET."""
        request = urllib.request.Request(self.url + path, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers["Content-Type"], response.read().decode()

    def post(self, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, method="POST", headers={"User-Agent": USER_AGENT}, data=b""
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start(args: list[str], env: dict[str, str], log: Path, ready_path: str) -> Proc:
    port = free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", *args, "--port", str(port)],
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    p = Proc(proc, port, log, env)
    try:
        wait_http(p.url + ready_path, proc, log)
    except Exception:
        p.stop(signal.SIGKILL)
        raise
    return p


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path, ready_path: str) -> Iterator[Proc]:
    p = start(args, env, log, ready_path)
    try:
        yield p
    finally:
        p.stop()


class WsClient:
    """A test's view of one socket: every message kept, with its arrival time."""

    opened: ClassVar[list[WsClient]] = []  # closed by a fixture at teardown

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.messages: list[tuple[float, dict[str, Any]]] = []
        WsClient.opened.append(self)

    @classmethod
    async def open(cls, url: str) -> WsClient:
        conn = await websockets.connect(url, compression=None, proxy=None, open_timeout=10)
        return cls(conn)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.conn.recv(), timeout)
        message: dict[str, Any] = json.loads(raw)
        self.messages.append((time.monotonic(), message))
        return message

    async def until(self, *types: str, timeout: float = 60.0) -> dict[str, Any]:
        """Read until a message of one of `types` arrives; earlier ones are kept too."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [m["type"] for _, m in self.messages]
                raise TimeoutError(f"no {types} within {timeout} s; saw {seen}")
            message = await self.recv(left)
            if message["type"] in types:
                return message

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["type"] == kind]

    async def close(self) -> None:
        await self.conn.close()
