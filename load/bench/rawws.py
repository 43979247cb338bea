"""A WebSocket client on a bare asyncio Protocol, which stamps each frame the moment it is read.

A `websockets` client takes about three times as long to take in a wave of small messages as a
bare server takes to send them, so a benchmark built on it measures itself. This client speaks
just enough of RFC 6455 for JSON text frames: the opening handshake with a fixed key, unmasked
server frames (split across reads, or several in one read, or fragmented), masked client
frames, ping and close.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import msgspec

# The nonce of RFC 6455's own example: the server only echoes a hash of it, and a benchmark
# needs no secrecy, so every socket uses it.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(hashlib.sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
MAX_HEAD = 16384  # bytes of handshake response before giving up

T = TypeVar("T")


class HandshakeError(ConnectionError):
    """The server did not switch protocols as RFC 6455 asks."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final frame from a client, masked as RFC 6455 5.3 requires of every client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    if not n:
        return head + mask
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def handshake(host: str, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def check_response(head: bytes) -> None:
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        raise HandshakeError(lines[0].decode("latin-1")[:200])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept" and value.strip() == ACCEPT:
            return
    raise HandshakeError("no valid Sec-WebSocket-Accept")


OnMessage = Callable[[T, float, bytes], None]


class RawSocket(asyncio.Protocol, Generic[T]):
    """One client connection. Text messages go to `on_message(tag, arrival, payload)`."""

    __slots__ = (
        "_parts",
        "_pending",
        "closed",
        "on_message",
        "opened",
        "request",
        "shook",
        "tag",
        "transport",
    )

    def __init__(self, tag: T, on_message: OnMessage[T], request: bytes) -> None:
        self.tag = tag
        self.on_message = on_message
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.shook = False
        self._pending = b""
        self._parts: list[bytes] | None = None  # a fragmented message being put together

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but offer the same calls.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        t = time.monotonic()
        buf = self._pending + data if self._pending else data
        if not self.shook:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._pending = buf
                if len(buf) > MAX_HEAD:
                    self._fail(HandshakeError("handshake response too long"))
                return
            try:
                check_response(buf[:end])
            except HandshakeError as exc:
                self._fail(exc)
                return
            self.shook = True
            if not self.opened.done():
                self.opened.set_result(None)
            buf = buf[end + 4 :]
        self._pending = self._frames(buf, t)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))

    # -- frames -----------------------------------------------------------

    def _frames(self, buf: bytes, t: float) -> bytes:
        """Hand over every whole frame in `buf`; return the bytes of an incomplete one."""
        i, n = 0, len(buf)
        while n - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            if b1 & 0x80:
                self._fail(ConnectionError("the server masked a frame"))
                return b""
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - i < 4:
                    break
                length, head = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif length == 127:
                if n - i < 10:
                    break
                length, head = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            end = i + head + length
            if end > n:
                break
            self._frame(b0 & 0x0F, bool(b0 & 0x80), buf[i + head : end], t)
            i = end
        return buf[i:] if i < n else b""

    def _frame(self, opcode: int, fin: bool, payload: bytes, t: float) -> None:
        if opcode in (TEXT, BINARY):
            if fin:
                self.on_message(self.tag, t, payload)
            else:
                self._parts = [payload]
        elif opcode == CONTINUATION and self._parts is not None:
            self._parts.append(payload)
            if fin:
                whole, self._parts = b"".join(self._parts), None
                self.on_message(self.tag, t, whole)
        elif opcode == PING:
            self._write(client_frame(PONG, payload))
        elif opcode == CLOSE:
            self._write(client_frame(CLOSE, payload[:2]))
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # -- sending ----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send(self, text: str) -> None:
        self._write(client_frame(TEXT, text.encode()))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message, separators=(",", ":")))

    def close(self) -> None:
        """Send a normal close and hang up without waiting for the answer."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()
        self.closed = True

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


async def connect(
    url: str,
    tag: T,
    on_message: OnMessage[T],
    local_address: str | None = None,
    timeout_s: float = 60.0,
) -> RawSocket[T]:
    """Open `ws://host:port/path` from `local_address` and finish the opening handshake."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
        raise ValueError(f"expected ws://host:port/path, got {url!r}")
    request = handshake(f"{parts.hostname}:{parts.port}", parts.path or "/")
    loop = asyncio.get_running_loop()
    local = None if local_address is None else (local_address, 0)
    async with asyncio.timeout(timeout_s):
        _, sock = await loop.create_connection(
            lambda: RawSocket(tag, on_message, request),
            parts.hostname,
            parts.port,
            local_addr=local,
        )
        try:
            await sock.opened
        except BaseException:
            sock.close()
            raise
    return sock


class Seen(msgspec.Struct):
    """The fields of hub messages that benchmarks read; every other field is skipped."""

    type: str = "?"
    position: int | None = None
    eta_s: float | None = None
    eta_low_s: float | None = None
    eta_high_s: float | None = None
    ticket: str | None = None
    import_id: str | None = None
    code: str | None = None
    waited_s: float | None = None


decode_seen = msgspec.json.Decoder(Seen).decode


class Recorder:
    """Keeps every message of one socket with its arrival, for the few sockets a bench drives."""

    __slots__ = ("_news", "messages", "raw")

    def __init__(self) -> None:
        self.messages: list[tuple[float, Seen]] = []
        self.raw: list[bytes] = []
        self._news = asyncio.Event()

    def __call__(self, t: float, payload: bytes) -> None:
        self.messages.append((t, decode_seen(payload)))
        self.raw.append(payload)
        self._news.set()

    def first(self, kinds: Iterable[str], after: int = 0) -> tuple[float, Seen] | None:
        wanted = set(kinds)
        return next(((t, m) for t, m in self.messages[after:] if m.type in wanted), None)

    async def until(self, kinds: tuple[str, ...], within_s: float, after: int = 0) -> float:
        """Arrival of the first message of one of `kinds` at index `after` or later."""
        async with asyncio.timeout(within_s):
            while True:
                hit = self.first(kinds, after)
                if hit is not None:
                    return hit[0]
                self._news.clear()
                await self._news.wait()


def _record(recorder: Recorder, t: float, payload: bytes) -> None:
    recorder(t, payload)


async def open_recorded(
    url: str, local_address: str | None = None
) -> tuple[RawSocket[Recorder], Recorder]:
    """A socket whose every message is kept, e.g. one that holds a slot or watches the board."""
    recorder = Recorder()
    sock = await connect(url, recorder, _record, local_address)
    return sock, recorder
