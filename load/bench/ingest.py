"""`python -m load.bench.ingest`: games stored per second through `hub.store` (a transaction per
page, as imports write) against the raw driver on the same rows in one transaction:
`sqlite3.executemany` for SQLite, asyncpg `copy_records_to_table` for PostgreSQL.

Rows are the simulator's chess.com months parsed by the hub's own parser. Each measurement
starts on an empty scratch database with the hub's schema; PostgreSQL scratch databases are
created on the `TEST_DATABASE_URL` server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub.fetch.chesscom import parse_month
from hub.sim import players
from hub.store import ImportRecord, open_store, schema
from hub.store.base import GameRow
from hub.store.sql import (
    GAME_COLUMNS,
    PLAYER_GAME_COLUMNS,
    game_tuple,
    player_game_tuple,
)
from load.bench.common import RESULTS, show, write
from load.procs import run_async
from load.stats import ratio

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
Page = tuple[str, list[GameRow]]  # (username, rows)


def make_pages(players_: int, months: int, games: int) -> list[Page]:
    now = time.time()
    pages: list[Page] = []
    for i in range(players_):
        name = f"ingest{i}-p{months}x{games}"
        for month in players.player_months(name, now, {}):
            body = players.month_data("chesscom", name, month, now).body
            pages.append((name, parse_month(body, name).rows))
    return pages


async def through_store(url: str, pages: list[Page]) -> float:
    """Seconds to store every page through the hub's store, one page per transaction."""
    store = open_store(url)
    await store.connect()
    try:
        for name in sorted({n for n, _ in pages}):
            record = ImportRecord(
                id=name, source="chesscom", username=name, state="running", created_at=time.time()
            )
            await store.create_import(record)
        began = time.monotonic()
        for k, (name, rows) in enumerate(pages):
            await store.store_page(name, "chesscom", name, rows, len(pages), f'{{"page":{k}}}')
        return time.monotonic() - began
    finally:
        await store.close()


def _insert(table: str, columns: tuple[str, ...], key: str) -> str:
    marks = ", ".join("?" * len(columns))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO NOTHING"
    )


