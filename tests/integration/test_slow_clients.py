"""Slow HTTP clients against a real hub: headers have a deadline, WebSockets do not."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import HubFactory
from tests.procs import Proc, WsClient


async def closed_by_hub(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the hub closes the connection without having answered anything."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read(1024) == b""
    except ConnectionResetError:
        return True


async def test_headers_that_never_finish_are_cut_off(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_HEADER_TIMEOUT_S=1)
    began = time.monotonic()
    silent = await asyncio.open_connection("127.0.0.1", hub.port)
    trickling = await asyncio.open_connection("127.0.0.1", hub.port)
    trickling[1].write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: a")
    # Polled against a generous deadline: without the header timeout neither would close.
    assert await closed_by_hub(silent[0], timeout=30)
    assert await closed_by_hub(trickling[0], timeout=30)
    assert time.monotonic() - began >= 1.0
    for _, writer in (silent, trickling):
        writer.close()
    # A kept-alive connection gets the same deadline for its next request.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b'{"status":"ok"}'), 10)
    assert answer.startswith(b"HTTP/1.1 200")
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    assert await closed_by_hub(reader, timeout=30)
    writer.close()


async def test_a_websocket_outlives_the_header_deadline(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_HEADER_TIMEOUT_S=1)
    client = await WsClient.open(hub.ws_url)
    assert (await client.recv())["type"] == "hello"
    # Quiet for several deadlines: the socket must stay open until the import is done.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    assert await closed_by_hub(reader, timeout=30)  # a deadline has passed meanwhile
    writer.close()
    await client.send({"type": "import", "source": "chesscom", "username": "patient-p3x5"})
    done = await client.until("done")
    assert done["games_new"] == 15
    assert hub.get_json("/healthz") == {"status": "ok"}
