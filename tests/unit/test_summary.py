"""The summary cache and its turns, with a fake store."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from hub.store import PlayerSummary, Store
from hub.store.base import Games, Record
from hub.summary import Summaries


class FakeStore:
    """Versions set by the test; summaries counted, failing or held on request."""

    def __init__(self) -> None:
        self.versions: dict[str, float] = {}
        self.computed: list[tuple[str, Games]] = []
        self.fail: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def player_updated_at(self, source: str, username: str) -> float | None:
        return self.versions.get(username)

    async def player_summary(self, source: str, username: str, games: Games) -> PlayerSummary:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.computed.append((username, games))
        return PlayerSummary(
            source=source,
            username=username,
            games=len(self.computed),
            by_month=[],
            by_color={"white": Record(), "black": Record()},
            by_time_class={},
            rating=[],
        )


def summaries(store: FakeStore, concurrency: int = 2, entries: int = 8) -> Summaries:
    return Summaries(cast(Store, store), concurrency, entries)


async def test_a_new_version_computes_again() -> None:
    store = FakeStore()
    cache = summaries(store)
    first = await cache.get("lichess", "a", "standard")
    assert await cache.get("lichess", "a", "standard") is first
    store.versions["a"] = 1.0
    assert await cache.get("lichess", "a", "standard") is not first
    assert store.computed == [("a", "standard"), ("a", "standard")]


async def test_the_least_recently_asked_leaves_first() -> None:
    store = FakeStore()
    cache = summaries(store, entries=2)
    for name in ("a", "b", "a", "c"):  # "b" is the least recently asked when "c" comes
        await cache.get("lichess", name, "all")
    await cache.get("lichess", "a", "all")
    await cache.get("lichess", "b", "all")
    assert [name for name, _ in store.computed] == ["a", "b", "c", "b"]


async def test_a_failed_summary_fails_its_request_only() -> None:
    store = FakeStore()
    cache = summaries(store, concurrency=1)
    store.fail = OSError("database away")
    with pytest.raises(OSError, match="database away"):
        await cache.get("lichess", "a", "standard")
    store.fail = None
    # Its turn and its player's lock were given back.
    assert (await cache.get("lichess", "a", "standard")).username == "a"
    assert (await cache.get("lichess", "b", "standard")).username == "b"


async def test_cancelled_waiters_leave_nothing_behind() -> None:
    store = FakeStore()
    cache = summaries(store, concurrency=1)
    store.gate.clear()
    asks = [asyncio.create_task(cache.get("lichess", f"p{n % 3}", "standard")) for n in range(9)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    for task in asks[::2]:
        task.cancel()
    store.gate.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    for n, result in enumerate(results):
        if n % 2:
            assert isinstance(result, PlayerSummary) and result.username == f"p{n % 3}"
        else:
            assert isinstance(result, asyncio.CancelledError)
    assert cache._keys == {}
    assert await cache.get("lichess", "p9", "standard")  # a turn is free