def raw_sqlite(path: Path, pages: list[Page], per_page: bool = False) -> float:
    """Seconds for sqlite3.executemany of the same rows in one transaction (same schema);
    `per_page`: one transaction per page instead, as the hub commits."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        for statement in (schema.VERSION_TABLE, *schema.SQLITE_STEPS[0]):
            db.execute(statement)
        batches = [rows for _, rows in pages] if per_page else [[r for _, p in pages for r in p]]
        games_sql = _insert("games", GAME_COLUMNS, "source, game_id")
        links_sql = _insert("player_games", PLAYER_GAME_COLUMNS, "source, username, game_id")
        began = time.monotonic()
        for rows in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(games_sql, map(game_tuple, rows))
            db.executemany(links_sql, map(player_game_tuple, rows))
            db.execute("COMMIT")
        return time.monotonic() - began
    finally:
        db.close()


async def raw_copy(url: str, pages: list[Page], per_page: bool = False) -> float:
    """Seconds for asyncpg copy_records_to_table of the same rows in one transaction;
    `per_page`: one transaction per page instead, as the hub commits."""
    conn = await asyncpg.connect(url)
    try:
        batches = [rows for _, rows in pages] if per_page else [[r for _, p in pages for r in p]]
        began = time.monotonic()
        for rows in batches:
            games = [game_tuple(r) for r in rows]
            links = [player_game_tuple(r) for r in rows]
            async with conn.transaction():
                await conn.copy_records_to_table("games", records=games, columns=GAME_COLUMNS)
                await conn.copy_records_to_table(
                    "player_games", records=links, columns=PLAYER_GAME_COLUMNS
                )
        return time.monotonic() - began
    finally:
        await conn.close()


def _database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def _scratch(server: str, name: str, create: bool) -> None:
    admin = await asyncpg.connect(_database(server, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def postgres_round(server: str, pages: list[Page], k: int) -> tuple[float, ...]:
    """(hub, raw in one transaction, raw per page) seconds, each on its own scratch database."""
    names = [f"load_ingest_{os.getpid()}_{k}_{side}" for side in ("hub", "raw", "rawpage")]
    try:
        for name in names:
            await _scratch(server, name, True)
            store = open_store(_database(server, name))
            await store.connect()  # the hub's schema
            await store.close()
        hub_s = await through_store(_database(server, names[0]), pages)
        raw_s = await raw_copy(_database(server, names[1]), pages)
        page_s = await raw_copy(_database(server, names[2]), pages, per_page=True)
    finally:
        for name in names:
            await _scratch(server, name, False)
    return hub_s, raw_s, page_s


def _side(games: int, hub: list[float], raw: list[float], page: list[float]) -> dict[str, Any]:
    hub_rate, raw_rate = games / statistics.median(hub), games / statistics.median(raw)
    page_rate = games / statistics.median(page)
    return {
        "hub_seconds": [round(s, 4) for s in hub],
        "raw_seconds": [round(s, 4) for s in raw],
        "raw_per_page_seconds": [round(s, 4) for s in page],
        "hub_games_per_s": round(hub_rate),
        "raw_games_per_s": round(raw_rate),
        "raw_per_page_games_per_s": round(page_rate),
        "ratio_hub_over_raw": ratio(hub_rate, raw_rate),
        "ratio_hub_over_raw_per_page": ratio(hub_rate, page_rate),
    }


async def bench(pages: list[Page], rounds: int, pg_url: str | None) -> dict[str, Any]:
    games = sum(len(rows) for _, rows in pages)
    result: dict[str, Any] = {"pages": len(pages), "games": games, "goal": "ratio >= 0.7"}
    hub_s: list[float] = []
    raw_s: list[float] = []
    page_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="load-ingest-") as tmp:
        for k in range(rounds):
            raw_s.append(raw_sqlite(Path(tmp) / f"raw{k}.db", pages))
            hub_s.append(await through_store(f"sqlite:///{tmp}/hub{k}.db", pages))
            page_s.append(raw_sqlite(Path(tmp) / f"page{k}.db", pages, per_page=True))
    result["sqlite"] = _side(games, hub_s, raw_s, page_s)
    if pg_url:
        hub_s, raw_s, page_s = [], [], []
        try:
            for k in range(rounds):
                h, r, pp = await postgres_round(pg_url, pages, k)
                hub_s.append(h)
                raw_s.append(r)
                page_s.append(pp)
            result["postgres"] = _side(games, hub_s, raw_s, page_s)
        except (OSError, asyncpg.PostgresError) as exc:
            result["postgres"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.ingest", description=__doc__)
    parser.add_argument("--players", type=int, default=20)
    parser.add_argument("--months", type=int, default=10, help="pages per player")
    parser.add_argument("--games", type=int, default=100, help="games per page")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pg = None if args.no_postgres else os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    pages = make_pages(args.players, args.months, args.games)
    result = run_async(bench(pages, args.rounds, pg))
    rows = []
    for name in ("sqlite", "postgres"):
        side = result.get(name, {})
        if "ratio_hub_over_raw" in side:
            rows.append([name, side["hub_games_per_s"], side["raw_games_per_s"],
                         side["ratio_hub_over_raw"], side["raw_per_page_games_per_s"],
                         side["ratio_hub_over_raw_per_page"]])  # fmt: skip
        elif side:
            rows.append([name, "-", "-", side.get("skipped"), "-", "-"])
    show(f"games stored per second ({result['games']} games, {result['pages']} pages)",
         ["database", "hub.store", "raw, one tx", "hub / raw", "raw, tx per page",
          "hub / raw per page"], rows)  # fmt: skip
    print(write("ingest", result, args.out))


if __name__ == "__main__":
    main()
