"""The one seam to storage: row types and the interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Literal

import msgspec

# Which games a summary counts: standard chess from the start position, or every game.
Games = Literal["standard", "all"]


class GameRow(msgspec.Struct, frozen=True, kw_only=True):
    """One game as seen by the player it was imported for."""

    source: str  # "chesscom" | "lichess"
    game_id: str  # chess.com uuid (or url), lichess id
    username: str  # lower-cased player the import was for
    end_time: int  # unix seconds
    time_class: str  # bullet, blitz, rapid, classical, daily, correspondence...
    rated: bool
    white: str
    black: str
    white_rating: int | None
    black_rating: int | None
    white_result: str
    black_result: str
    color: str  # the player's colour: "white" | "black"
    outcome: str  # the player's outcome: "win" | "draw" | "loss"
    pgn: str | None = None
    variant: str = "standard"  # chess rules: standard, chess960, crazyhouse...
    initial_fen: str | None = None  # only when the game did not start from the usual position
    # When the site files the game in its units (epoch ms): chess.com the end, lichess the
    # creation. Ledger units are ranges of it, so the store can count what each one holds.
    listed_ms: int | None = None


# Ledger states: a unit read whole, answered 304, given up on after its retries, or not
# read yet (planned, or the part of an export after the last page stored).
UNIT_STATES = ("stored", "not_modified", "failed", "pending")


class Unit(msgspec.Struct, kw_only=True):
    """One ledger row: what the last read of one unit of a player's games found.

    A unit is a chess.com month ("YYYY/MM"), a lichess export window ("<first>..<last>"
    createdAt in ms; "<since>.." for the unread rest of an export) or "ongoing" (the
    lichess games in progress, asked for by id).
    """

    unit: str
    state: str
    status: int | None = None  # HTTP status of the last answer
    etag: str | None = None
    last_modified: str | None = None
    games_seen: int = 0  # games the site listed in the unit, skipped ones included
    games_new: int = 0
    games_known: int = 0  # already stored before this read
    skipped: dict[str, int] = msgspec.field(default_factory=dict)  # reason -> count
    unreadable: list[str] = msgspec.field(default_factory=list)  # ids ("?" if unknown)
    first_ms: int | None = None  # the unit's range of `listed_ms`, when it has one
    last_ms: int | None = None
    error: str | None = None  # why it failed
    fetched_at: float = 0.0


class LedgerWrite(msgspec.Struct, kw_only=True):
    """What one page changes in the ledger, written in the page's own transaction."""

    unit: Unit | None = None  # games_new/games_known of a `stored` unit are counted by the store
    pending: list[str] = msgspec.field(default_factory=list)  # mark pending unless recorded
    drop: list[str] = msgspec.field(default_factory=list)  # units this page supersedes
    ongoing_add: list[tuple[str, int]] = msgspec.field(default_factory=list)  # (id, created ms)
    ongoing_remove: list[str] = msgspec.field(default_factory=list)


class Ledger(msgspec.Struct, kw_only=True):
    """A player's ledger as an import starts: units, games in progress, the site's count."""

    units: dict[str, Unit] = msgspec.field(default_factory=dict)
    ongoing: list[str] = msgspec.field(default_factory=list)  # ids of games in progress
    stored: dict[str, int] = msgspec.field(default_factory=dict)  # games held in each range
    site_count: int | None = None
    known: bool = False  # any trace of the player: a cursor, a unit or a count

    def open_units(self) -> list[str]:
        """Units without an end: the unread rest of an export."""
        return [u for u in self.units if u.endswith("..")]


class Comparable(msgspec.Struct, frozen=True, kw_only=True):
    """The games a site's own count covers, so that both sides count the same thing."""

    site_what: str
    stored_what: str
    rated_only: bool = False
    # (variant, time classes) pairs counted; None counts every variant and class.
    kinds: tuple[tuple[str, tuple[str, ...]], ...] | None = None


class ImportRecord(msgspec.Struct, kw_only=True):
    """The durable trace of one import."""

    id: str
    source: str
    username: str
    state: str  # queued | running | done | failed | cancelled
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    pages: int = 0
    pages_total: int | None = None
    games: int = 0  # new games stored by this import
    error: str | None = None  # failure code
    message: str | None = None


