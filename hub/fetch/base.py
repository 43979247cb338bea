"""What every upstream source yields: pages of games, a resumable cursor and a size probe."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

import msgspec

from hub.store.base import GameRow

# (reason, retry_in_s): called before sleeping on a 429 ("rate_limited") or a backoff ("retrying").
WaitCallback = Callable[[str, float], None]


class Page(msgspec.Struct, kw_only=True):
    """One unit of progress, stored in one transaction together with its cursor."""

    rows: list[GameRow]  # de-duplicated within the page
    pages_total: int | None  # best current estimate; never below the pages yielded so far
    cursor: str | None  # opaque; passing it back later resumes after this page


class Source(Protocol):
    """One chess site, seen as a resumable sequence of pages."""

    name: str  # "chesscom" | "lichess"

    async def probe(self, username: str, cursor: str | None) -> int | None:
        """Cheaply estimate how many pages an import from `cursor` will take.

        Raises PlayerNotFound for an unknown player.
        """
        ...

    def pages(
        self, username: str, cursor: str | None, on_wait: WaitCallback | None = None
    ) -> AsyncIterator[Page]:
        """Yield the player's games after `cursor`, oldest first, one page at a time.

        Close the iterator (`aclose`) when stopping early: a lichess export holds
        the upstream's only stream slot until then.
        """
        ...
