"""Receipts against the simulator's truth: every fault prefix, two imports at most, exact ids.

Each test drives a real `hub serve` against a real `hub sim`, then compares the ids the hub
stored with the simulator's `/_sim/truth` and checks that the receipt (and `done`) says
`complete` exactly when they are equal.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.error
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest

from hub import importer
from hub.fetch import ChessCom, Http, Lichess, Source
from hub.importer import Outcome
from hub.settings import Settings
from hub.sim import SimConfig, start_sim
from hub.store import ImportRecord, Store, open_store
from tests.conftest import HubFactory
from tests.procs import Proc, WsClient, start

SOURCES = ("chesscom", "lichess")
SimFactory = Callable[..., Proc]
RECEIPT_KEYS = {
    "source", "username", "complete", "site", "stored", "stored_total", "ongoing", "units",
    "gaps",
}  # fmt: skip
UNIT_KEYS = {
    "unit", "state", "status", "games_seen", "games_new", "games_known", "skipped",
    "fetched_at",
}  # fmt: skip


@pytest.fixture
def sim_with(tmp_path: Path) -> Iterator[SimFactory]:
    started: list[Proc] = []

    def make(*args: str) -> Proc:
        p = start(["sim", *args], {}, tmp_path / f"sim{len(started)}.log", "/_sim/stats")
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


async def run_import(hub: Proc, source: str, username: str) -> dict[str, Any]:
    client = await WsClient.open(hub.ws_url)
    assert (await client.recv())["type"] == "hello"
    await client.send({"type": "import", "source": source, "username": username})
    return await client.until("done", "failed", timeout=60)


async def stored(hub: Proc, source: str, username: str) -> list[str]:
    store = open_store(hub.env["DATABASE_URL"])
    await store.connect()
    try:
        return await store.game_ids(source, username.lower())
    finally:
        await store.close()


def truth(sim: Proc, source: str, username: str) -> list[str]:
    games: list[str] = sim.get_json(f"/_sim/truth/{source}/{username}")["games"]
    return games


def receipt(hub: Proc, source: str, username: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = hub.get_json(f"/api/players/{source}/{username}/receipt")
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response and its socket
        assert exc.code == 404
        return None
    assert set(found) == RECEIPT_KEYS
    assert all(set(u) == UNIT_KEYS for u in found["units"])
    assert all(set(g) == {"unit", "reason"} for g in found["gaps"])
    return found


async def check(
    hub: Proc, sim: Proc, source: str, username: str, final: dict[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    """Whether the store equals the truth, and that the receipt and `done` say so."""
    ids = await stored(hub, source, username)
    assert len(ids) == len(set(ids)), "a game was stored twice"
    expected = truth(sim, source, username)
    equal = set(ids) == set(expected)
    found = receipt(hub, source, username)
    complete = None if found is None else found["complete"]
    print(
        f"\n{source} {username}: {final['type']}, stored {len(ids)}, truth {len(expected)}, "
        f"equal {equal}, complete {complete}",
        end="",
    )
    if found is not None:
        assert found["complete"] == equal, (equal, found)
        assert found["stored_total"] == len(ids)
    if final["type"] == "done":
        assert found is not None
        assert (final["complete"], final["gaps"]) == (found["complete"], len(found["gaps"]))
    return equal, found


async def twice(
    hub: Proc, sim: Proc, source: str, username: str, between: str | None = None
) -> list[tuple[dict[str, Any], bool, dict[str, Any] | None]]:
    """Import, optionally poke the simulator, import again; each result checked."""
    results = []
    for n in range(2):
        if n == 1 and between is not None:
            sim.post(between)
        final = await run_import(hub, source, username)
        equal, found = await check(hub, sim, source, username, final)
        results.append((final, equal, found))
    return results


@pytest.mark.parametrize("prefix", ["flaky", "drop", "dup"])
@pytest.mark.parametrize("source", SOURCES)
async def test_recoverable_faults_are_complete_at_once(
    sim: Proc, hub_factory: HubFactory, source: str, prefix: str
) -> None:
    hub = hub_factory(sim)
    user = f"{prefix}-p3x60"
    (first, equal, found), (second, again, _) = await twice(hub, sim, source, user)
    assert first["type"] == "done" and equal and found is not None and found["complete"]
    assert second["type"] == "done" and again and second["complete"] and second["games_new"] == 0
    # like with like: the site's count is of the same category as the stored one
    assert found["site"]["count"] == found["stored"]["count"] and found["gaps"] == []


@pytest.mark.parametrize("source", SOURCES)
async def test_slow_players_are_slow_not_dead(
    sim_with: SimFactory, hub_factory: HubFactory, source: str
) -> None:
    # The sim's delay is well under the hub's request timeout (30 s): slow, not dead.
    sim = sim_with("--latency-ms", "0", "--lichess-gps", "0", "--slow-s", "0.3")
    hub = hub_factory(sim)
    results = await twice(hub, sim, source, "slow-p2x10")
    assert [(final["type"], equal) for final, equal, _ in results] == [("done", True)] * 2
    assert all(found is not None and found["complete"] for _, _, found in results)


@pytest.mark.parametrize("source", SOURCES)
async def test_gone_player_has_no_receipt(sim: Proc, hub_factory: HubFactory, source: str) -> None:
    hub = hub_factory(sim)
    for final, equal, found in await twice(hub, sim, source, "gone-p2x5"):
        # Nothing to fetch and nothing stored: equal, and no receipt claims anything.
        assert final["type"] == "failed" and final["code"] == "player_not_found"
        assert equal and found is None
    assert truth(sim, source, "gone-p2x5") == []


async def test_chesscom_hole_is_incomplete_until_healed(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_RETRIES=2)
    user = "hole-p4x30"
    results = await twice(hub, sim, "chesscom", user, between=f"/_sim/heal/chesscom/{user}")
    (first, equal, found), (second, healed, after) = results
    # The month that failed did not fail the import: the others were stored.
    assert first["type"] == "done" and first["games_new"] == 90
    assert not equal and found is not None and not first["complete"] and first["gaps"] == 1
    months = sim.get_json(f"/_sim/truth/chesscom/{user}")["months"]
    assert [g["unit"] for g in found["gaps"]] == [months[1]]
    assert "HTTP 500" in found["gaps"][0]["reason"]
    states = {u["unit"]: u["state"] for u in found["units"]}
    assert states[months[1]] == "failed" and states[months[0]] == "stored"
    # The second import reads the failed month first and completes the player.
    assert second["type"] == "done" and second["games_new"] == 30
    assert healed and after is not None and second["complete"] and second["gaps"] == 0
    assert after["site"]["count"] == after["stored"]["count"]


async def test_lichess_hole_keeps_its_cursor_until_healed(
    sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(sim, HUB_RETRIES=2)
    user = "hole-p3x100"
    results = await twice(hub, sim, "lichess", user, between=f"/_sim/heal/lichess/{user}")
    (first, equal, found), (second, healed, after) = results
    # The export breaks at the same game every time: stopped there, as a failed rest.
    assert first["type"] == "failed" and first["code"] == "upstream_unavailable"
    assert not equal and found is not None and not found["complete"]
    [gap] = found["gaps"]
    assert gap["unit"].endswith("..") and "could not be read" in gap["reason"]
    assert 0 < found["stored_total"] < 300
    assert second["type"] == "done" and healed and after is not None and second["complete"]
    assert after["gaps"] == [] and after["stored_total"] == 300


async def test_lichess_correspondence_games_finishing_late_are_fetched_by_id(
    sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(sim)
    user = "corr-p3x40"
    first = await run_import(hub, "lichess", user)
    equal, found = await check(hub, sim, "lichess", user, first)
    # Games in progress are not missing: complete, and counted as ongoing.
    assert first["type"] == "done" and equal and first["complete"]
    assert found is not None and found["ongoing"] >= 3
    ongoing = found["ongoing"]
    finished = sim.post(f"/_sim/finish/lichess/{user}?games=2")["finished"]
    assert len(finished) == 2 and not set(finished) & set(await stored(hub, "lichess", user))
    second = await run_import(hub, "lichess", user)
    equal, after = await check(hub, sim, "lichess", user, second)
    assert second["type"] == "done" and second["games_new"] == 2 and equal and second["complete"]
    assert after is not None and after["ongoing"] == ongoing - 2
    assert set(finished) <= set(await stored(hub, "lichess", user))
    ledger = {u["unit"]: u for u in after["units"]}
    assert ledger["ongoing"]["games_new"] == 2
    assert ledger["ongoing"]["skipped"] == {"ongoing": ongoing - 2}


@pytest.mark.parametrize("source", SOURCES)
async def test_mixed_games_are_all_stored_and_compared_like_with_like(
    sim: Proc, hub_factory: HubFactory, source: str
) -> None:
    hub = hub_factory(sim)
    user = "mixed-p3x20"
    results = await twice(hub, sim, source, user)
    for final, equal, found in results:
        assert final["type"] == "done" and equal and final["complete"]
        assert found is not None and found["stored_total"] == 60
    found = results[0][2]
    assert found is not None
    if source == "chesscom":  # stats count rated standard classes and daily chess960 only
        assert found["stored"]["count"] < found["stored_total"]
    else:  # lichess counts every finished game
        assert found["stored"]["count"] == found["stored_total"]
    everything = hub.get_json(f"/api/players/{source}/{user}/summary?games=all")
    standard = hub.get_json(f"/api/players/{source}/{user}/summary")
    assert everything["games"] == 60 > standard["games"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        hub.get_json(f"/api/players/{source}/{user}/summary?games=some")
    refused.value.close()
    assert refused.value.code == 400


@pytest.mark.parametrize("source", SOURCES)
async def test_unknown_player_has_no_receipt(
    sim: Proc, hub_factory: HubFactory, source: str
) -> None:
    hub = hub_factory(sim)
    assert receipt(hub, source, "never-imported") is None


# -- repair: the importer with the real store and fetch layer, against an in-process sim ----
#
# The `repair` flag reaches the importer from the `import` message through the session;
# here the importer is called directly to count what a repair costs upstream.


@asynccontextmanager
async def upstream(tmp_path: Path) -> AsyncIterator[tuple[str, Http, Store]]:
    runner, port = await start_sim(
        SimConfig(latency_ms=0, lichess_gps=0, lichess_penalty_s=0.5), port=0
    )
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        chesscom_url=base, lichess_url=base, retries=1, retry_base_s=0.01, retry_max_s=0.05
    )
    http = await Http.open(settings)
    store = open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    await store.connect()
    try:
        yield base, http, store
    finally:
        await store.close()
        await http.close()
        await runner.cleanup()


async def import_once(store: Store, source: Source, user: str, repair: bool = False) -> Outcome:
    import_id = secrets.token_hex(8)
    record = ImportRecord(
        id=import_id, source=source.name, username=user, state="queued", created_at=time.time()
    )
    await store.create_import(record)
    return await importer.run_import(
        import_id,
        source,
        user,
        store,
        asyncio.Event(),
        lambda page, pages, games: None,
        lambda reason, seconds: None,
        time.time,
        repair=repair,
    )


async def sim_json(base: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.request(method, base + path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def requests_of(base: str, site: str) -> dict[str, Any]:
    stats: dict[str, Any] = (await sim_json(base, "GET", "/_sim/stats"))[site]
    return stats


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    codes = set(after["status"]) | set(before["status"])
    moved = {c: after["status"].get(c, 0) - before["status"].get(c, 0) for c in codes}
    return {c: n for c, n in moved.items() if n}


async def test_repair_of_one_chesscom_month_costs_that_month_and_the_archive_list(
    tmp_path: Path,
) -> None:
    user = "hole-p12x5"
    async with upstream(tmp_path) as (base, http, store):
        source = ChessCom(http, http.settings)
        first = await import_once(store, source, user)
        assert (first.state, first.complete, first.gaps, first.games_new) == ("done", False, 1, 55)
        await sim_json(base, "POST", f"/_sim/heal/chesscom/{user}")
        before = await requests_of(base, "chesscom")
        repaired = await import_once(store, source, user, repair=True)
        cost = delta(await requests_of(base, "chesscom"), before)
        print(f"\nchess.com repair of one month: {cost}")
        # the archive list and the one failed month; nothing else, not even a 304
        assert cost == {"200": 2}
        assert (repaired.state, repaired.complete, repaired.gaps) == ("done", True, 0)
        assert repaired.games_new == 5 and repaired.pages == 1
        ids = await store.game_ids("chesscom", user)
        truth_ids = (await sim_json(base, "GET", f"/_sim/truth/chesscom/{user}"))["games"]
        assert sorted(ids) == sorted(truth_ids)


async def test_repair_reads_again_a_month_the_store_lost_and_no_other(tmp_path: Path) -> None:
    user = "lost-p6x8"
    async with upstream(tmp_path) as (base, http, store):
        source = ChessCom(http, http.settings)
        assert (await import_once(store, source, user)).complete
        ledger = await store.read_ledger("chesscom", user)
        unit = ledger.units[sorted(ledger.units)[2]]
        assert unit.first_ms is not None and unit.last_ms is not None
        # Games vanish from the store (a restore from an old backup, a bad migration...).
        db = tmp_path / "hub.db"
        lost = await ids_between(db, user, unit.first_ms // 1000, unit.last_ms // 1000)
        await delete_ids(db, "chesscom", user, lost[:3])
        # the month is short, and the receipt says so before any upstream request
        assert await importer.summary(store, source, user) == (False, 1)
        before = await requests_of(base, "chesscom")
        repaired = await import_once(store, source, user, repair=True)
        cost = delta(await requests_of(base, "chesscom"), before)
        assert cost == {"200": 2}  # the archive list and the short month, without the 304
        assert repaired.games_new == 3 and repaired.complete
        assert len(await store.game_ids("chesscom", user)) == 48


async def test_lichess_repair_reads_again_only_the_short_window(tmp_path: Path) -> None:
    user = "lost-p3x100"
    async with upstream(tmp_path) as (base, http, store):
        source = Lichess(http, http.settings)
        assert (await import_once(store, source, user)).complete
        ledger = await store.read_ledger("lichess", user)
        windows = sorted(
            (u for u in ledger.units.values() if u.first_ms is not None),
            key=lambda u: u.first_ms or 0,
        )
        assert len(windows) == 3  # 300 games in pages of 100
        short = windows[1]
        assert short.first_ms is not None
        first = await store.game_ids("lichess", user)
        await delete_ids(tmp_path / "hub.db", "lichess", user, first[100:104])
        before = await requests_of(base, "lichess")
        repaired = await import_once(store, source, user, repair=True)
        cost = delta(await requests_of(base, "lichess"), before)
        assert cost == {"200": 1}  # one export, of that window only
        assert repaired.games_new == 4 and repaired.complete
        assert sorted(await store.game_ids("lichess", user)) == sorted(first)


async def delete_ids(db: Path, source: str, user: str, ids: list[str]) -> None:
    """Remove games of the player behind the store's back."""
    async with aiosqlite.connect(db) as conn:
        await conn.executemany(
            "DELETE FROM player_games WHERE source = ? AND username = ? AND game_id = ?",
            [(source, user, game) for game in ids],
        )
        await conn.commit()


