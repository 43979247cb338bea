"""Upstream realism through the real hub: faults, limits, incremental and resumed imports.

Every test drives a real `hub serve` against a real `hub sim` over WebSockets, then reads the
hub's own database and compares it with the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.store import open_store
from tests.conftest import HubFactory
from tests.procs import USER_AGENT, Proc, WsClient, start

CAPS = {"chesscom": 2, "lichess": 1}  # the upstreams' parallel limits, the hub's defaults
SimFactory = Callable[..., Proc]


@pytest.fixture
def sim_with(tmp_path: Path) -> Iterator[SimFactory]:
    """Start simulators with their own flags; each is stopped at teardown."""
    started: list[Proc] = []

    def make(*args: str) -> Proc:
        log = tmp_path / f"sim-extra{len(started)}.log"
        p = start(["sim", *args], {}, log, "/_sim/stats")
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


async def begin(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    assert (await client.recv())["type"] == "hello"
    await client.send({"type": "import", "source": source, "username": username})
    await client.until("ticket")
    return client


async def finish(hub: Proc, source: str, username: str, timeout: float = 60) -> dict[str, Any]:
    """Import a player and return the final `done` or `failed`."""
    client = await begin(hub, source, username)
    return await client.until("done", "failed", timeout=timeout)


async def stored(hub: Proc, source: str, username: str) -> list[str]:
    """Game ids the hub stored for a player, read from its own database."""
    store = open_store(hub.env["DATABASE_URL"])
    await store.connect()
    try:
        return await store.game_ids(source, username.lower())
    finally:
        await store.close()


async def assert_exact(hub: Proc, sim: Proc, source: str, username: str) -> list[str]:
    """The stored games are exactly the upstream's, each once."""
    ids = await stored(hub, source, username)
    truth = sim.get_json(f"/_sim/truth/{source}/{username}")["games"]
    assert len(ids) == len(set(ids)), "a game was stored twice"
    assert set(ids) == set(truth), (len(ids), len(truth))
    return ids


def sim_stats(sim: Proc) -> dict[str, Any]:
    stats: dict[str, Any] = sim.get_json("/_sim/stats")
    return stats


async def settled(sim: Proc) -> None:
    """Wait until the simulator has answered every request it received."""
    for _ in range(100):
        stats = sim_stats(sim)
        if all(stats[site]["in_flight"] == 0 for site in CAPS):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"requests still in flight: {stats}")


def assert_caps(sim: Proc) -> dict[str, Any]:
    """The simulator never saw more requests at once than the upstream allows."""
    stats = sim_stats(sim)
    for site, cap in CAPS.items():
        assert stats[site]["peak_in_flight"] <= cap, (site, stats[site])
    return stats


def status(stats: dict[str, Any], site: str, code: int) -> int:
    count: int = stats[site]["status"].get(str(code), 0)
    return count


# -- faults -------------------------------------------------------------------


