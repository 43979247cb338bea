"""Long-lived SQLite connections: one writer and a few readers, each on its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

# How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0
# Readers in WAL mode never block the writer, and four keep two cores busy.
READERS = 4

Values = dict[str, Any] | None


class _Connection(sqlite3.Connection):
    """Settings every connection needs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # NORMAL is durable across crashes in WAL mode; only a power cut can lose
        # the last commits, and it saves an fsync per page.
        self.execute("PRAGMA synchronous = NORMAL")


async def _open(path: Path) -> aiosqlite.Connection:
    # Autocommit: every transaction is an explicit BEGIN.
    conn = await aiosqlite.connect(
        path, isolation_level=None, factory=_Connection, timeout=BUSY_TIMEOUT_S
    )
    conn.row_factory = sqlite3.Row  # rows by name and by position
    return conn


class SQLiteReader:
    """A borrowed read connection; the `databases.core.Connection` calls `SQLStore` makes."""

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    async def fetch_all(self, query: str, values: Values = None) -> list[sqlite3.Row]:
        return list(await self.raw.execute_fetchall(query, values or {}))

    async def fetch_one(self, query: str, values: Values = None) -> sqlite3.Row | None:
        rows = await self.fetch_all(query, values)
        return rows[0] if rows else None

    async def fetch_val(self, query: str, values: Values = None) -> Any:
        row = await self.fetch_one(query, values)
        return None if row is None else row[0]

    async def execute(self, query: str, values: Values = None) -> None:
        await self.raw.execute_fetchall(query, values or {})

    @contextlib.asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[None]:
        """A read snapshot: every query inside sees the same committed state."""
        async with deferred(self.raw):
            yield


class SQLitePool:
    """The part of `databases.Database` that `SQLStore` uses, on a fixed set of threads.

    Reads borrow one of `readers` connections. Writes go through the one writer
    connection, one task at a time: SQLite has one writer per file anyway, and
    queueing here beats polling its busy handler.
    """

    def __init__(self, path: Path, readers: int = READERS) -> None:
        self.path = path
        self._size = readers
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None  # the task holding the write lock
        self._readers: list[aiosqlite.Connection] = []
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()

    async def connect(self) -> None:
        if self._writer is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _open(self.path)
        try:
            await _enable_wal(writer)
            for _ in range(self._size):
                reader = await _open(self.path)
                self._readers.append(reader)
                # A write through a reader would bypass the write lock: refuse it.
                await reader.execute_fetchall("PRAGMA query_only = ON")
                self._idle.put_nowait(reader)
        except BaseException:
            await self._close_all(writer)
            raise
        self._writer = writer

    async def disconnect(self) -> None:
        writer, self._writer = self._writer, None
        await self._close_all(writer)

    async def _close_all(self, writer: aiosqlite.Connection | None) -> None:
        readers, self._readers = self._readers, []
        self._idle = asyncio.Queue()
        for conn in [*readers, writer]:
            if conn is not None:
                await conn.close()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection, to this task alone until the block ends.

        Re-entrant within one task, so that `execute` inside a `writing` block
        neither waits for itself nor leaves the block's transaction.
        """
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            yield self._connected()
            return
        async with self._write_lock:
            self._owner = task
            try:
                raw = self._connected()
                await _clean(raw)
                yield raw
            finally:
                self._owner = None

    def _connected(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("store is not connected")
        return self._writer

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[SQLiteReader]:
        """A reader to this task alone, or the writer inside a `writing` block."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            yield SQLiteReader(self._connected())
            return
        self._connected()
        raw = await self._idle.get()
        try:
            await _clean(raw)
            yield SQLiteReader(raw)
        finally:
            if raw in self._readers:  # not closed meanwhile
                self._idle.put_nowait(raw)

    async def fetch_all(self, query: str, values: Values = None) -> list[sqlite3.Row]:
        async with self.connection() as conn:
            return await conn.fetch_all(query, values)

    async def fetch_one(self, query: str, values: Values = None) -> sqlite3.Row | None:
        async with self.connection() as conn:
            return await conn.fetch_one(query, values)

    async def fetch_val(self, query: str, values: Values = None) -> Any:
        async with self.connection() as conn:
            return await conn.fetch_val(query, values)

    async def execute(self, query: str, values: Values = None) -> None:
        """One statement on the writer, committed on its own unless in a `writing` block."""
        async with self.writing() as raw:
            await raw.execute_fetchall(query, values or {})

    async def executemany(self, query: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for many rows in one write transaction; how many rows it changed."""
        async with self.writing() as raw, immediate(raw):
            return (await raw.executemany(query, rows)).rowcount


@contextlib.asynccontextmanager
async def immediate(raw: aiosqlite.Connection) -> AsyncIterator[None]:
    """An explicit write transaction on an autocommit connection; rolled back on error."""
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout); a
    # deferred BEGIN that upgrades later fails at once with "database is locked".
    async with _transaction(raw, "BEGIN IMMEDIATE"):
        yield


@contextlib.asynccontextmanager
async def deferred(raw: aiosqlite.Connection) -> AsyncIterator[None]:
    """A read transaction: its snapshot starts with its first query."""
    async with _transaction(raw, "BEGIN"):
        yield


async def _clean(raw: aiosqlite.Connection) -> None:
    """Roll back what a borrower cancelled during its own rollback left open."""
    if raw.in_transaction:
        await raw.rollback()


@contextlib.asynccontextmanager
async def _transaction(raw: aiosqlite.Connection, begin: str) -> AsyncIterator[None]:
    if raw.in_transaction:
        # Nested in a transaction of the same borrower: part of it, committed with it.
        yield
        return
    await raw.execute_fetchall(begin)
    try:
        yield
        await raw.execute_fetchall("COMMIT")
    except BaseException:
        if raw.in_transaction:
            # Shielded: a second cancellation must not leave a shared connection
            # mid-transaction. Calls run in order on its thread, so the next
            # borrower's come after this rollback even if nobody waits for it.
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
