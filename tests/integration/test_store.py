"""One behavioural suite for every store backend: SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import aiosqlite
import asyncpg
import msgspec
import pytest

from hub.janitor import Janitor
from hub.store import (
    DEFAULT_URL,
    GameRow,
    ImportRecord,
    PlayerSummary,
    SQLiteStore,
    Store,
    open_store,
)
from hub.store.base import Comparable, Games, LedgerWrite, MonthCount, RatingPoint, Record, Unit
from hub.store.schema import LATEST_VERSION, VERSION_TABLE, Dialect, SchemaError, pending
from hub.store.sql import MAX_RATING_POINTS
from hub.store.sqlite_pool import SQLitePool, immediate
from hub.summary import Summaries
from tests.conftest import scratch_database
from tests.poll import eventually

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DB_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
T = TypeVar("T")


def _run(coro_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine from sync code without touching the test's event loop."""

    async def main() -> T:
        return await coro_fn(*args)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _dsn(url: str, database: str | None = None) -> str:
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    return parts._replace(path=f"/{database}").geturl() if database else parts.geturl()


async def _pg_execute(url: str, *statements: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        rows: list[Any] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


@dataclass
class Backend:
    kind: Dialect
    url: str

    async def sql(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements on a side connection; the rows of the last one."""
        if self.kind == "postgres":
            return await _pg_execute(self.url, *statements)
        async with aiosqlite.connect(self.url.removeprefix("sqlite:///")) as conn:
            await conn.execute("BEGIN")
            rows: list[Any] = []
            for statement in statements:
                rows = list(await conn.execute_fetchall(statement))
            await conn.commit()
            return [tuple(r) for r in rows]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    with scratch_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'hub.db'}")
    url: str = request.getfixturevalue("pg_url")
    _run(_pg_execute, url, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return Backend("postgres", url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = open_store(backend.url)
    await s.connect()
    try:
        yield s
    finally:
        await s.close()


def game(
    game_id: str,
    username: str = "alice",
    *,
    source: str = "lichess",
    opponent: str = "bob",
    color: str = "white",
    outcome: str = "win",
    end_time: int = 1_600_000_000,
    time_class: str = "blitz",
    rating: int | None = 1500,
    opponent_rating: int | None = 1400,
) -> GameRow:
    """A game as seen by `username`."""
    result = {"win": "win", "draw": "agreed", "loss": "resigned"}[outcome]
    other = {"win": "resigned", "draw": "agreed", "loss": "win"}[outcome]
    white, black = (username, opponent) if color == "white" else (opponent, username)
    ratings = (rating, opponent_rating) if color == "white" else (opponent_rating, rating)
    results = (result, other) if color == "white" else (other, result)
    return GameRow(
        source=source, game_id=game_id, username=username, end_time=end_time,
        time_class=time_class, rated=True, white=white, black=black,
        white_rating=ratings[0], black_rating=ratings[1], white_result=results[0],
        black_result=results[1], color=color, outcome=outcome, pgn=f"[Event \"{game_id}\"]",
    )  # fmt: skip


def opposite(row: GameRow, username: str) -> GameRow:
    """The same game seen by the opponent."""
    flip = {"win": "loss", "loss": "win", "draw": "draw"}
    color = "black" if row.color == "white" else "white"
    return msgspec.structs.replace(row, username=username, color=color, outcome=flip[row.outcome])


def new_import(import_id: str, username: str = "alice", source: str = "lichess") -> ImportRecord:
    return ImportRecord(
        id=import_id, source=source, username=username, state="queued", created_at=1000.5
    )


async def stored_games(backend: Backend) -> int:
    [(count,)] = await backend.sql("SELECT count(*) FROM games")
    return int(count)


# --- schema -------------------------------------------------------------------------------


async def test_connect_is_idempotent_and_keeps_data(backend: Backend) -> None:
    for attempt in range(3):
        s = open_store(backend.url)
        await s.connect()
        await s.ping()
        if attempt == 0:
            await s.create_import(new_import("i1"))
            assert await s.store_page("i1", "lichess", "alice", [game("g1")], 1, None) == 1
        assert await s.count_games("lichess", "alice") == 1
        await s.close()
    assert await backend.sql("SELECT version FROM schema_version") == [(LATEST_VERSION,)]


async def test_concurrent_connect_on_a_fresh_database(backend: Backend) -> None:
    stores = [open_store(backend.url) for _ in range(8)]
    await asyncio.gather(*(s.connect() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    assert await backend.sql("SELECT version FROM schema_version") == [(LATEST_VERSION,)]


async def test_newer_schema_is_refused(backend: Backend) -> None:
    s = open_store(backend.url)
    await s.connect()
    await s.close()
    newer = LATEST_VERSION + 2
    await backend.sql(f"UPDATE schema_version SET version = {newer}")
    s = open_store(backend.url)
    message = f"database schema version {newer} is newer than this hub \\({LATEST_VERSION}\\)"
    with pytest.raises(SchemaError, match=message + "; upgrade the hub"):
        await s.connect()
    await s.close()
    assert await backend.sql("SELECT version FROM schema_version") == [(newer,)]


@pytest.mark.parametrize("version", range(LATEST_VERSION))
async def test_older_schema_is_upgraded(backend: Backend, version: int) -> None:
    steps = [st for _, step in pending(backend.kind, 0, target=version) for st in step]
    await backend.sql(
        VERSION_TABLE, f"INSERT INTO schema_version (version) VALUES ({version})", *steps
    )
    s = open_store(backend.url)
    await s.connect()
    try:
        await s.create_import(new_import("i1"))
        assert await s.store_page("i1", "lichess", "alice", [game("g1")], None, "c") == 1
    finally:
        await s.close()
    assert await backend.sql("SELECT version FROM schema_version") == [(LATEST_VERSION,)]


async def test_unversioned_foreign_tables_are_not_touched(backend: Backend) -> None:
    await backend.sql("CREATE TABLE games (x INTEGER)")
    s = open_store(backend.url)
    with pytest.raises((sqlite3.OperationalError, asyncpg.DuplicateTableError)):
        await s.connect()
    await s.close()
    assert await backend.sql("SELECT count(*) FROM games") == [(0,)]
    with pytest.raises((sqlite3.OperationalError, asyncpg.UndefinedTableError)):
        await backend.sql("SELECT * FROM schema_version")


async def test_sqlite_needs_no_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, path in [
        (DEFAULT_URL, "hub.db"),
        ("sqlite:///nested/dir/hub.db", "nested/dir/hub.db"),
    ]:
        s = open_store(url)
        await s.connect()
        await s.ping()
        await s.close()
        assert (tmp_path / path).is_file()


# --- pages --------------------------------------------------------------------------------


async def test_store_page_counts_new_games_and_ignores_repeats(
    store: Store, backend: Backend
) -> None:
    await store.create_import(new_import("i1"))
    page = [game(f"g{i}", end_time=1_600_000_000 + i) for i in range(10)]
    assert await store.store_page("i1", "lichess", "alice", page, 2, None) == 10
    assert await store.store_page("i1", "lichess", "alice", page, 2, None) == 0
    overlap = [*page[5:], game("g10"), game("g10")]
    assert await store.store_page("i1", "lichess", "alice", overlap, 2, None) == 1
    assert await store.count_games("lichess", "alice") == 11
    assert await stored_games(backend) == 11
    record = await store.get_import("i1")
    assert record is not None
    assert (record.pages, record.pages_total, record.games) == (3, 2, 11)


async def test_shared_game_is_stored_once_and_counted_for_both(
    store: Store, backend: Backend
) -> None:
    await store.create_import(new_import("a", "alice"))
    await store.create_import(new_import("b", "bob"))
    shared = game("shared", "alice", opponent="bob")
    assert await store.store_page("a", "lichess", "alice", [shared, game("a-only")], 1, None) == 2
    bob_page = [opposite(shared, "bob"), game("b-only", "bob")]
    assert await store.store_page("b", "lichess", "bob", bob_page, 1, None) == 2
    assert await stored_games(backend) == 3
    assert await store.count_games("lichess", "alice") == 2
    assert await store.count_games("lichess", "bob") == 2
    bob = await store.player_summary("lichess", "bob")
    assert bob.by_color["black"] == Record(loss=1)


@pytest.mark.parametrize(
    "bad",
    [{"color": None}, {"outcome": "resigned"}, {"time_class": None}, {"white": None}],
    ids=["null-color", "bad-outcome", "null-time-class", "null-white"],
)
async def test_failed_page_leaves_no_trace(
    store: Store, backend: Backend, bad: dict[str, Any]
) -> None:
    await store.create_import(new_import("i1"))
    assert await store.store_page("i1", "lichess", "alice", [game("g1")], 5, "c1") == 1
    # The bad row comes last, so the earlier rows of the page were already written.
    page = [game("g2"), game("g3"), msgspec.structs.replace(game("g4"), **bad)]
    with pytest.raises(DB_ERRORS):
        await store.store_page("i1", "lichess", "alice", page, 9, "c2")
    assert await stored_games(backend) == 1
    assert await store.game_ids("lichess", "alice") == ["g1"]
    assert await store.get_cursor("lichess", "alice") == "c1"
    record = await store.get_import("i1")
    assert record is not None
    assert (record.pages, record.pages_total, record.games) == (1, 5, 1)
    # The store is still usable afterwards.
    assert await store.store_page("i1", "lichess", "alice", page[:2], 9, "c2") == 2


async def test_page_for_unknown_import_is_rolled_back(store: Store, backend: Backend) -> None:
    with pytest.raises(LookupError, match="unknown import"):
        await store.store_page("nope", "lichess", "alice", [game("g1")], 1, "c1")
    assert await stored_games(backend) == 0
    assert await store.get_cursor("lichess", "alice") is None


async def test_rows_for_another_player_are_refused(store: Store) -> None:
    await store.create_import(new_import("i1"))
    with pytest.raises(ValueError, match="not lichess/alice"):
        await store.store_page("i1", "lichess", "alice", [game("g1", "bob")], 1, None)


async def test_cursor_advances_only_with_stored_pages(store: Store) -> None:
    await store.create_import(new_import("i1"))
    assert await store.get_cursor("lichess", "alice") is None
    await store.store_page("i1", "lichess", "alice", [game("g1")], None, "c1")
    assert await store.get_cursor("lichess", "alice") == "c1"
    with pytest.raises(DB_ERRORS):
        await store.store_page("i1", "lichess", "alice", [game("g2", color="x")], None, "c2")
    assert await store.get_cursor("lichess", "alice") == "c1"
    await store.store_page("i1", "lichess", "alice", [game("g3")], None, None)
    assert await store.get_cursor("lichess", "alice") == "c1"
    await store.store_page("i1", "lichess", "alice", [], None, "c4")
    assert await store.get_cursor("lichess", "alice") == "c4"
    assert await store.get_cursor("chesscom", "alice") is None


async def test_concurrent_pages_from_20_tasks_all_land(store: Store) -> None:
    await store.create_import(new_import("i1"))
    common = [game(f"common{i}", end_time=1_600_000_000 + i) for i in range(10)]

    async def one(task: int) -> int:
        page = [game(f"t{task}-{i}", end_time=1_600_001_000 + i) for i in range(50)]
        page += random.sample(common, len(common))
        return await store.store_page("i1", "lichess", "alice", page, 20, f"c{task}")

    counts = await asyncio.gather(*(one(t) for t in range(20)))
    assert sum(counts) == 20 * 50 + 10
    assert await store.count_games("lichess", "alice") == 20 * 50 + 10
    record = await store.get_import("i1")
    assert record is not None
    assert (record.pages, record.games) == (20, 1010)


_WORKER = """
import asyncio, random, sys
from hub.store import GameRow, ImportRecord, open_store

async def main(url, n):
    store = open_store(url)
    await store.connect()
    user = f"p{n}"
    await store.create_import(ImportRecord(
        id=user, source="lichess", username=user, state="running", created_at=0.0))
    for page in range(10):
        ids = [f"{user}-{page}-{i}" for i in range(50)]
        ids += random.sample([f"shared-{page}-{i}" for i in range(10)], 10)
        rows = [GameRow(source="lichess", game_id=g, username=user, end_time=page,
                        time_class="blitz", rated=True, white=user, black="x",
                        white_rating=1500, black_rating=1500, white_result="win",
                        black_result="resigned", color="white", outcome="win") for g in ids]
        await store.store_page(user, "lichess", user, rows, 10, str(page))
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_several_processes_share_one_database(backend: Backend) -> None:
    argv = [sys.executable, "-c", _WORKER, backend.url]
    procs = [
        await asyncio.create_subprocess_exec(*argv, str(n), cwd=ROOT, stderr=PIPE) for n in range(4)
    ]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode() for _, err in results]
    s = open_store(backend.url)
    await s.connect()
    try:
        for n in range(4):
            assert await s.count_games("lichess", f"p{n}") == 600
            assert await s.get_cursor("lichess", f"p{n}") == "9"
    finally:
        await s.close()
    assert await stored_games(backend) == 4 * 500 + 100


# --- imports and queries ------------------------------------------------------------------


async def test_import_lifecycle(store: Store) -> None:
    queued = new_import("i1")
    await store.create_import(queued)
    assert await store.get_import("i1") == queued
    with pytest.raises(DB_ERRORS):
        await store.create_import(queued)
    await store.mark_running("i1", 1001.25)
    page = [game(f"g{i}") for i in range(3)]
    await store.store_page("i1", "lichess", "alice", page, 2, "c1")
    await store.store_page("i1", "lichess", "alice", page[:1], 2, None)
    await store.finish_import("i1", "done", 1002.75, message="3 new games")
    assert await store.get_import("i1") == msgspec.structs.replace(
        queued, state="done", started_at=1001.25, finished_at=1002.75, pages=2,
        pages_total=2, games=3, message="3 new games",
    )  # fmt: skip

    await store.create_import(new_import("i2", "bob"))
    await store.finish_import("i2", "failed", 1003.0, error="rate_limited", message="slow down")
    failed = await store.get_import("i2")
    assert failed is not None
    assert (failed.state, failed.error, failed.message) == ("failed", "rate_limited", "slow down")
    assert failed.started_at is None
    assert await store.get_import("missing") is None


async def test_count_games_and_game_ids(store: Store) -> None:
    await store.create_import(new_import("i1"))
    await store.create_import(new_import("i2", source="chesscom"))
    page = [game("late", end_time=300), game("early", end_time=100), game("mid", end_time=200)]
    await store.store_page("i1", "lichess", "alice", page, None, None)
    await store.store_page("i2", "chesscom", "alice", [game("x", source="chesscom")], None, None)
    assert await store.count_games("lichess", "alice") == 3
    assert await store.game_ids("lichess", "alice") == ["early", "mid", "late"]
    assert await store.count_games("chesscom", "alice") == 1
    assert await store.count_games("lichess", "nobody") == 0
    assert await store.game_ids("lichess", "nobody") == []


async def test_player_summary_on_a_known_dataset(store: Store) -> None:
    new_year = 1_609_459_200  # 2021-01-01T00:00:00Z
    rows = [
        game("a1", end_time=new_year - 1, rating=1500),
        game("a2", end_time=new_year, color="black", outcome="loss", rating=1490),
        game("a3", end_time=new_year + 14 * 86400, time_class="rapid", outcome="draw", rating=1600),
        game("a4", end_time=1_614_686_400, time_class="bullet", color="black", rating=None),
        game("a5", end_time=1_614_945_600, color="black", outcome="draw", rating=1495),
    ]  # fmt: skip
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", rows, None, None)
    await store.create_import(new_import("i2", "bob"))
    await store.store_page("i2", "lichess", "bob", [opposite(rows[0], "bob")], None, None)
    await store.create_import(new_import("i3", source="chesscom"))
    await store.store_page("i3", "chesscom", "alice", [game("c1", source="chesscom")], None, None)

    assert await store.player_summary("lichess", "alice") == PlayerSummary(
        source="lichess",
        username="alice",
        games=5,
        by_month=[MonthCount("2020-12", 1), MonthCount("2021-01", 2), MonthCount("2021-03", 2)],
        by_color={"white": Record(win=1, draw=1), "black": Record(win=1, draw=1, loss=1)},
        by_time_class={
            "blitz": Record(win=1, draw=1, loss=1),
            "bullet": Record(win=1),
            "rapid": Record(draw=1),
        },
        rating=[
            RatingPoint(new_year - 1, 1500, "blitz"),
            RatingPoint(new_year, 1490, "blitz"),
            RatingPoint(new_year + 14 * 86400, 1600, "rapid"),
            RatingPoint(1_614_945_600, 1495, "blitz"),
        ],
    )


async def test_player_summary_of_an_unknown_player(store: Store) -> None:
    assert await store.player_summary("lichess", "ghost") == PlayerSummary(
        source="lichess",
        username="ghost",
        games=0,
        by_month=[],
        by_color={"white": Record(), "black": Record()},
        by_time_class={},
        rating=[],
    )


# --- ledger -------------------------------------------------------------------------------


def window(unit: str, seen: int, first: int, last: int, **changes: Any) -> Unit:
    return Unit(
        unit=unit, state="stored", status=200, games_seen=seen, first_ms=first, last_ms=last,
        **changes,
    )  # fmt: skip


def listed(game_id: str, ms: int, **changes: Any) -> GameRow:
    return msgspec.structs.replace(game(game_id, end_time=ms // 1000), listed_ms=ms, **changes)


async def test_page_writes_its_ledger_rows_in_its_own_transaction(store: Store) -> None:
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", [listed("g0", 1000)], None, None)
    rows = [listed("g0", 1000), listed("g1", 2000), listed("g2", 3000)]
    first = LedgerWrite(
        unit=window("1000..3000", 4, 1000, 3000, skipped={"unparseable": 1}, unreadable=["?"]),
        pending=["3001..", "1000..3000"],
        ongoing_add=[("o1", 1500), ("o2", 2500)],
    )
    assert await store.store_page("i1", "lichess", "alice", rows, None, "c1", first) == 2
    ledger = await store.read_ledger("lichess", "alice", with_stored=True)
    assert ledger.known and ledger.site_count is None
    assert set(ledger.units) == {"1000..3000", "3001.."}
    unit = ledger.units["1000..3000"]
    # the store counted what was new; pending never overwrites a unit already recorded
    assert (unit.state, unit.games_seen, unit.games_new, unit.games_known) == ("stored", 4, 2, 1)
    assert (unit.skipped, unit.unreadable, unit.fetched_at > 0) == ({"unparseable": 1}, ["?"], True)
    assert ledger.units["3001.."].state == "pending"
    assert ledger.stored == {"1000..3000": 3}
    assert ledger.ongoing == ["o1", "o2"] and await store.count_ongoing("lichess", "alice") == 2
    # a page that fails leaves the ledger as it was
    second = LedgerWrite(unit=window("3001..4000", 1, 3001, 4000), drop=["3001.."])
    with pytest.raises(DB_ERRORS):
        await store.store_page("i1", "lichess", "alice", [game("x", color="x")], None, "c2", second)
    assert set((await store.read_ledger("lichess", "alice")).units) == {"1000..3000", "3001.."}
    second.ongoing_remove = ["o1"]
    await store.store_page("i1", "lichess", "alice", [listed("g3", 4000)], None, "c2", second)
    ledger = await store.read_ledger("lichess", "alice", with_stored=True)
    assert set(ledger.units) == {"1000..3000", "3001..4000"}
    assert ledger.stored == {"1000..3000": 3, "3001..4000": 1}
    assert ledger.ongoing == ["o2"]
    assert (await store.read_ledger("chesscom", "alice")).known is False


async def test_a_month_read_again_replaces_its_row(store: Store) -> None:
    await store.create_import(new_import("i1", source="chesscom"))
    failed = Unit(unit="2026/09", state="failed", status=500, error="HTTP 500")
    await store.store_page("i1", "chesscom", "alice", [], None, None, LedgerWrite(unit=failed))
    row = (await store.read_ledger("chesscom", "alice")).units["2026/09"]
    assert (row.state, row.status, row.error) == ("failed", 500, "HTTP 500")
    read = window("2026/09", 1, 5000, 5000, etag='"e"', last_modified="Tue, 01 Sep 2026")
    page = [listed("m1", 5000, source="chesscom")]
    await store.store_page("i1", "chesscom", "alice", page, None, None, LedgerWrite(unit=read))
    row = (await store.read_ledger("chesscom", "alice")).units["2026/09"]
    assert (row.state, row.status, row.error, row.etag, row.games_new) == (
        "stored",
        200,
        None,
        '"e"',
        1,
    )


async def test_site_count_makes_the_player_known(store: Store) -> None:
    await store.record_site_count("chesscom", "carol", 42)
    ledger = await store.read_ledger("chesscom", "carol")
    assert (ledger.known, ledger.site_count, ledger.units) == (True, 42, {})
    await store.record_site_count("chesscom", "carol", None)
    assert (await store.read_ledger("chesscom", "carol")).site_count is None
    await store.create_import(new_import("i1", "carol", "chesscom"))
    await store.store_page("i1", "chesscom", "carol", [], None, "cursor")
    assert await store.get_cursor("chesscom", "carol") == "cursor"  # the count kept the row
    await store.record_site_count("chesscom", "carol", 7)
    assert await store.get_cursor("chesscom", "carol") == "cursor"


async def test_comparable_count_and_standard_summary(store: Store) -> None:
    await store.create_import(new_import("i1", source="chesscom"))
    fen = "8/8/4k3/8/8/4K3/4P3/8 w - - 0 1"
    rows = [
        game("std-blitz", source="chesscom", time_class="blitz"),
        game("std-daily", source="chesscom", time_class="daily"),
        msgspec.structs.replace(game("unrated", source="chesscom"), rated=False),
        msgspec.structs.replace(game("960-daily", source="chesscom", time_class="daily"),
                                variant="chess960", initial_fen=fen),
        msgspec.structs.replace(game("960-blitz", source="chesscom"), variant="chess960"),
        msgspec.structs.replace(game("position", source="chesscom"), initial_fen=fen),
    ]  # fmt: skip
    await store.store_page("i1", "chesscom", "alice", rows, None, None)
    stats = Comparable(
        site_what="s",
        stored_what="t",
        rated_only=True,
        kinds=(("standard", ("blitz", "daily")), ("chess960", ("daily",))),
    )
    # rated: std-blitz, std-daily, 960-daily and position (standard rules, rated here)
    assert await store.count_comparable("chesscom", "alice", stats) == 4
    every = Comparable(site_what="s", stored_what="t")
    assert await store.count_comparable("chesscom", "alice", every) == 6
    assert (await store.player_summary("chesscom", "alice")).games == 3
    assert (await store.player_summary("chesscom", "alice", "all")).games == 6
    with pytest.raises(ValueError):
        await store.player_summary("chesscom", "alice", "some")  # type: ignore[arg-type]


async def test_rows_stored_before_the_ledger_learn_where_they_belong(
    store: Store, backend: Backend
) -> None:
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", [game("old")], None, None)
    await store.store_page(
        "i1", "lichess", "alice", [listed("old", 7000, variant="chess960")], None, None
    )
    await store.store_page("i1", "lichess", "alice", [listed("old", 9000)], None, None)
    rows = await backend.sql("SELECT variant, listed_ms FROM games WHERE game_id = 'old'")
    assert rows == [("chess960", 7000)]  # filled in once, then left alone


async def test_rating_series_keeps_the_latest_points(store: Store) -> None:
    total = MAX_RATING_POINTS + 100
    rows = [game(f"g{i}", end_time=1_600_000_000 + i, rating=1000 + i) for i in range(total)]
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", rows, None, None)
    summary = await store.player_summary("lichess", "alice")
    assert summary.games == total
    assert len(summary.rating) == MAX_RATING_POINTS
    assert summary.rating[0] == RatingPoint(1_600_000_100, 1100, "blitz")
    assert summary.rating[-1].rating == 1000 + total - 1


@pytest.mark.parametrize("page_size", [100, 2000])
async def test_store_page_throughput(store: Store, backend: Backend, page_size: int) -> None:
    """Prints rows/s (see with -s); asserts only that every row landed."""
    total = 20_000
    rows = [game(f"g{i}", end_time=1_600_000_000 + i) for i in range(total)]
    await store.create_import(new_import("i1"))
    started = time.perf_counter()
    new = 0
    for at in range(0, total, page_size):
        new += await store.store_page(
            "i1", "lichess", "alice", rows[at : at + page_size], None, str(at)
        )
    elapsed = time.perf_counter() - started
    print(f"\n{backend.kind}: {total} rows in pages of {page_size}: {total / elapsed:,.0f} rows/s")
    assert new == total
    assert await store.count_games("lichess", "alice") == total


# --- many imports at once, and their end -------------------------------------------------


async def test_create_imports_writes_a_batch_in_one_transaction(store: Store) -> None:
    batch = [new_import(f"i{n}", f"p{n}") for n in range(50)]
    await store.create_imports(batch)
    await store.create_imports([])
    for record in batch:
        assert await store.get_import(record.id) == record


@pytest.mark.parametrize("duplicate", ["stored", "within"])
async def test_a_failing_batch_leaves_no_row(store: Store, duplicate: str) -> None:
    await store.create_import(new_import("old"))
    clash = "old" if duplicate == "stored" else "a"
    # The clash comes last, so the rows before it were already written when it failed.
    batch = [new_import("a"), new_import("b", "bob"), new_import(clash, "carol")]
    with pytest.raises(DB_ERRORS):
        await store.create_imports(batch)
    assert [await store.get_import(i) for i in ("a", "b")] == [None, None]
    assert await store.get_import("old") == new_import("old")
    # The store is still usable afterwards.
    await store.create_imports(batch[:2])
    assert await store.get_import("b") == batch[1]


async def test_delete_ended_imports_in_batches(store: Store, backend: Backend) -> None:
    cut = 10_000.0
    for n, state in enumerate(["done", "failed", "cancelled", "done", "failed"]):
        await store.create_import(new_import(f"old-{state}-{n}"))
        await store.finish_import(f"old-{state}-{n}", state, cut - 100 + n)
    await store.create_import(new_import("recent"))
    await store.finish_import("recent", "done", cut + 1)
    await store.create_import(new_import("queued"))  # never finished: never deleted
    await store.create_import(new_import("running"))
    await store.mark_running("running", cut - 500)
    await store.create_import(new_import("paged"))
    await store.store_page("paged", "lichess", "alice", [game("g1"), game("g2")], 1, "c1")
    await store.finish_import("paged", "done", cut - 1)

    assert await store.delete_ended_imports(cut, batch=4) == 4
    assert await store.delete_ended_imports(cut, batch=4) == 2
    assert await store.delete_ended_imports(cut, batch=4) == 0
    left = await backend.sql("SELECT id FROM imports ORDER BY id")
    assert left == [("queued",), ("recent",), ("running",)]
    # Games, the player's games and the cursor outlive the import that stored them.
    assert await stored_games(backend) == 2
    assert await store.count_games("lichess", "alice") == 2
    assert await store.get_cursor("lichess", "alice") == "c1"


async def test_janitor_deletes_what_ended_before_the_kept_days(
    store: Store, backend: Backend
) -> None:
    day = 86400.0
    now = 100 * day
    for n in range(7):  # finished 40, 39 ... 34 days ago
        await store.create_import(new_import(f"i{n}"))
        await store.finish_import(f"i{n}", "done", now - (40 - n) * day)
    await store.create_import(new_import("waiting"))
    janitor = Janitor(store, keep_days=36, clock=lambda: now, batch=2)
    assert await janitor.sweep() == 4  # two full batches, then none
    assert await janitor.sweep() == 0
    left = await backend.sql("SELECT id FROM imports ORDER BY id")
    assert left == [("i4",), ("i5",), ("i6",), ("waiting",)]


async def test_janitor_runs_at_start_and_stops(store: Store, backend: Backend) -> None:
    await store.create_import(new_import("old"))
    await store.finish_import("old", "done", 1.0)
    async with Janitor(store, keep_days=1, clock=time.time, every_s=3600):
        await eventually(lambda: _gone(store, "old"), "the first sweep", timeout=10.0, every=0.01)
    assert await backend.sql("SELECT count(*) FROM imports") == [(0,)]


# --- summaries ----------------------------------------------------------------------------


async def test_every_stored_page_changes_the_player_version(store: Store) -> None:
    assert await store.player_updated_at("lichess", "alice") is None
    await store.create_import(new_import("i1"))
    seen = set()
    for page, cursor in enumerate(["c1", None, None]):  # with a cursor or without
        rows = [game(f"g{page}")] if page < 2 else []  # with games or without
        await store.store_page("i1", "lichess", "alice", rows, None, cursor)
        version = await store.player_updated_at("lichess", "alice")
        assert version is not None and version not in seen
        seen.add(version)
    assert await store.get_cursor("lichess", "alice") == "c1"
    assert await store.player_updated_at("lichess", "bob") is None


class CountingStore:
    """Counts the summaries a store computes, and can hold them until released."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.computed = 0
        self.running = 0
        self.most = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def player_updated_at(self, source: str, username: str) -> float | None:
        return await self.store.player_updated_at(source, username)

    async def player_summary(self, source: str, username: str, games: Games) -> PlayerSummary:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            self.computed += 1
            return await self.store.player_summary(source, username, games)
        finally:
            self.running -= 1


async def test_summary_is_cached_until_the_next_page(store: Store, backend: Backend) -> None:
    counting = CountingStore(store)
    summaries = Summaries(cast(Store, counting), concurrency=4)
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", [game("g1")], None, "c1")
    first = await summaries.get("lichess", "alice", "standard")
    assert first.games == 1
    for _ in range(3):
        assert await summaries.get("lichess", "alice", "standard") is first
    assert counting.computed == 1
    await summaries.get("lichess", "alice", "all")  # cached apart
    assert counting.computed == 2

    await store.store_page("i1", "lichess", "alice", [game("g2")], None, None)
    assert (await summaries.get("lichess", "alice", "standard")).games == 2
    assert counting.computed == 3
    # Another process's store, as a second hub on the same database would have.
    other = open_store(backend.url)
    await other.connect()
    try:
        await other.store_page("i1", "lichess", "alice", [game("g3")], None, None)
    finally:
        await other.close()
    assert (await summaries.get("lichess", "alice", "standard")).games == 3


async def test_summaries_wait_their_turn_and_none_fails(store: Store) -> None:
    counting = CountingStore(store)
    summaries = Summaries(cast(Store, counting), concurrency=3)
    await store.create_import(new_import("i1"))
    await store.store_page("i1", "lichess", "alice", [game("g1")], None, "c1")
    counting.gate.clear()
    players = [f"p{n % 10}" for n in range(200)]  # ten players, twenty requests each
    asks = [asyncio.create_task(summaries.get("lichess", name, "standard")) for name in players]
    await eventually(lambda: counting.running >= 3, "three summaries computing", timeout=10.0)
    assert counting.running == 3 and not any(t.done() for t in asks)
    counting.gate.set()
    results = await asyncio.gather(*asks)
    assert [r.username for r in results] == players
    assert counting.most == 3
    assert counting.computed == 10  # one per player: the rest found it cached


# --- threads ------------------------------------------------------------------------------


async def test_sqlite_queries_run_on_a_fixed_set_of_threads(tmp_path: Path) -> None:
    before = threading.active_count()
    store = SQLiteStore(str(tmp_path / "hub.db"), readers=4)
    await store.connect()
    most = threading.active_count()

    async def read(n: int) -> None:
        nonlocal most
        await store.player_summary("lichess", f"p{n % 7}")
        await store.count_games("lichess", f"p{n}")
        most = max(most, threading.active_count())

    async def write(n: int) -> None:
        nonlocal most
        await store.create_import(new_import(f"i{n}", f"p{n}"))
        await store.store_page(f"i{n}", "lichess", f"p{n}", [game(f"g{n}", f"p{n}")], 1, "c")
        most = max(most, threading.active_count())

    try:
        await asyncio.gather(*(read(n) for n in range(500)), *(write(n) for n in range(100)))
    finally:
        await store.close()
    assert most <= before + 5  # four readers and the writer
    assert await store_count(tmp_path / "hub.db") == 100
    # Each thread ends when its connection closes.
    await eventually(
        lambda: threading.active_count() <= before, "the readers' threads ended", timeout=10.0
    )


async def store_count(path: Path) -> int:
    async with aiosqlite.connect(path) as conn:
        [(count,)] = list(await conn.execute_fetchall("SELECT count(*) FROM player_games"))
        return int(count)


async def test_sqlite_readers_refuse_to_write(tmp_path: Path) -> None:
    pool = SQLitePool(tmp_path / "hub.db", readers=1)
    await pool.connect()
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        async with pool.connection() as conn:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await conn.execute("INSERT INTO t VALUES (1)")
        await pool.execute("INSERT INTO t VALUES (:x)", {"x": 2})
        assert await pool.fetch_val("SELECT x FROM t") == 2
    finally:
        await pool.disconnect()


async def test_sqlite_writes_inside_a_write_transaction_join_it(tmp_path: Path) -> None:
    pool = SQLitePool(tmp_path / "hub.db", readers=1)
    await pool.connect()
    try:
        await pool.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(LookupError):
            async with pool.writing() as raw, immediate(raw):
                await pool.execute("INSERT INTO t VALUES (1)")
                await pool.executemany("INSERT INTO t VALUES (?)", [(2,), (3,)])
                assert await pool.fetch_val("SELECT count(*) FROM t") == 3  # its own writes
                raise LookupError("undo")
        assert await pool.fetch_val("SELECT count(*) FROM t") == 0
        assert await pool.executemany("INSERT INTO t VALUES (?)", [(4,), (5,)]) == 2
        assert await pool.fetch_val("SELECT count(*) FROM t") == 2
    finally:
        await pool.disconnect()


async def _gone(store: Store, import_id: str) -> bool:
    return await store.get_import(import_id) is None
