"""The one seam to storage: row types and the interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import msgspec


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
    async def create_import(self, record: ImportRecord) -> None: ...

    async def create_imports(self, records: Sequence[ImportRecord]) -> None:
        """Record many new imports at once."""
        for record in records:
            await self.create_import(record)

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
    ) -> int:
        """Store one page in one transaction and return how many games were new.

        In the same transaction: the games, the import's page and game counters,
        and the player's cursor (when given). A page is stored whole or not at all.
        """

    @abc.abstractmethod
    async def get_cursor(self, source: str, username: str) -> str | None: ...

    @abc.abstractmethod
    async def count_games(self, source: str, username: str) -> int: ...

    @abc.abstractmethod
    async def game_ids(self, source: str, username: str) -> list[str]: ...

    @abc.abstractmethod
    async def player_summary(self, source: str, username: str) -> PlayerSummary: ...
