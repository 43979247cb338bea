"""Player summaries: a few computed at a time, each cached until the player's next page."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

from hub.store.base import Games, PlayerSummary, Store

# A summary holds up to a few thousand rating points: keep the most recently asked.
CACHE_ENTRIES = 256

Key = tuple[str, str, Games]


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Summaries:
    """`Store.player_summary` behind a cache and a limit on how many run at once.

    An entry is valid while the player's `updated_at`, which every stored page
    changes, is what it was before the summary was computed; the check is one
    lookup by key, so it holds for every hub sharing the database.
    """

    def __init__(self, store: Store, concurrency: int, entries: int = CACHE_ENTRIES) -> None:
        self.store = store
        self._turns = asyncio.Semaphore(concurrency)
        self._entries = entries
        self._cache: OrderedDict[Key, tuple[float | None, PlayerSummary]] = OrderedDict()
        self._keys: dict[Key, _KeyLock] = {}

    async def get(self, source: str, username: str, games: Games) -> PlayerSummary:
        key = (source, username, games)
        summary = await self._fresh(key)
        if summary is not None:
            return summary
        # Requests for one player wait for the one computing it, then find it cached.
        async with self._one_at_a_time(key):
            summary = await self._fresh(key)
            if summary is None:
                # Read before the summary: a page stored meanwhile makes the entry
                # stale (computed again next time), never wrongly fresh.
                version = await self.store.player_updated_at(source, username)
                async with self._turns:
                    summary = await self.store.player_summary(source, username, games)
                self._keep(key, version, summary)
        return summary

    async def _fresh(self, key: Key) -> PlayerSummary | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        version = await self.store.player_updated_at(key[0], key[1])
        # Looked up again: the entry may have been replaced during the await.
        entry = self._cache.get(key)
        if entry is None or entry[0] != version:
            return None
        self._cache.move_to_end(key)
        return entry[1]

    def _keep(self, key: Key, version: float | None, summary: PlayerSummary) -> None:
        self._cache[key] = (version, summary)
        self._cache.move_to_end(key)
        while len(self._cache) > self._entries:
            self._cache.popitem(last=False)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: Key) -> AsyncIterator[None]:
        held = self._keys.get(key)
        if held is None:
            held = self._keys[key] = _KeyLock()
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._keys[key]
