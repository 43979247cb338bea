"""The hub end to end: a real `hub serve` and `hub sim`, driven over real WebSockets."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import Proc, WsClient


async def import_one(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    hello = await client.recv()
    assert hello["type"] == "hello" and hello["protocol"] == 1
    await client.send({"type": "import", "source": source, "username": username})
    return client


async def test_one_import_runs_to_done(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    client = await import_one(hub, "chesscom", "p4x25")
    ticket = await client.until("ticket")
    assert ticket["joined"] is False and len(ticket["ticket"]) >= 22
    done = await client.until("done")
    progress = client.of("progress")
    assert [m["page"] for m in progress] == [1, 2, 3, 4]
    assert progress[-1]["pages"] == 4 and progress[-1]["games"] == 100
    assert done["games_new"] == 100 and done["games_total"] == 100 and done["pages"] == 4
    truth = sim.get_json("/_sim/truth/chesscom/p4x25")
    assert len(truth["games"]) == 100
    state = hub.get_json(f"/api/imports/{done['import_id']}")
    assert state["state"] == "done" and state["games"] == 100 and state["pages"] == 4
    await client.close()


async def test_two_simultaneous_imports_both_finish(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    a, b = await asyncio.gather(
        import_one(hub, "chesscom", "p3x20"), import_one(hub, "lichess", "p2x150")
    )
    done_a, done_b = await asyncio.gather(a.until("done"), b.until("done"))
    assert done_a["games_new"] == 60 and done_b["games_new"] == 300
    assert done_b["pages"] == 3  # 300 lichess games in pages of 100


async def test_three_with_two_slots(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=2)
    clients = [await import_one(hub, "chesscom", f"three{n}-p6x5") for n in range(3)]
    first = [await c.until("started", "queued") for c in clients]
    assert [m["type"] for m in first] == ["started", "started", "queued"]
    assert first[2]["position"] == 1 and first[2]["ahead"] == 0
    assert first[2]["slots_total"] == 2 and first[2]["slots_free"] == 0
    assert first[2]["eta_s"] > 0
    for c in clients:
        await c.until("done")


async def test_ten_with_two_slots_is_fifo(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=2, HUB_LANE_CHESSCOM=2)
    clients: list[WsClient] = []
    for n in range(10):  # one after another, so request order is well defined
        c = await import_one(hub, "chesscom", f"ten{n}-p4x3")
        await c.until("ticket")
        clients.append(c)
    await asyncio.gather(*(c.until("done", timeout=120) for c in clients))

    # Admission order equals request order.
    started_at = [next(t for t, m in c.messages if m["type"] == "started") for c in clients]
    assert started_at == sorted(started_at)
    # At no moment do more than 2 run: sweep over [started, done] intervals.
    events: list[tuple[float, int]] = []
    for c in clients:
        events.append((next(t for t, m in c.messages if m["type"] == "started"), 1))
        events.append((next(t for t, m in c.messages if m["type"] == "done"), -1))
    running = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    # Seen by the browsers: a `done` and the next `started` travel on two sockets and may
    # cross by a hair; the hub's own count at each admission is exact.
    assert peak <= 3
    admissions = re.findall(r"slot acquired.*?slots_in_use=(\d+)", hub.logs())
    assert len(admissions) == 10 and max(int(n) for n in admissions) <= 2
    # Every queued socket saw its position fall to 1 before `started`, never rising.
    for n, c in enumerate(clients[2:], start=2):
        kinds = [m["type"] for _, m in c.messages]
        positions = [m["position"] for m in c.of("queued")]
        assert positions, f"client {n} was never told its position"
        assert positions[0] <= n - 1
        assert positions == sorted(positions, reverse=True)
        assert positions[-1] == 1
        assert kinds.index("started") > max(i for i, k in enumerate(kinds) if k == "queued")


async def test_ghost_player_fails(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    for source in ("chesscom", "lichess"):
        client = await import_one(hub, source, "ghost_player")
        failed = await client.until("failed", "done")
        assert failed["type"] == "failed" and failed["code"] == "player_not_found"
        assert "ghost_player" in failed["message"]


async def test_malformed_messages_then_import(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    bad: list[tuple[Any, str]] = [
        ("not json", "invalid_json"),
        ("[" * 4000, "invalid_json"),  # deep nesting, within HUB_WS_MAX_BYTES
        ([1, 2], "invalid_message"),
        ({"type": "dance"}, "unknown_type"),
        ({"source": "lichess"}, "invalid_message"),
        ({"type": "import", "source": "lichess"}, "invalid_message"),
        ({"type": "import", "source": "fide", "username": "bob"}, "unknown_source"),
        ({"type": "import", "source": "lichess", "username": "<img src=x>"}, "invalid_username"),
        ({"type": "import", "source": "lichess", "username": "a"}, "invalid_username"),
        ({"type": "import", "source": "lichess", "username": 7}, "invalid_message"),
        ({"type": "resume", "ticket": "no-such-ticket"}, "unknown_ticket"),
        ({"type": "cancel", "ticket": "no-such-ticket"}, "unknown_ticket"),
    ]
    for message, code in bad:
        await client.send(message if isinstance(message, str) else json.dumps(message))
        answer = await client.recv()
        assert answer["type"] == "error" and answer["code"] == code, (message, answer)
        assert answer["message"]
    await client.conn.send(b"\x00binary")
    assert (await client.recv())["code"] == "binary_frame"
    await client.send({"type": "import", "source": "chesscom", "username": "after-p2x5"})
    assert (await client.until("done"))["games_new"] == 10


async def test_reimport_adds_nothing(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    for source in ("chesscom", "lichess"):
        first = await (await import_one(hub, source, "again-p3x30")).until("done")
        second = await (await import_one(hub, source, "again-p3x30")).until("done")
        assert first["games_new"] == 90
        assert second["games_new"] == 0 and second["games_total"] == 90


async def test_reload_mid_queue_keeps_position(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1, HUB_LANE_CHESSCOM=1)
    blockers = [await import_one(hub, "chesscom", f"block{n}-p12x2") for n in range(2)]
    for b in blockers:
        await b.until("ticket")
    mine = await import_one(hub, "chesscom", "reload-p2x2")
    ticket = (await mine.until("ticket"))["ticket"]
    before = await mine.until("queued")
    assert before["position"] == 2  # block0 runs, block1 waits ahead of us
    await mine.close()
    again = await WsClient.open(hub.ws_url)
    await again.recv()
    await again.send({"type": "resume", "ticket": ticket})
    answer = await again.until("ticket")
    assert answer["ticket"] == ticket and answer["import_id"] == before["import_id"]
    after = await again.until("queued", "started")
    if after["type"] == "queued":
        assert after["position"] <= before["position"]
    await again.until("done", timeout=120)


async def test_two_tabs_share_one_import(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim)
    a = await import_one(hub, "lichess", "Shared-p2x50")
    ta = await a.until("ticket")
    b = await import_one(hub, "lichess", "shared-P2X50")
    tb = await b.until("ticket")
    assert tb["joined"] is True and tb["import_id"] == ta["import_id"]
    assert tb["ticket"] != ta["ticket"]
    da, db = await asyncio.gather(a.until("done"), b.until("done"))
    assert da == db


async def test_cancel_running_keeps_stored_pages(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim)
    client = await import_one(hub, "chesscom", "cancel-p40x5")
    ticket = (await client.until("ticket"))["ticket"]
    await client.until("progress")
    await client.send({"type": "cancel", "ticket": ticket})
    failed = await client.until("failed", "done")
    assert failed["type"] == "failed" and failed["code"] == "cancelled"
    seen = len(client.of("progress"))
    # The only follower left: the import stops at its next page boundary.
    path = f"/api/imports/{failed['import_id']}"
    state = await eventually(
        lambda: (s := hub.get_json(path))["state"] == "cancelled" and s,
        "the cancelled import to stop at a page boundary",
    )
    assert 1 <= seen <= state["pages"] < 40 and state["games"] == state["pages"] * 5


async def test_board_masks_players(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    watcher = await WsClient.open(hub.ws_url)
    await watcher.recv()
    await watcher.send({"type": "watch_queue"})
    await watcher.until("queue")
    others = [await import_one(hub, "chesscom", f"board{n}-p5x2") for n in range(2)]
    for o in others:
        await o.until("ticket")
    while True:
        board = await watcher.until("queue")
        if board["running"] and board["waiting"]:
            break
    assert board["running"][0]["player"] == "bo…"
    second = others[1].of("ticket")[0]
    assert board["waiting"][0] == {
        "position": 1,
        "source": "chesscom",
        "player": "bo…",
        "import_id": second["import_id"],
    }
    api = hub.get_json("/api/queue")
    assert api["slots_total"] == 1
    for o in others:
        await o.until("done")


async def test_metrics_and_readiness(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=1)
    clients = [await import_one(hub, "chesscom", f"metric{n}-p3x4") for n in range(3)]
    for c in clients:
        await c.until("done")
    assert hub.get_json("/readyz") == {"status": "ok"}
    content_type, text = hub.get_text("/metrics")
    assert content_type.startswith("text/plain")
    lines = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert float(lines['hub_admitted_total{source="chesscom"}']) == 3
    assert float(lines["hub_slots"]) == 1
    assert float(lines["hub_queue_length"]) == 0
    assert float(lines['hub_import_duration_seconds_count{source="chesscom",state="done"}']) == 3
    # Those that waited long enough to be graded (sized, or 1 s after the ticket) were
    # graded at admission, the same samples the board's accuracy counts.
    graded = float(lines.get('hub_eta_abs_error_seconds_count{source="chesscom"}', "0"))
    assert graded == hub.get_json("/api/queue")["eta_accuracy"]["samples"] <= 2
    assert float(lines['hub_pool_connections_total{event="reused"}']) > 0
    # each import: the archive list, 3 months and the stats
    assert float(lines['hub_upstream_requests_total{status="200",upstream="chesscom"}']) == 15
    assert float(lines["hub_messages_sent_total"]) > 0
    assert float(lines["hub_sockets_open"]) == 3