class Record(msgspec.Struct, frozen=True):
    """Wins, draws and losses."""

    win: int = 0
    draw: int = 0
    loss: int = 0


class MonthCount(msgspec.Struct, frozen=True):
    month: str  # "YYYY-MM"
    games: int


class RatingPoint(msgspec.Struct, frozen=True):
    end_time: int
    rating: int
    time_class: str


class PlayerSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What the analytics page charts for one player."""

    source: str
    username: str
    games: int
    by_month: list[MonthCount]  # ascending
    by_color: dict[str, Record]  # "white", "black"
    by_time_class: dict[str, Record]
    rating: list[RatingPoint]  # ascending end_time; the player's own rating


class Store(abc.ABC):
    """Schema and queries; one subclass per database."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the pool and create or upgrade the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""

    def is_unavailable(self, exc: BaseException) -> bool:
        """True when the database is away or busy, not when a query is wrong.

        An error raised while handling such a failure counts too: a transaction
        cut off mid-way fails again on its way out, on the dead connection.
        """
        seen: BaseException | None = exc
        for _ in range(8):
            if seen is None:
                break
            if self._unavailable(seen):
                return True
            seen = seen.__cause__ or seen.__context__
        return False

    def _unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError)  # refused, reset, timed out

    @abc.abstractmethod
    async def create_imports(self, records: Sequence[ImportRecord]) -> None:
        """Insert new imports in one transaction: all of them, or none if it raises."""

    async def create_import(self, record: ImportRecord) -> None:
        await self.create_imports([record])

    @abc.abstractmethod
    async def delete_ended_imports(self, before: float, batch: int) -> int:
        """Delete up to `batch` imports that ended (done, failed, cancelled) before `before`.

        Returns how many were deleted. Games, players and cursors are never deleted.
        """

    @abc.abstractmethod
    async def mark_running(self, import_id: str, started_at: float) -> None: ...

    @abc.abstractmethod
    async def finish_import(
        self,
        import_id: str,
        state: str,
        finished_at: float,
        error: str | None = None,
        message: str | None = None,
    ) -> None: ...

    @abc.abstractmethod
    async def get_import(self, import_id: str) -> ImportRecord | None: ...

    @abc.abstractmethod
    async def interrupt_unfinished(self, finished_at: float) -> int:
        """Mark imports left queued or running by a stopped process as interrupted.

        Only a hub whose line lives in its own process may call this at start-up.
        """

    @abc.abstractmethod
    async def requeue_import(self, import_id: str) -> None:
        """The import went back to the line (its upstream stopped answering): queued again."""

    @abc.abstractmethod
    async def load_controls(self) -> str | None:
        """The operator's saved settings of the line (a JSON document), if any."""

    @abc.abstractmethod
    async def save_controls(self, controls: str, updated_at: float) -> None: ...

    @abc.abstractmethod
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
        """Store one page in one transaction and return how many games were new.

        In the same transaction: the games, the import's page and game counters,
        the player's cursor (when given) and the ledger rows the page describes.
        A page is stored whole or not at all.
        """

    @abc.abstractmethod
    async def get_cursor(self, source: str, username: str) -> str | None: ...

    @abc.abstractmethod
    async def count_games(self, source: str, username: str) -> int: ...

    @abc.abstractmethod
    async def game_ids(self, source: str, username: str) -> list[str]: ...

    @abc.abstractmethod
    async def player_updated_at(self, source: str, username: str) -> float | None:
        """When a page of the player was last stored; None if none ever was.

        Stored with every page, so any process can tell that a summary it
        computed before that page is stale, with one lookup by key.
        """

    @abc.abstractmethod
    async def player_summary(
        self, source: str, username: str, games: Games = "standard"
    ) -> PlayerSummary: ...

    @abc.abstractmethod
    async def read_ledger(self, source: str, username: str, with_stored: bool = False) -> Ledger:
        """The player's ledger; `with_stored` also counts the games held in each unit."""

    @abc.abstractmethod
    async def record_site_count(self, source: str, username: str, count: int | None) -> None:
        """Keep what the site counted at the end of an import (None: it would not say)."""

    @abc.abstractmethod
    async def count_comparable(self, source: str, username: str, comparable: Comparable) -> int:
        """Stored games of the player in the category the site's own count covers."""

    @abc.abstractmethod
    async def count_ongoing(self, source: str, username: str) -> int: ...
