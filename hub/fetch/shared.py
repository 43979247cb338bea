"""In-flight caps shared by every replica of a fleet, through PostgreSQL advisory locks.

The lanes cap imports, but a replica's size probes and retries also reach the
upstream; chess.com answers 429 as soon as requests overlap, whoever sends
them. A cap of K is K session-level advisory locks per upstream: a request
holds one while it is in flight. A replica that dies loses its connection and
with it its locks, so nothing is ever held by the dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

_BASE = 0x68756200  # "hub\0"; a request slot's key is base + crc(upstream) + index


class SharedLimit:
    def __init__(self, dsn: str, caps: Mapping[str, int]) -> None:
        self.dsn = dsn
        self.caps = dict(caps)
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        # One connection per slot it can hold at once, plus one to spare.
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=0, max_size=sum(self.caps.values()) + 1
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def _keys(self, upstream: str) -> list[int]:
        base = _BASE + (zlib.crc32(upstream.encode()) & 0xFFFF) * 64
        return [base + i for i in range(self.caps[upstream])]

    @asynccontextmanager
    async def slot(self, upstream: str) -> AsyncIterator[None]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            key = await self._take(conn, upstream)
            try:
                yield
            finally:
                # If the connection died, its locks died with it; and the pool resets a
                # connection it gets back (pg_advisory_unlock_all) or closes it.
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def _take(self, conn: asyncpg.Connection, upstream: str) -> int:
        delay = 0.005
        while True:
            for key in self._keys(upstream):
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                    return key
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
