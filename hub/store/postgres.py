"""PostgreSQL backend: an asyncpg pool via `databases`, bulk page writes through COPY."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs, urlsplit

from databases import Database

from hub.store import schema
from hub.store.base import GameRow, ImportRecord, LedgerWrite
from hub.store.sql import (
    GAME_COLUMNS,
    GAME_CONFLICT,
    IMPORT_COLUMNS,
    PLAYER_GAME_COLUMNS,
    LedgerSql,
    SQLStore,
    check_rows,
    game_tuple,
    import_tuple,
    player_rating,
    write_ledger,
)

# Any fixed 64-bit key; it only has to be the same for every hub on one database.
MIGRATION_LOCK_KEY = 0x6875625F736368  # "hub_sch"

_STAGE = "hub_page"
_STAGE_COLUMNS = (*GAME_COLUMNS, "username", "color", "outcome", "player_rating")

# Lives for the session (pooled connections keep it) and empties at every commit.
_CREATE_STAGE = f"""
    CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
        source         TEXT,
        game_id        TEXT,
        end_time       BIGINT,
        time_class     TEXT,
        rated          BOOLEAN,
        white          TEXT,
        black          TEXT,
        white_rating   INTEGER,
        black_rating   INTEGER,
        white_result   TEXT,
        black_result   TEXT,
        pgn            TEXT,
        variant        TEXT,
        initial_fen    TEXT,
        listed_ms      BIGINT,
        username       TEXT,
        color          TEXT,
        outcome        TEXT,
        player_rating  INTEGER
    ) ON COMMIT DELETE ROWS
"""
# ORDER BY game_id: concurrent pages sharing games lock them in one order, so two
# imports of opponents cannot deadlock on each other's uncommitted rows. DISTINCT: an
# upsert may not touch one row twice in a statement.
_INSERT_GAMES = f"""
    INSERT INTO games ({", ".join(GAME_COLUMNS)})
    SELECT DISTINCT ON (game_id) {", ".join(GAME_COLUMNS)} FROM {_STAGE} ORDER BY game_id
    {GAME_CONFLICT}
"""
_INSERT_PLAYER_GAMES = f"""
    WITH added AS (
        INSERT INTO player_games ({", ".join(PLAYER_GAME_COLUMNS)})
        SELECT {", ".join(PLAYER_GAME_COLUMNS)} FROM {_STAGE} ORDER BY game_id
        ON CONFLICT (source, username, game_id) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM added
"""
_UPDATE_IMPORT = """
    UPDATE imports
       SET pages = pages + 1,
           pages_total = COALESCE($2, pages_total),
           games = games + $3
     WHERE id = $1
"""
_UPSERT_CURSOR = """
    INSERT INTO players (source, username, cursor, updated_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (source, username)
    DO UPDATE SET cursor = COALESCE(excluded.cursor, players.cursor),
                  updated_at = excluded.updated_at
"""
_INSERT_IMPORTS = f"""
    INSERT INTO imports ({", ".join(IMPORT_COLUMNS)})
    VALUES ({", ".join(f"${n}" for n in range(1, len(IMPORT_COLUMNS) + 1))})
"""
_LEDGER = LedgerSql("$")

# SQLSTATE classes that mean the server is away or overloaded, not that a query is wrong:
# 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown,
# cannot connect now), 58 system error. asyncpg puts the code on its exception classes.
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})


class _Asyncpg(Protocol):
    """The part of an asyncpg connection this module uses (asyncpg ships no types)."""

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
    async def execute(self, query: str, *args: object) -> str: ...
    async def fetch(self, query: str, *args: object) -> list[Any]: ...
    async def fetchval(self, query: str, *args: object) -> Any: ...
    async def executemany(self, query: str, args: Iterable[Sequence[object]]) -> None: ...
    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...


class PostgresStore(SQLStore):
    """A store on PostgreSQL; several hubs may share one database."""

    month_sql = "to_char(to_timestamp(end_time) AT TIME ZONE 'UTC', 'YYYY-MM')"
    snapshot_options: ClassVar[dict[str, Any]] = {"isolation": "repeatable_read", "readonly": True}

    def __init__(self, url: str) -> None:
        # asyncpg opens min_size connections up front (10 by default); several hubs and
        # workers on one server would exhaust max_connections. `?min_size=` overrides.
        options: dict[str, Any] = {"min_size": 1}
        if "min_size" in parse_qs(urlsplit(url).query):
            options = {}
        self._pg = Database(url, **options)
        super().__init__(self._pg)

    def _unavailable(self, exc: BaseException) -> bool:
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_CLASSES:
            return True
        return super()._unavailable(exc)

    async def connect(self) -> None:
        await self._pg.connect()
        try:
            async with self._pg.connection() as conn:
                await _migrate(conn.raw_connection)
        except BaseException:
            await self._pg.disconnect()
            raise

    async def create_imports(self, records: Sequence[ImportRecord]) -> None:
        if not records:
            return
        async with self._pg.connection() as conn:
            raw: _Asyncpg = conn.raw_connection
            async with raw.transaction():
                await raw.executemany(_INSERT_IMPORTS, [import_tuple(r) for r in records])

    async def store_page(
        self,
        import_id: str,
        source: str,
        username: str,
        rows: Sequence[GameRow],
        pages_total: int | None,
        cursor: str | None,
        ledger: LedgerWrite | None = None,
    ) -> int:
        """Store one page in one transaction; raise LookupError for an unknown import."""
        check_rows(source, username, rows)
        records = [(*game_tuple(r), r.username, r.color, r.outcome, player_rating(r)) for r in rows]
        async with self._pg.connection() as conn:
            raw: _Asyncpg = conn.raw_connection
            async with raw.transaction():
                new = 0
                if records:
                    await raw.execute(_CREATE_STAGE)
                    await raw.copy_records_to_table(_STAGE, records=records, columns=_STAGE_COLUMNS)
                    await raw.execute(_INSERT_GAMES)
                    new = int(await raw.fetchval(_INSERT_PLAYER_GAMES))
                status = await raw.execute(_UPDATE_IMPORT, import_id, pages_total, new)
                if status != "UPDATE 1":
                    raise LookupError(f"unknown import {import_id!r}")
                # On every page, cursor or not: a summary cached before it is stale.
                await raw.execute(_UPSERT_CURSOR, source, username, cursor, time.time())
                if ledger is not None:
                    who = (source, username)
                    await write_ledger(raw.executemany, _LEDGER, who, ledger, len(rows), new)
        return new


async def _migrate(raw: _Asyncpg) -> None:
    async with raw.transaction():
        # Held to the end of the transaction: hubs starting together upgrade one at a time.
        await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await raw.execute(schema.VERSION_TABLE)
        found = schema.current_version(await raw.fetch("SELECT version FROM schema_version"))
        steps = schema.pending("postgres", found or 0)
        for _, statements in steps:
            for statement in statements:
                await raw.execute(statement)
        if found is None or steps:
            await raw.execute("DELETE FROM schema_version")
            await raw.execute(
                "INSERT INTO schema_version (version) VALUES ($1)", schema.LATEST_VERSION
            )
