"""SQLite backend: one file, WAL, bulk page writes through the aiosqlite connection."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from hub.store import schema
from hub.store.base import GameRow, LedgerWrite
from hub.store.sql import (
    GAME_COLUMNS,
    GAME_CONFLICT,
    PLAYER_GAME_COLUMNS,
    LedgerSql,
    SQLStore,
    check_rows,
    game_tuple,
    player_game_tuple,
    write_ledger,
)

# How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0

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
    DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at
"""
_LEDGER = LedgerSql("?")


class _Connection(sqlite3.Connection):
    """Settings every connection needs; `databases` opens a fresh one for each query."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # NORMAL is durable across crashes in WAL mode; only a power cut can lose
        # the last commits, and it saves an fsync per page.
        self.execute("PRAGMA synchronous = NORMAL")


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

# `databases` adds isolation_level=None (autocommit) itself; transactions are explicit.
_CONNECT_OPTIONS: dict[str, Any] = {"factory": _Connection, "timeout": BUSY_TIMEOUT_S}


class SQLiteStore(SQLStore):
    """A store in one SQLite file; safe for several tasks and processes."""

    month_sql = "substr(datetime(end_time, 'unixepoch'), 1, 7)"

    def __init__(self, path: str) -> None:
        if not path or path == ":memory:" or path.startswith("file:"):
            # In memory, every connection would see its own empty database.
            raise ValueError(f"SQLite store needs a file path, got {path!r}")
        self.path = Path(path)
        super().__init__("sqlite:///" + quote(path), **_CONNECT_OPTIONS)
        # `databases` opens a new SQLite connection for every use; pages go through
        # one long-lived connection instead, which also keeps the WAL from being
        # checkpointed and deleted each time the last short-lived one closes.
        self._writer: aiosqlite.Connection | None = None
        # SQLite has one writer at a time; queueing here beats polling the busy handler.
        self._write_lock = asyncio.Lock()

    def _writing(self) -> AbstractAsyncContextManager[object]:
        return self._write_lock

    def _unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.OperationalError):
            return exc.sqlite_errorcode & 0xFF in _UNAVAILABLE
        return super()._unavailable(exc)

    async def connect(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(self.path, isolation_level=None, **_CONNECT_OPTIONS)
        try:
            await _enable_wal(writer)
            await _migrate(writer)
            await self._db.connect()
        except BaseException:
            await writer.close()
            raise
        self._writer = writer

    async def close(self) -> None:
        await self._db.disconnect()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()

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
        async with self._write_lock:
            raw = self._writer
            if raw is None:
                raise RuntimeError("store is not connected")
            async with _immediate(raw):
                await raw.executemany(_INSERT_GAMES, games)
                new = (await raw.executemany(_INSERT_PLAYER_GAMES, links)).rowcount
                updated = await raw.execute(_UPDATE_IMPORT, (pages_total, new, import_id))
                if updated.rowcount != 1:
                    raise LookupError(f"unknown import {import_id!r}")
                if cursor is not None:
                    await raw.execute(_UPSERT_CURSOR, (source, username, cursor, time.time()))
                if ledger is not None:
                    who = (source, username)
                    await write_ledger(raw.executemany, _LEDGER, who, ledger, len(rows), new)
        return new


@contextlib.asynccontextmanager
async def _immediate(raw: aiosqlite.Connection) -> AsyncIterator[None]:
    """An explicit write transaction on an autocommit connection; rolled back on error."""
    if raw.in_transaction:
        # Left open by a caller cancelled during its rollback; finish that first.
        await raw.rollback()
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout); a
    # deferred BEGIN that upgrades later fails at once with "database is locked".
    await raw.execute("BEGIN IMMEDIATE")
    try:
        yield
        await raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            # Shielded: a second cancellation must not leave the shared writer mid-transaction.
            await asyncio.shield(raw.rollback())
        raise


async def _enable_wal(raw: aiosqlite.Connection) -> None:
    """Switch the file to WAL (persistent), so readers never block the writer."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            # Fetched so the statement ends: an open one would pin a read snapshot.
            await raw.execute_fetchall("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            # Switching needs the file to itself, and SQLite does not wait for that.
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.01)


async def _migrate(raw: aiosqlite.Connection) -> None:
    async with _immediate(raw):
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
