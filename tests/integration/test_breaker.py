"""An upstream outage: the breaker pauses its imports, probes, and lets them go on after."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.errors import UpstreamPaused
from hub.fetch.breaker import Closed, Opened
from hub.fetch.http import Http
from hub.settings import load_settings
from tests.admin import TOKEN, state
from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import USER_AGENT, Proc, WsClient, start

REASON = "chess.com is not answering"


@pytest.fixture
def paced_sim(tmp_path: Path) -> Iterator[Proc]:
    """60 ms a response: a 40-month chess.com player takes a few seconds to import."""
    args = ["sim", "--latency-ms", "60", "--lichess-gps", "0", "--lichess-penalty-s", "1"]
    p = start(args, {}, tmp_path / "paced-sim.log", "/_sim/stats")
    yield p
    p.stop()


def outage(sim: Proc, source: str, seconds: float) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{sim.url}/_sim/outage/{source}?s={seconds}",
        method="POST",
        data=b"",
        headers={"User-Agent": USER_AGENT},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


async def test_the_simulator_answers_503_during_an_outage(sim: Proc) -> None:
    settings = load_settings(
        {"HUB_CHESSCOM_URL": sim.url, "HUB_LICHESS_URL": sim.url, "HUB_RETRIES": "0"}
    )
    http = await Http.open(settings)
    try:
        archives = f"{sim.url}/pub/player/out-p2x2/games/archives"
        assert (await http.get("chesscom", archives)).status == 200
        assert outage(sim, "chesscom", 600)["left_s"] > 500
        with pytest.raises(Exception, match="HTTP 503"):
            await http.get("chesscom", archives)
        lichess = await http.get("lichess", f"{sim.url}/api/user/out-p2x2", limited=False)
        assert lichess.status == 200  # the other site is up
        assert sim.get_json("/_sim/outage/chesscom")["refused"] == 1
        assert outage(sim, "chesscom", 0)["left_s"] == 0
        assert (await http.get("chesscom", archives)).status == 200
    finally:
        await http.close()


async def probe_due(http: Http, upstream: str) -> None:
    """Until the open breaker's next probe may go, by the breaker's own clock."""
    breakers = http.breakers
    await eventually(
        lambda: breakers.clock() >= (breakers.breaker.next_probe(upstream) or float("inf")),
        f"the {upstream} probe turn",
        every=0.01,
    )


async def test_the_breaker_opens_refuses_probes_and_closes(sim: Proc) -> None:
    settings = load_settings(
        {
            "HUB_CHESSCOM_URL": sim.url,
            "HUB_LICHESS_URL": sim.url,
            "HUB_RETRY_BASE_S": "0.01",
            "HUB_BREAKER_FAILURES": "3",
            "HUB_BREAKER_PROBE_S": "0.3",
        }
    )
    http = await Http.open(settings)
    archives = f"{sim.url}/pub/player/brk-p2x2/games/archives"
    try:
        outage(sim, "chesscom", 600)
        # One request retries until the breaker opens after 3 failures, then stops.
        with pytest.raises(UpstreamPaused):
            await http.get("chesscom", archives)
        assert await http.breakers.changes() == [Opened("chesscom")]
        assert sim.get_json("/_sim/outage/chesscom")["refused"] == 3
        with pytest.raises(UpstreamPaused):  # refused without a request
            await http.get("chesscom", archives)
        assert sim.get_json("/_sim/outage/chesscom")["refused"] == 3
        assert http.stats.breaker_open == {"chesscom": 1, "lichess": 0}
        # The probe turn: one request, which fails, and the breaker stays open.
        await probe_due(http, "chesscom")
        with pytest.raises(UpstreamPaused):
            await http.get("chesscom", archives)
        assert await http.breakers.changes() == [Opened("chesscom", again=True)]
        assert sim.get_json("/_sim/outage/chesscom")["refused"] == 4
        outage(sim, "chesscom", 0)
        await eventually(
            lambda: http.breakers.breaker.next_probe("chesscom") is not None, "still open"
        )
        await probe_due(http, "chesscom")
        assert (await http.get("chesscom", archives)).status == 200  # the probe closes it
        assert await http.breakers.changes() == [Closed("chesscom")]
        assert http.stats.breaker_openings == {"chesscom": 1, "lichess": 0}
        assert http.stats.breaker_open == {"chesscom": 0, "lichess": 0}
    finally:
        await http.close()


def stored_ids(db: Path, source: str, username: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT game_id FROM player_games WHERE source = ? AND username = ?",
            (source, username),
        ).fetchall()
    return {row[0] for row in rows}


async def ask(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.send({"type": "import", "source": source, "username": username})
    await client.until("ticket")
    return client


def kinds(client: WsClient) -> list[str]:
    return [m["type"] for _, m in client.messages]


async def test_an_outage_fails_no_import(
    paced_sim: Proc, hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = hub_factory(
        paced_sim,
        HUB_ADMIN_TOKEN=TOKEN,
        MAX_CONCURRENT_IMPORTS=2,
        HUB_LANE_CHESSCOM=1,
        HUB_BREAKER_FAILURES=3,
        HUB_BREAKER_PROBE_S=1,
    )
    running = await ask(hub, "chesscom", "outrun-p40x3")
    while (await running.until("progress"))["page"] < 5:
        pass
    waiters = [await ask(hub, "chesscom", f"outwait{n}-p3x4") for n in range(2)]
    assert [(await w.until("queued"))["position"] for w in waiters] == [1, 2]

    outage(paced_sim, "chesscom", 600)  # ended by the test, once lichess has shown it moves
    # The running import stops at its checkpoint and waits at the head of the line.
    sent_back = await running.until("queued")
    assert sent_back["paused"]["reason"] == REASON and sent_back["position"] == 1
    assert kinds(running)[-1] == "queued" and "failed" not in kinds(running)
    for place, w in enumerate(waiters, start=2):  # each moved back one place, told why
        told = await w.until("queued")
        while "paused" not in told or told["position"] != place:
            told = await w.until("queued")
        assert told["paused"]["reason"] == REASON
    board = hub.get_json("/api/queue")
    assert [(p["source"], p["reason"]) for p in board["paused"]] == [("chesscom", REASON)]

    # lichess keeps moving meanwhile, through the slot the chess.com import left.
    others = [await ask(hub, "lichess", f"outlichess{n}-p2x30") for n in range(3)]
    for other in others:
        assert (await other.until("done", "failed", timeout=60))["type"] == "done"
    now = state(hub)
    assert [(p["source"], p["by"]) for p in now["paused"]] == [("chesscom", "breaker")]
    assert now["waiting_by_source"]["chesscom"] == 3 and not now["running"]
    assert [b["open"] for b in now["breakers"]] == [True, False]
    record = hub.get_json(f"/api/imports/{sent_back['import_id']}")
    assert record["state"] == "queued" and record["error"] is None  # waiting, not failed

    outage(paced_sim, "chesscom", 0)
    ends = [await c.until("done", "failed", timeout=120) for c in (running, *waiters)]
    assert [m["type"] for m in ends] == ["done"] * 3
    # Its browser saw it start, wait (told why) and start again.
    seen = kinds(running)
    first, again = seen.index("started"), len(seen) - 1 - seen[::-1].index("started")
    assert first < seen.index("queued") < again < seen.index("done")
    # It went on from its checkpoint (the pages stored before the outage) onwards.
    messages = [m for _, m in running.messages]
    first_run = messages[: messages.index(sent_back)]
    pages, games = max((m["page"], m["games"]) for m in first_run if m["type"] == "progress")
    assert pages >= 5
    assert ends[0]["pages"] == 40 - pages + 1  # the checkpoint month is read again
    assert ends[0]["games_new"] == 120 - games and ends[0]["games_total"] == 120
    # It was admitted first once the site answered: its lane holds one import at a time.
    records = [hub.get_json(f"/api/imports/{m['import_id']}") for m in ends]
    assert records[0]["finished_at"] <= records[1]["started_at"] <= records[2]["started_at"]
    assert all(r["state"] == "done" for r in records)
    for username in ("outrun-p40x3", "outwait0-p3x4", "outwait1-p3x4"):
        truth = paced_sim.get_json(f"/_sim/truth/chesscom/{username}")["games"]
        assert stored_ids(tmp_path / "hub.db", "chesscom", username) == set(truth)
    metrics = hub.get_text("/metrics")[1]
    assert 'hub_breaker_openings_total{upstream="chesscom"} 1.0' in metrics
    assert 'hub_breaker_open{upstream="chesscom"} 0.0' in metrics
    assert hub.get_json("/api/queue")["paused"] == []


@pytest.mark.postgres
async def test_an_outage_in_a_fleet(
    scratch_pg: str, paced_sim: Proc, hub_factory: HubFactory
) -> None:
    settings: dict[str, Any] = {
        "DATABASE_URL": scratch_pg,
        "HUB_POLL_S": "0.3",
        "MAX_CONCURRENT_IMPORTS": 1,
        "HUB_BREAKER_FAILURES": 3,
        "HUB_BREAKER_PROBE_S": 1,
    }
    a, b = (hub_factory(paced_sim, **settings) for _ in range(2))
    running = await ask(a, "chesscom", "fleetout-p30x2")
    while (await running.until("progress"))["page"] < 3:
        pass
    waiter = await ask(b, "chesscom", "fleetoutwait-p2x2")
    await waiter.until("queued")

    outage(paced_sim, "chesscom", 600)
    sent_back = await running.until("queued")
    assert sent_back["paused"]["reason"] == REASON and sent_back["position"] == 1
    told = await waiter.until("queued")
    while "paused" not in told or told["position"] != 2:  # on the other replica, too
        told = await waiter.until("queued")
    outage(paced_sim, "chesscom", 0)
    ends = [await c.until("done", "failed", timeout=120) for c in (running, waiter)]
    assert [m["type"] for m in ends] == ["done", "done"]
    assert kinds(running).count("started") == 2
    conn = await asyncpg.connect(scratch_pg)
    try:
        for username in ("fleetout-p30x2", "fleetoutwait-p2x2"):
            rows = await conn.fetch(
                "SELECT game_id FROM player_games WHERE source = 'chesscom' AND username = $1",
                username,
            )
            truth = paced_sim.get_json(f"/_sim/truth/chesscom/{username}")["games"]
            assert {r["game_id"] for r in rows} == set(truth)
        assert await conn.fetchval("SELECT count(*) FROM queue_entries") == 0
    finally:
        await conn.close()
