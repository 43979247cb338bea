"""The benchmarks' own parts: the raw WebSocket client's framing, ETA grading, report wording."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest

from load.bench.eta import SAMPLES_NEEDED, Waiter, grade, grade_one
from load.bench.rawws import (
    ACCEPT,
    CLOSE,
    PING,
    PONG,
    TEXT,
    HandshakeError,
    RawSocket,
    Recorder,
    client_frame,
)
from load.client import User
from load.derive import derive
from load.report import running_at_once, saw_position

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n"
)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def read_client_frame(data: bytes) -> tuple[bool, int, bytes, int]:
    """(fin, opcode, unmasked payload, frame length) of the first client frame in `data`."""
    fin, opcode = bool(data[0] & 0x80), data[0] & 0x0F
    assert data[1] & 0x80, "client frames must be masked"
    n, i = data[1] & 0x7F, 2
    if n == 126:
        n, i = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        n, i = struct.unpack("!Q", data[2:10])[0], 10
    mask, body = data[i : i + 4], data[i + 4 : i + 4 + n]
    return fin, opcode, bytes(b ^ mask[k % 4] for k, b in enumerate(body)), i + 4 + n


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def opened_socket() -> tuple[RawSocket[list[bytes]], list[bytes], FakeTransport]:
    got: list[bytes] = []

    def keep(into: list[bytes], t: float, payload: bytes) -> None:
        into.append(payload)

    sock: RawSocket[list[bytes]] = RawSocket(got, keep, b"GET / HTTP/1.1\r\n\r\n")
    transport = FakeTransport()
    sock.connection_made(transport)
    return sock, got, transport


@pytest.mark.parametrize("size", [0, 5, 125, 126, 200, 65535, 70000])
def test_client_frames_are_masked_and_sized(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    fin, opcode, body, length = read_client_frame(client_frame(TEXT, payload))
    assert (fin, opcode, body) == (True, TEXT, payload)
    assert length == len(client_frame(TEXT, payload))


async def test_frames_split_anywhere_or_together_arrive_whole_and_in_order() -> None:
    messages = [b'{"type":"hello"}', b"x" * 300, b"y" * 70000, b'{"type":"queued"}']
    stream = RESPONSE + b"".join(server_frame(TEXT, m) for m in messages)
    for step in (1, 3, 7, 1000, len(stream)):
        sock, got, _ = opened_socket()
        for i in range(0, len(stream), step):
            sock.data_received(stream[i : i + step])
        assert sock.opened.done() and sock.opened.exception() is None
        assert got == messages, step


async def test_a_fragmented_message_is_put_together_around_a_ping() -> None:
    sock, got, transport = opened_socket()
    sent_request = bytes(transport.written)
    sock.data_received(
        RESPONSE
        + server_frame(TEXT, b'{"a":', fin=False)
        + server_frame(PING, b"hi")
        + server_frame(0, b"1}", fin=True)
    )
    assert got == [b'{"a":1}']
    fin, opcode, body, _ = read_client_frame(bytes(transport.written[len(sent_request) :]))
    assert (fin, opcode, body) == (True, PONG, b"hi")


async def test_a_close_is_answered_and_the_connection_dropped() -> None:
    sock, _, transport = opened_socket()
    before = len(transport.written)
    sock.data_received(RESPONSE + server_frame(CLOSE, (1001).to_bytes(2, "big") + b"bye"))
    _, opcode, body, _ = read_client_frame(bytes(transport.written[before:]))
    assert (opcode, body) == (CLOSE, (1001).to_bytes(2, "big"))
    assert sock.closed and transport.closing


async def test_a_refused_handshake_fails_the_opening() -> None:
    sock, _, transport = opened_socket()
    sock.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(HandshakeError, match="403"):
        await sock.opened
    assert transport.closing


async def test_a_masked_server_frame_is_refused() -> None:
    sock, got, transport = opened_socket()
    await asyncio.sleep(0)
    sock.data_received(RESPONSE + client_frame(TEXT, b"{}"))
    assert got == [] and sock.closed and transport.closing


# -- ETA grading ---------------------------------------------------------------------


def recorder(*messages: tuple[float, dict[str, Any]]) -> Recorder:
    seen = Recorder()
    for t, message in messages:
        seen(t, json.dumps(message).encode())
    return seen


def waiter(seen: Recorder, ticket_at: float = 10.0) -> Waiter:
    return Waiter(0, 6, None, seen, ticket_at)  # type: ignore[arg-type]


def queued(eta: float, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "queued", "position": 1, "eta_s": eta}
    if low is not None:
        message |= {"eta_low_s": low, "eta_high_s": high}
    return message


async def test_the_estimate_held_one_second_after_the_ticket_is_graded() -> None:
    seen = recorder(
        (10.0, {"type": "ticket", "ticket": "k"}),
        (10.1, queued(9.0)),  # first estimate: start at 19.1
        (10.5, queued(4.5, 3.0, 6.0)),  # held at 11.0: start at 15.0
        (11.5, queued(3.0)),  # too late to count
        (15.5, {"type": "started", "waited_s": 5.5}),
        (16.0, {"type": "done"}),
    )
    row = grade_one(waiter(seen), recorded=SAMPLES_NEEDED)
    assert row["graded"] == "yes"
    assert row["error"] == pytest.approx(0.5 / 5.0)  # against the wait from 10.5
    assert row["remaining_error"] == pytest.approx(0.5 / 4.5)  # against what was left at 11.0
    assert row["first_error"] == pytest.approx(3.6 / 5.4)
    assert row["in_interval"] is True and row["interval_eligible"] is True


async def test_an_import_admitted_within_the_second_or_at_once_is_not_graded() -> None:
    soon = recorder(
        (10.0, {"type": "ticket"}),
        (10.1, queued(0.4)),
        (10.6, {"type": "started"}),
        (11.0, {"type": "done"}),
    )
    at_once = recorder(
        (10.0, {"type": "ticket"}), (10.0, {"type": "started"}), (10.5, {"type": "done"})
    )
    assert grade_one(waiter(soon), 0)["graded"] == "admitted within 1 s"
    assert grade_one(waiter(at_once), 0)["waited"] is False


async def test_an_old_hub_without_an_interval_counts_earlier_starts() -> None:
    waiters = []
    for k in range(SAMPLES_NEEDED + 2):
        t = 10.0 * k
        seen = recorder(
            (t, {"type": "ticket"}),
            (t + 0.1, queued(2.0)),
            (t + 2.0, {"type": "started"}),
            (t + 3.0, {"type": "done"}),
        )
        waiters.append(waiter(seen, ticket_at=t))
    result = grade(waiters, board=[])
    assert result["graded"] == SAMPLES_NEEDED + 2
    assert result["interval_present"] is False and result["interval_hit_pct"] is None
    assert result["interval_eligible"] == 2  # the 21st and 22nd came after 20 starts
    assert result["median_error_pct"] == pytest.approx(100 * 0.1 / 1.9, abs=0.1)


# -- the load report's words ---------------------------------------------------------


def user(index: int, queued_at: float | None, waited_s: float) -> User:
    u = User(index=index, hub=0, url="ws://127.0.0.1:1/ws", source="chesscom", username="u")
    u.sent_at = 1.0
    u.events.append((1.01, {"type": "ticket", "ticket": "t"}, False))
    if queued_at is not None:
        u.q_times.append(queued_at)
        u.q_positions.append(1)
        u.q_etas.append(1.0)
    u.events.append((2.0, {"type": "started", "waited_s": waited_s}, False))
    u.events.append((3.0, {"type": "done", "duration_s": 1.0}, False))
    return u


def test_every_import_that_waited_must_have_seen_a_position() -> None:
    imports = [
        derive(user(0, None, 0.0)),  # admitted at its join: it never waited
        derive(user(1, 1.5, 0.9)),
        derive(user(2, None, 0.9)),  # waited, never saw a position
        derive(user(3, 2.5, 0.9)),  # its position came after `started`
    ]
    seen = saw_position(imports)
    assert (seen["waited"], seen["saw_position"], seen["missed"]) == (3, 1, 2)
    assert seen["missed_users"] == [2, 3]


def test_running_at_once_says_what_was_seen_and_where() -> None:
    report: dict[str, Any] = {
        "max_concurrent_configured": 2,
        "max_concurrent_running": {"hub0": 3},
        "over_configured": {"hub0": {"episodes": 4, "total_ms": 3.0, "longest_ms": 1.4}},
        "hub_log_errors": {"hub.log": {"max_slots_in_use_at_admission": 2}},
    }
    text = running_at_once(report)
    assert text.startswith("the hub's log: at most 2 of 2 slots in use; ")
    assert "hub0's clients: at most 3 between `started` and `done`" in text
    assert "on 4 occasions, 1 ms at the longest" in text
    assert "{" not in text
    report |= {"max_concurrent_configured": None, "hub_log_errors": {}, "over_configured": {}}
    assert "not read with --hub" in running_at_once(report)
