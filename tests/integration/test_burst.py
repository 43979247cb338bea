"""200 sockets press Import at once: each hears its ticket and its place before it starts."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HubFactory
from tests.procs import Proc, WsClient
from tests.tcpproxy import TcpProxy

SOCKETS = 200


class HeldProxy(TcpProxy):
    """Accepts connections but forwards nothing until `release()`: an upstream that stalls.

    It keeps the hub's first imports from ending, so every import of the burst must
    wait in line whatever the speed of the machine, with no timing in the test.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._flowing = asyncio.Event()  # used on the proxy's own loop only

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        await super()._accept(reader, writer)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)


def kinds(client: WsClient) -> list[str]:
    return [m["type"] for _, m in client.messages]


async def importing(hub: Proc, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    assert (await client.recv())["type"] == "hello"
    await client.send({"type": "import", "source": "chesscom", "username": username})
    return client


async def test_burst_every_socket_hears_ticket_and_place_before_started(
    sim: Proc, hub_factory: HubFactory
) -> None:
    proxy = HeldProxy("127.0.0.1", sim.port)
    proxy.restore()
    try:
        hub = hub_factory(
            sim,
            MAX_CONCURRENT_IMPORTS=2,
            HUB_LANE_CHESSCOM=2,
            HUB_CHESSCOM_URL=f"http://127.0.0.1:{proxy.port}",
        )
        # Two imports take both slots and stall on the upstream.
        blockers = [await importing(hub, f"block{n}-p1x3") for n in range(2)]
        for blocker in blockers:
            await blocker.until("started")

        sockets = await asyncio.gather(*(WsClient.open(hub.ws_url) for _ in range(SOCKETS)))
        for client in sockets:
            assert (await client.recv())["type"] == "hello"
        await asyncio.gather(
            *(
                client.send({"type": "import", "source": "chesscom", "username": f"b{n}-p1x3"})
                for n, client in enumerate(sockets)
            )
        )
        # Nothing can start yet: every socket hears its ticket, then its place.
        places = await asyncio.gather(*(client.until("queued") for client in sockets))
        for client in sockets:
            assert kinds(client) == ["hello", "ticket", "queued"], kinds(client)
            ticket = client.of("ticket")[0]
            assert (
                ticket["joined"] is False
                and ticket["import_id"] == client.of("queued")[0]["import_id"]
            )
        assert sorted(q["position"] for q in places) == list(range(1, SOCKETS + 1))
        for place in places:
            assert place["eta_low_s"] <= place["eta_s"] <= place["eta_high_s"]
        # The line as the board shows it, while the upstream still stalls.
        board = hub.get_json("/api/queue")
        assert proxy.accepted == 0 and board["slots_free"] == 0
        assert board["waiting_total"] == SOCKETS and len(board["running"]) == 2
        ids = {q["import_id"] for q in places}
        assert all(row["import_id"] in ids for row in board["waiting"])
        assert all(row["player"].endswith("…") for row in board["running"] + board["waiting"])

        proxy.release()
        finals = await asyncio.gather(
            *(client.until("done", "failed", "error", timeout=300) for client in sockets)
        )
        await asyncio.gather(*(b.until("done", timeout=60) for b in blockers))
    finally:
        proxy.close()

    assert [f["type"] for f in finals] == ["done"] * SOCKETS
    for n, client in enumerate(sockets):
        check_order(n, client)


def check_order(n: int, client: WsClient) -> None:
    seen = kinds(client)
    assert seen.index("ticket") < seen.index("queued") < seen.index("started"), (n, seen)
    started = seen.index("started")
    assert "queued" not in seen[started:], (n, seen)
    assert "error" not in seen, (n, seen)
    positions = [m["position"] for m in client.of("queued")]
    assert positions == sorted(positions, reverse=True), (n, positions)
    # One lane, first come first served: each was first in line when its turn came.
    assert positions[-1] == 1, (n, positions)
    queued: list[dict[str, Any]] = client.of("queued")
    assert all(q["position"] - 1 == q["ahead"] for q in queued)
