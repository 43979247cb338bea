"""SQLite backend: one file, WAL, a few long-lived connections, bulk writes on the writer."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiosqlite

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
    player_game_tuple,
    write_ledger,
)
from hub.store.sqlite_pool import READERS, SQLitePool, immediate

_INSERT_GAMES = f"""
    INSERT INTO games ({", ".join(GAME_COLUMNS)})
    VALUES ({", ".join("?" * len(GAME_COLUMNS))})
    {GAME_CONFLICT}
"""
_INSERT_PLAYER_GAMES = f"""
    INSERT INTO player_games ({", ".join(PLAYER_GAME_COLUMNS)})
    VALUES ({", ".join("?" * len(PLAYER_GAME_COLUMNS))})
    ON CONFLICT (source, username, game_id) DO NOTHING
"""
_UPDATE_IMPORT = """
    UPDATE imports
       SET pages = pages + 1,
           pages_total = COALESCE(?1, pages_total),
           games = games + ?2
     WHERE id = ?3
"""
_UPSERT_CURSOR = """
    INSERT INTO players (source, username, cursor, updated_at)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (source, username)
    DO UPDATE SET cursor = COALESCE(excluded.cursor, players.cursor),
                  updated_at = excluded.updated_at
"""
_INSERT_IMPORTS = f"""
    INSERT INTO imports ({", ".join(IMPORT_COLUMNS)})
    VALUES ({", ".join("?" * len(IMPORT_COLUMNS))})
"""
_LEDGER = LedgerSql("?")


# Result codes that mean the file is locked, full or unreachable, not that a query is wrong.
_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
    }
)


class SQLiteStore(SQLStore):
    """A store in one SQLite file; safe for several tasks and processes."""

    month_sql = "substr(datetime(end_time, 'unixepoch'), 1, 7)"

    def __init__(self, path: str, readers: int = READERS) -> None:
        if not path or path == ":memory:" or path.startswith("file:"):
            # In memory, every connection would see its own empty database.
            raise ValueError(f"SQLite store needs a file path, got {path!r}")
        self.path = Path(path)
        # Long-lived connections, each with its own thread: a bounded set of threads
        # whatever the load, and a WAL that is not checkpointed and deleted each time
        # the last of many short-lived connections closes.
        self._pool = SQLitePool(self.path, readers)
        super().__init__(self._pool)

    def _writing(self) -> AbstractAsyncContextManager[object]:
        return self._pool.writing()

    def _unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.OperationalError):
            return exc.sqlite_errorcode & 0xFF in _UNAVAILABLE
        return super()._unavailable(exc)

    async def connect(self) -> None:
        await self._pool.connect()
        try:
            async with self._pool.writing() as raw:
                await _migrate(raw)
        except BaseException:
            await self._pool.disconnect()
            raise

    async def create_imports(self, records: Sequence[ImportRecord]) -> None:
        if records:
            await self._pool.executemany(_INSERT_IMPORTS, [import_tuple(r) for r in records])

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
        games = [game_tuple(r) for r in rows]
        links = [player_game_tuple(r) for r in rows]
        async with self._pool.writing() as raw, immediate(raw):
            await raw.executemany(_INSERT_GAMES, games)
            new = (await raw.executemany(_INSERT_PLAYER_GAMES, links)).rowcount
            updated = await raw.execute(_UPDATE_IMPORT, (pages_total, new, import_id))
            if updated.rowcount != 1:
                raise LookupError(f"unknown import {import_id!r}")
            # On every page, cursor or not: a summary cached before it is stale.
            await raw.execute(_UPSERT_CURSOR, (source, username, cursor, time.time()))
            if ledger is not None:
                who = (source, username)
                await write_ledger(raw.executemany, _LEDGER, who, ledger, len(rows), new)
        return new


async def _migrate(raw: aiosqlite.Connection) -> None:
    async with immediate(raw):
        await raw.execute(schema.VERSION_TABLE)
        found = schema.current_version(
            list(await raw.execute_fetchall("SELECT version FROM schema_version"))
        )
        steps = schema.pending("sqlite", found or 0)
        for _, statements in steps:
            for statement in statements:
                await raw.execute(statement)
        if found is None or steps:
            await raw.execute("DELETE FROM schema_version")
            await raw.execute(
                "INSERT INTO schema_version (version) VALUES (?)", (schema.LATEST_VERSION,)
            )
