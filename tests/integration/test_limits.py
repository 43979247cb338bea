"""Abuse limits against a real hub: every refusal is clear and nothing leaks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import Proc, WsClient


async def closed_code(client: WsClient, timeout: float = 5.0) -> int | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await client.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def test_oversized_frame_closes_with_1009(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_WS_MAX_BYTES=1024)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.send(json.dumps({"type": "resume", "ticket": "x" * 2000}))
    assert await closed_code(client) == 1009


async def test_flood_gets_rate_limited_then_closed(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_WS_MSGS_PER_S=5)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    for _ in range(30):
        try:
            await client.send({"type": "watch_queue"})
        except ConnectionClosed:
            break
    assert await closed_code(client) == 1008
    assert any(m["type"] == "error" and m["code"] == "rate_limited" for _, m in client.messages)


async def test_steady_flood_is_closed_with_one_warning_a_second(
    sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(sim, HUB_WS_MSGS_PER_S=5)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    began = time.monotonic()

    async def flood() -> None:  # 50 messages a second, ten times the limit, for up to 20 s
        for n in range(1, 1000):
            try:
                await client.send({"type": "resume", "ticket": "no-such-ticket"})
            except ConnectionClosed:
                return
            await asyncio.sleep(max(0.0, began + n / 50 - time.monotonic()))

    sender = asyncio.create_task(flood())
    code = await closed_code(client, timeout=20)
    closed_after = time.monotonic() - began
    sender.cancel()
    assert code == 1008
    assert closed_after < 5.0
    warned = [t for t, m in client.messages if m["type"] == "error" and m["code"] == "rate_limited"]
    assert 1 <= len(warned) <= closed_after + 1
    # The messages that were let through were handled, not dropped.
    assert any(m["type"] == "error" and m["code"] == "unknown_ticket" for _, m in client.messages)


async def test_sockets_per_address(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_MAX_SOCKETS_PER_IP=3)
    held = [await WsClient.open(hub.ws_url) for _ in range(3)]
    for c in held:
        assert (await c.recv())["type"] == "hello"
    extra = await WsClient.open(hub.ws_url)
    assert await closed_code(extra) == 1008
    await held[0].close()

    async def admitted() -> bool:
        client = await WsClient.open(hub.ws_url)
        try:
            return bool((await client.recv())["type"] == "hello")
        except ConnectionClosed:
            return False  # the hub has not seen the close yet

    await eventually(admitted, "the freed place is usable again", timeout=10)


async def test_sockets_in_all(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_MAX_SOCKETS=2)
    held = [await WsClient.open(hub.ws_url) for _ in range(2)]
    for c in held:
        await c.recv()
    extra = await WsClient.open(hub.ws_url)
    assert await closed_code(extra) == 1013


async def test_imports_per_address(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, HUB_MAX_TICKETS_PER_IP=2, MAX_CONCURRENT_IMPORTS=1)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    for n in range(2):
        await client.send({"type": "import", "source": "chesscom", "username": f"mine{n}-p3x2"})
        await client.until("ticket")
    await client.send({"type": "import", "source": "chesscom", "username": "mine2-p3x2"})
    refused = await client.until("error")
    assert refused["code"] == "too_many_imports"
    await client.until("done")
    await client.until("done")
    # Both ended, so the visitor may import again.
    await client.send({"type": "import", "source": "chesscom", "username": "mine3-p1x2"})
    await client.until("ticket")


async def test_queue_full(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, HUB_MAX_QUEUE=2, MAX_CONCURRENT_IMPORTS=1)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    for n in range(3):  # one runs, two wait
        await client.send({"type": "import", "source": "chesscom", "username": f"full{n}-p8x2"})
        await client.until("ticket")
    await client.send({"type": "import", "source": "chesscom", "username": "full3-p8x2"})
    refused = await client.until("error")
    assert refused["code"] == "queue_full" and "wait about" in refused["message"]
    # Joining an import already in line is not a new place, so it is not refused.
    await client.send({"type": "import", "source": "chesscom", "username": "FULL2-p8x2"})
    assert (await client.until("ticket"))["joined"] is True


async def test_foreign_origin_is_refused(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(hub.ws_url, origin=Origin("https://evil.example"), proxy=None)
    assert refused.value.response.status_code == 403
    own = await websockets.connect(
        hub.ws_url, origin=Origin(f"http://127.0.0.1:{hub.port}"), proxy=None
    )
    assert json.loads(await own.recv())["type"] == "hello"
    await own.close()


async def test_listed_origin_is_accepted(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_ALLOWED_ORIGINS="https://chess.example")
    ok = await websockets.connect(hub.ws_url, origin=Origin("https://chess.example"), proxy=None)
    assert json.loads(await ok.recv())["type"] == "hello"
    await ok.close()
    with pytest.raises(InvalidStatus):
        await websockets.connect(
            hub.ws_url, origin=Origin(f"http://127.0.0.1:{hub.port}"), proxy=None
        )


async def test_forwarded_for_needs_a_trusted_proxy(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_MAX_SOCKETS_PER_IP=1)
    first = await websockets.connect(
        hub.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.9"}, proxy=None
    )
    await first.recv()
    # Not from a trusted proxy: the header is ignored, so this is the same address.
    second = await websockets.connect(
        hub.ws_url, additional_headers={"X-Forwarded-For": "198.51.100.7"}, proxy=None
    )
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await second.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    await first.close()


async def test_trusted_proxy_forwarded_for(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_MAX_SOCKETS_PER_IP=1, HUB_TRUST_PROXY="127.0.0.1")
    a = await websockets.connect(
        hub.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.9"}, proxy=None
    )
    b = await websockets.connect(
        hub.ws_url, additional_headers={"X-Forwarded-For": "198.51.100.7"}, proxy=None
    )
    for conn in (a, b):
        assert json.loads(await conn.recv())["type"] == "hello"
        await conn.close()


async def connect_via_proxy(hub: Proc, *lines: str) -> websockets.ClientConnection:
    """A socket whose request carries these X-Forwarded-For lines, as a proxy passes them."""
    headers = [("X-Forwarded-For", line) for line in lines]
    return await websockets.connect(hub.ws_url, additional_headers=headers, proxy=None)


async def test_every_forwarded_for_line_is_read(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_MAX_SOCKETS_PER_IP=1, HUB_TRUST_PROXY="127.0.0.0/8, 10.0.0.0/8")
    # The client forges a first line; the proxy adds its own line with the address it saw.
    first = await connect_via_proxy(hub, "198.51.100.1", "203.0.113.9, 10.0.0.2")
    assert json.loads(await first.recv())["type"] == "hello"
    second = await connect_via_proxy(hub, "198.51.100.2", "203.0.113.9, 10.0.0.2")
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await second.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    other = await connect_via_proxy(hub, "198.51.100.1", "203.0.113.10")
    assert json.loads(await other.recv())["type"] == "hello"
    await first.close()
    await other.close()


async def test_ipv6_visitors_are_counted_per_network(
    slow_sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(
        slow_sim, HUB_MAX_TICKETS_PER_IP=1, HUB_TRUST_PROXY="127.0.0.1", MAX_CONCURRENT_IMPORTS=1
    )
    answers = []
    # The first import (40 pages at 60 ms) is still running when the others ask.
    for n, address in enumerate(["2001:db8:1:2::1", "2001:db8:1:2:aaaa::2", "2001:db8:1:3::1"]):
        client = WsClient(await connect_via_proxy(hub, address))
        await client.recv()
        await client.send({"type": "import", "source": "chesscom", "username": f"net{n}-p40x2"})
        answers.append(await client.until("ticket", "error"))
    assert answers[0]["type"] == "ticket"
    assert answers[1]["type"] == "error" and answers[1]["code"] == "too_many_imports"
    assert answers[2]["type"] == "ticket"  # another /64


@pytest.mark.parametrize(
    ("name", "value"),
    [("HUB_TRUST_PROXY", "10.0.0.1/8"), ("HUB_TRUST_PROXY", "proxy"), ("HUB_IPV6_PREFIX", "0")],
)
def test_bad_address_settings_stop_the_hub(name: str, value: str) -> None:
    env = {**os.environ, name: value, "DATABASE_URL": "sqlite:///:memory:"}
    done = subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hub: {name}="), done.stderr


async def test_sigterm_tells_browsers_to_reconnect(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, HUB_SHUTDOWN_S=5)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.send({"type": "import", "source": "chesscom", "username": "term-p30x5"})
    await client.until("progress")
    began = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    assert await closed_code(client, timeout=10) == 1012
    # uvicorn re-raises SIGTERM once it has shut down cleanly.
    assert hub.proc.wait(10) in (0, -signal.SIGTERM)
    assert time.monotonic() - began < 6
    logs = hub.logs()
    assert "Application shutdown complete" in logs and "Traceback" not in logs
    assert "code=interrupted" in logs  # the running import was recorded as interrupted


async def test_text_frame_not_utf8(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)  # the factory fails the test if the hub logged a traceback
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.conn.send(b"\xff\xfe{", text=True)
    assert await closed_code(client) == 1007
    await eventually(lambda: "Invalid UTF-8" in hub.logs(), "the bad frame is logged", timeout=10)
    good = await WsClient.open(hub.ws_url)
    assert (await good.recv())["type"] == "hello"