async def ids_between(db: Path, user: str, first: int, last: int) -> list[str]:
    """The player's chess.com games that ended between `first` and `last` (unix s)."""
    async with aiosqlite.connect(db) as conn:
        rows = await conn.execute_fetchall(
            "SELECT game_id FROM player_games WHERE source = 'chesscom' AND username = ? "
            "AND end_time BETWEEN ? AND ? ORDER BY end_time",
            (user, first, last),
        )
    return [row[0] for row in rows]


async def test_lichess_player_from_before_the_ledger_has_games_in_progress_followed(
    tmp_path: Path,
) -> None:
    user = "corr-legacy-p3x30"
    async with upstream(tmp_path) as (base, http, store):
        source = Lichess(http, http.settings)
        assert (await import_once(store, source, user)).complete
        # As a hub upgraded from before the ledger finds it: a cursor, nothing else.
        async with aiosqlite.connect(tmp_path / "hub.db") as conn:
            await conn.execute("DELETE FROM ledger")
            await conn.execute("DELETE FROM ongoing")
            await conn.execute("UPDATE players SET site_count = NULL")
            await conn.commit()
        assert await store.count_ongoing("lichess", user) == 0
        before = await requests_of(base, "lichess")
        again = await import_once(store, source, user)
        # the profile, the games in progress (once), the export from the cursor
        assert delta(await requests_of(base, "lichess"), before) == {"200": 3}
        going = await store.count_ongoing("lichess", user)
        assert again.complete and going >= 3
        ended = await sim_json(base, "POST", f"/_sim/finish/lichess/{user}?games=2")
        finished = ended["finished"]
        last = await import_once(store, source, user)
        assert last.games_new == 2 and last.complete
        assert set(finished) <= set(await store.game_ids("lichess", user))
        assert await store.count_ongoing("lichess", user) == going - 2
        truth_ids = (await sim_json(base, "GET", f"/_sim/truth/lichess/{user}"))["games"]
        assert sorted(await store.game_ids("lichess", user)) == sorted(truth_ids)