async def test_flaky_both_sources_retry_to_exact(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    cc, li = await asyncio.gather(
        finish(hub, "chesscom", "flaky-p3x10"), finish(hub, "lichess", "flaky-p2x150")
    )
    assert cc["type"] == "done" and cc["games_new"] == 30, cc
    assert li["type"] == "done" and li["games_new"] == 300, li
    await assert_exact(hub, sim, "chesscom", "flaky-p3x10")
    await assert_exact(hub, sim, "lichess", "flaky-p2x150")
    stats = assert_caps(sim)
    # The simulator fails the first try of every distinct URL with a 503: on chess.com the
    # archive list, the 3 months and the stats; on lichess the profile and the one export.
    assert status(stats, "chesscom", 503) == 5
    assert status(stats, "lichess", 503) == 2


@pytest.mark.parametrize("username", ["drop-p3x150", "dup-p3x150"])
async def test_lichess_cut_or_repeated_stream_is_exact(
    sim: Proc, hub_factory: HubFactory, username: str
) -> None:
    hub = hub_factory(sim)
    final = await finish(hub, "lichess", username)
    assert final["type"] == "done" and final["games_new"] == 450, final
    ids = await assert_exact(hub, sim, "lichess", username)
    assert final["games_total"] == len(ids) == 450
    stats = assert_caps(sim)
    exports = stats["lichess"]["requests"] - 1  # the profile, then the export(s)
    if username.startswith("drop"):
        # The sim cuts the first try of every distinct export half way; the hub resumes from
        # its cursor, which is a new request that may be cut again.
        assert exports >= 2
    else:
        assert exports == 1  # every 7th line sent twice, dropped by the hub


async def test_gone_player_fails_and_stores_nothing(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    for source in ("chesscom", "lichess"):
        # chess.com answers 410 for the archive list, lichess 404: both are player_not_found.
        final = await finish(hub, source, "gone-p2x5")
        assert final["type"] == "failed" and final["code"] == "player_not_found", final
        assert await stored(hub, source, "gone-p2x5") == []
        assert sim.get_json(f"/_sim/truth/{source}/gone-p2x5")["games"] == []
    assert_caps(sim)


async def test_slow_upstream_times_out_and_frees_the_slot(
    sim_with: SimFactory, hub_factory: HubFactory
) -> None:
    sim = sim_with("--latency-ms", "0", "--lichess-gps", "0", "--slow-s", "1.5")
    # The sim holds `slow` players for 1.5 s; the hub stops reading after 0.3 s and, after one
    # retry (HUB_RETRIES=1), reports upstream_unavailable. With more retries a chess.com retry
    # would meet the sim still serving the two abandoned requests and draw a 429 (see the
    # report on abandoned requests); one retry keeps the upstream at its cap of 2.
    # One slot: each import behind starts only once the one before let go of it.
    # HUB_ETA_HOLD_S=0: the first `queued` goes out at once, without waiting for size probes.
    hub = hub_factory(
        sim, MAX_CONCURRENT_IMPORTS=1, HUB_REQUEST_TIMEOUT_S=0.3, HUB_RETRIES=1, HUB_ETA_HOLD_S=0
    )
    slow_cc = await begin(hub, "chesscom", "slow-p2x5")
    slow_li = await begin(hub, "lichess", "slow-p2x5")
    after = await begin(hub, "lichess", "after-p1x40")
    for client in (slow_li, after):
        assert (await client.until("queued", "started"))["type"] == "queued"
    for client in (slow_cc, slow_li):
        failed = await client.until("done", "failed", timeout=10)
        assert failed["type"] == "failed" and failed["code"] == "upstream_unavailable", failed
        assert "timeout" in failed["message"].lower()
        waits = [m["waiting"]["reason"] for m in client.of("progress") if m.get("waiting")]
        assert waits == ["retrying"]  # the one retry the budget allows
    # chess.com: the archive list, tried 1 + HUB_RETRIES times (no probe: it never waited)
    assert sim_stats(sim)["chesscom"]["requests"] == 2
    for source in ("chesscom", "lichess"):
        assert await stored(hub, source, "slow-p2x5") == []
    done = await after.until("done", "failed", timeout=10)
    assert done["type"] == "done" and done["games_new"] == 40, done
    await assert_exact(hub, sim, "lichess", "after-p1x40")
    # Both abandoned chess.com requests were still being served when the sim counted them.
    assert_caps(sim)


async def test_lichess_429_makes_the_import_wait_then_finish(
    sim_with: SimFactory, hub_factory: HubFactory
) -> None:
    # A throttled sim (100 games/s) so an outside export of 500 games holds the one lichess
    # stream slot for seconds; a 429 answer also refuses the address for 1 s.
    sim = sim_with("--latency-ms", "0", "--lichess-gps", "100", "--lichess-penalty-s", "1")
    hub = hub_factory(sim)  # HUB_PAUSE_LICHESS_S=1 from the factory
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        outside = await session.get(f"{sim.url}/api/games/user/p1x500")
        assert outside.status == 200
        await outside.content.readline()  # the stream is running and holds the slot
        client = await begin(hub, "lichess", "limited-p1x30")
        while True:
            message = await client.until("progress", "done", "failed", timeout=10)
            assert message["type"] == "progress", message
            if message.get("waiting"):
                break
        assert message["waiting"]["reason"] == "rate_limited"
        assert message["waiting"]["retry_in_s"] == 1.0
        outside.close()  # a later try of the hub, once the 1 s penalty is over, gets the stream
    final = await client.until("done", "failed", timeout=20)
    assert final["type"] == "done" and final["games_new"] == 30, final
    await assert_exact(hub, sim, "lichess", "limited-p1x30")
    stats = sim_stats(sim)
    assert status(stats, "lichess", 429) >= 1
    # The outside stream is the test's own: with the hub's refused request that made 2.
    assert stats["lichess"]["peak_in_flight"] <= CAPS["lichess"] + 1


async def test_six_at_once_keep_the_upstream_caps(slow_sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(slow_sim, MAX_CONCURRENT_IMPORTS=6, HUB_LANE_CHESSCOM=3, HUB_LANE_LICHESS=3)
    jobs = [(source, f"six{n}-p6x20") for n in range(3) for source in ("chesscom", "lichess")]
    clients = [await begin(hub, source, user) for source, user in jobs]
    firsts = [await c.until("started", "queued") for c in clients]
    assert [m["type"] for m in firsts] == ["started"] * 6  # all six hold a slot at once
    finals = await asyncio.gather(*(c.until("done", "failed", timeout=60) for c in clients))
    for (source, user), final in zip(jobs, finals, strict=True):
        assert final["type"] == "done" and final["games_new"] == 120, (user, final)
        await assert_exact(hub, slow_sim, source, user)
    stats = assert_caps(slow_sim)
    # The caps were reached, not merely respected by running one at a time.
    assert stats["chesscom"]["peak_in_flight"] == CAPS["chesscom"]
    assert stats["lichess"]["peak_in_flight"] == CAPS["lichess"]
    assert "429" not in stats["chesscom"]["status"] and "429" not in stats["lichess"]["status"]


# -- incremental and resumed imports ----------------------------------------------


async def test_chesscom_incremental(sim: Proc, hub_factory: HubFactory) -> None:
    hub, user = hub_factory(sim), "incr-p24x10"
    first = await finish(hub, "chesscom", user)
    assert first["type"] == "done" and first["games_new"] == 240, first
    sim.post("/_sim/reset")  # forgets the counters (and growth, of which there is none yet)
    second = await finish(hub, "chesscom", user)
    assert second["games_new"] == 0 and second["games_total"] == 240, second
    again = sim_stats(sim)["chesscom"]
    # The sim counts answers by status. The re-import asks for the archive list, always a
    # full 200 (the hub sends no validator for it), for every month from the cursor month
    # on: only the cursor month here, sent with If-None-Match, so a 304; and for the stats,
    # chess.com's own count for the receipt, a 200.
    not_304 = again["requests"] - again["status"].get("304", 0)
    print(f"\nchess.com re-import: {again['requests']} requests {again['status']}")
    assert again["requests"] == 3 and again["status"] == {"200": 2, "304": 1}
    assert not_304 <= 2  # the requirement: the archive list and the stats
    await assert_exact(hub, sim, "chesscom", user)

    sim.post(f"/_sim/grow/chesscom/{user}?games=5")  # into the current (cursor) month
    third = await finish(hub, "chesscom", user)
    assert third["games_new"] == 5 and third["games_total"] == 245, third
    grown = sim_stats(sim)["chesscom"]
    # The archive list again, the grown month, whose ETag changed, and the stats.
    print(f"chess.com after growth: +{grown['requests'] - again['requests']} requests")
    assert grown["requests"] - again["requests"] == 3
    assert grown["status"] == {"200": 5, "304": 1}
    await assert_exact(hub, sim, "chesscom", user)
    assert_caps(sim)


async def test_lichess_incremental(sim: Proc, hub_factory: HubFactory) -> None:
    hub, user = hub_factory(sim), "incr-p24x10"
    first = await finish(hub, "lichess", user)
    assert first["type"] == "done" and first["games_new"] == 240, first
    sim.post("/_sim/reset")
    second = await finish(hub, "lichess", user)
    assert second["games_new"] == 0 and second["games_total"] == 240, second
    again = sim_stats(sim)["lichess"]
    # The profile (for the page estimate, and lichess's own count) and one export from the
    # cursor minus a 10-minute margin; games re-read in the margin are stored already.
    print(f"\nlichess re-import: {again['requests']} requests {again['status']}")
    assert again["requests"] == 2 and again["status"] == {"200": 2}
    sim.post(f"/_sim/grow/lichess/{user}?games=5")
    third = await finish(hub, "lichess", user)
    assert third["games_new"] == 5 and third["games_total"] == 245, third
    assert sim_stats(sim)["lichess"]["requests"] - again["requests"] == 2  # the same two
    await assert_exact(hub, sim, "lichess", user)
    assert_caps(sim)


async def test_killed_hub_resumes_from_the_checkpoint(
    slow_sim: Proc, hub_factory: HubFactory
) -> None:
    # 60 ms per response: 40 months take over 2 s, time enough to kill the hub mid-way.
    sim = slow_sim
    user = "resume-p40x20"
    first = hub_factory(sim)
    client = await begin(first, "chesscom", user)
    killed_id = (await client.until("progress", timeout=10))["import_id"]
    for _ in range(3):
        await client.until("progress", timeout=10)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    months_done = len(await stored(first, "chesscom", user)) // 20
    assert 4 <= months_done < 40

    # A request in flight at the kill is counted when the sim has answered it: let it end.
    await settled(sim)
    sim.post("/_sim/reset")
    second = hub_factory(sim)  # the same DATABASE_URL
    # The new hub does not leave the killed import looking alive forever.
    killed = second.get_json(f"/api/imports/{killed_id}")
    assert (killed["state"], killed["error"]) == ("failed", "interrupted")
    again = await begin(second, "chesscom", user)
    final = await again.until("done", "failed", timeout=30)
    assert final["type"] == "done", final
    progress = again.of("progress")
    # Only the months from the checkpoint on: the checkpoint month again (304), then the rest.
    assert progress[0]["pages"] == 40 - months_done + 1 < 40
    assert final["pages"] == 40 - months_done + 1
    assert final["games_new"] == (40 - months_done) * 20 and final["games_total"] == 800
    ids = await assert_exact(second, sim, "chesscom", user)
    assert len(ids) == 800
    stats = assert_caps(sim)
    # ...and the stats, chess.com's own count.
    assert stats["chesscom"]["status"] == {"200": 40 - months_done + 2, "304": 1}
