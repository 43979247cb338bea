"""What every upstream source yields: pages of games, a resumable cursor and a size probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from hub.errors import PlayerNotFound
from hub.store.base import Comparable, GameRow, Ledger, LedgerWrite, Unit

T = TypeVar("T")

# (reason, retry_in_s): called before sleeping on a 429 ("rate_limited") or a backoff ("retrying").
WaitCallback = Callable[[str, float], None]


class Page(msgspec.Struct, kw_only=True):
    """One unit of progress, stored in one transaction together with its cursor."""

    rows: list[GameRow]  # de-duplicated within the page
    pages_total: int | None  # best current estimate; never below the pages yielded so far
    cursor: str | None  # opaque; passing it back later resumes after this page
    ledger: LedgerWrite | None = None  # the ledger rows this page describes


class Source(Protocol):
    """One chess site, seen as a resumable sequence of pages."""

    name: str  # "chesscom" | "lichess"
    comparable: Comparable  # what the site's own count covers

    async def probe(self, username: str, cursor: str | None) -> int | None:
        """Cheaply estimate how many pages an import from `cursor` will take.

        Raises PlayerNotFound for an unknown player.
        """
        ...

    def pages(
        self,
        username: str,
        cursor: str | None,
        on_wait: WaitCallback | None = None,
        *,
        ledger: Ledger | None = None,
        repair: bool = False,
    ) -> AsyncGenerator[Page, None]:
        """Yield the player's games after `cursor`, oldest first, one page at a time.

        Units the ledger holds as failed or pending are read first. With `repair`,
        only the units that failed, or whose stored count differs from what they
        saw, are read again, in full. Close the iterator (`aclose`) when stopping
        early: a lichess export holds the upstream's only stream slot until then.
        """
        ...

    async def site_count(self, username: str, on_wait: WaitCallback | None = None) -> int | None:
        """The site's own count of the player's games in `comparable`; None if it won't say."""
        ...


# Skips that are not holes: a game in progress is not missing, and a game of someone else
# is not the player's. Every other reason (an unparseable game) means a game we lack.
EXPECTED_SKIPS = frozenset({"ongoing", "not_the_player", "not_found"})


def expected_stored(unit: Unit) -> int:
    """How many of the unit's games the store should hold after reading it."""
    return unit.games_seen - sum(n for r, n in unit.skipped.items() if r in EXPECTED_SKIPS)


def needs_repair(unit: Unit | None, stored: int | None) -> bool:
    """A repair reads a unit again when it failed, was never read, or the store lacks games."""
    if unit is None or unit.state in ("failed", "pending") or unit.unreadable:
        return True
    if unit.first_ms is None or unit.last_ms is None:  # an empty unit, or one without a range
        return False
    return (stored or 0) != expected_stored(unit)


class Probed(Generic[T]):
    """A size probe's answer, kept briefly for the import that follows it.

    The import may start while the probe is still in flight (a ticket admitted
    at once is probed too); it then awaits the same request instead of sending
    its own, so the upstream is asked once.
    """

    def __init__(self, fresh_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_s = fresh_s
        self.clock = clock
        self._kept: dict[str, tuple[float, asyncio.Future[T]]] = {}

    async def fetch(self, key: str, request: Coroutine[Any, Any, T]) -> T:
        now = self.clock()
        self._kept = {k: v for k, v in self._kept.items() if now - v[0] < self.fresh_s}
        future = asyncio.ensure_future(request)
        self._kept[key] = (now, future)
        return await asyncio.shield(future)

    async def take(self, key: str) -> T | None:
        """The probe's answer, or None when there is none fresh (or it failed transiently)."""
        kept = self._kept.pop(key, None)
        if kept is None or self.clock() - kept[0] >= self.fresh_s:
            return None
        try:
            return await asyncio.shield(kept[1])
        except PlayerNotFound:
            raise
        except Exception:
            return None  # the probe's failure is the probe's; the import asks again
