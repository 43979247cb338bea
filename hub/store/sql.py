"""Queries shared by the SQL backends, run through `databases`."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

from databases import Database
from databases.interfaces import Record as DbRecord

from hub.store.base import (
    GameRow,
    ImportRecord,
    MonthCount,
    PlayerSummary,
    RatingPoint,
    Record,
    Store,
)

# The analytics page draws every point; beyond this it gets heavy and no clearer.
MAX_RATING_POINTS = 2000

GAME_COLUMNS = (
    "source", "game_id", "end_time", "time_class", "rated", "white", "black",
    "white_rating", "black_rating", "white_result", "black_result", "pgn",
)  # fmt: skip
PLAYER_GAME_COLUMNS = (
    "source", "username", "game_id", "color", "outcome", "end_time", "time_class",
    "player_rating",
)  # fmt: skip
IMPORT_COLUMNS = (
    "id", "source", "username", "state", "created_at", "started_at", "finished_at",
    "pages", "pages_total", "games", "error", "message",
)  # fmt: skip

GameTuple = tuple[str, str, int, str, bool, str, str, int | None, int | None, str, str, str | None]
PlayerGameTuple = tuple[str, str, str, str, str, int, str, int | None]

_TALLY = """
    SELECT color, time_class, outcome, count(*) AS n
      FROM player_games
     WHERE source = :source AND username = :username
     GROUP BY color, time_class, outcome
"""
_MONTHS = """
    SELECT {month} AS month, count(*) AS n
      FROM player_games
     WHERE source = :source AND username = :username
     GROUP BY 1
     ORDER BY 1
"""
_RATINGS = """
    SELECT end_time, player_rating, time_class
      FROM player_games
     WHERE source = :source AND username = :username AND player_rating IS NOT NULL
     ORDER BY end_time DESC, game_id DESC
     LIMIT :limit
"""


def game_tuple(row: GameRow) -> GameTuple:
    return (
        row.source, row.game_id, row.end_time, row.time_class, row.rated, row.white,
        row.black, row.white_rating, row.black_rating, row.white_result, row.black_result,
        row.pgn,
    )  # fmt: skip


def player_rating(row: GameRow) -> int | None:
    """The rating of the player the row was imported for."""
    return row.white_rating if row.color == "white" else row.black_rating


def player_game_tuple(row: GameRow) -> PlayerGameTuple:
    return (
        row.source, row.username, row.game_id, row.color, row.outcome, row.end_time,
        row.time_class, player_rating(row),
    )  # fmt: skip


def check_rows(source: str, username: str, rows: Sequence[GameRow]) -> None:
    """Refuse a page whose rows belong to another player: counters would lie."""
    for row in rows:
        if row.source != source or row.username != username:
            raise ValueError(
                f"row {row.game_id!r} is for {row.source}/{row.username}, not {source}/{username}"
            )


class SQLStore(Store, abc.ABC):
    """A `Store` over a `databases.Database`; subclasses add schema and bulk writes."""

    # SQL expression giving "YYYY-MM" (UTC) of player_games.end_time.
    month_sql: ClassVar[str]
    # Options for the read-only transaction that keeps a summary self-consistent.
    snapshot_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, url: str, **options: Any) -> None:
        self._db = Database(url, **options)

    def _writing(self) -> AbstractAsyncContextManager[object]:
        """Held around every write; a backend may serialise writers here."""
        return contextlib.nullcontext()

    async def close(self) -> None:
        await self._db.disconnect()

    async def ping(self) -> None:
        await self._db.fetch_val("SELECT 1")

    async def create_import(self, record: ImportRecord) -> None:
        names = ", ".join(IMPORT_COLUMNS)
        marks = ", ".join(f":{c}" for c in IMPORT_COLUMNS)
        values = {c: getattr(record, c) for c in IMPORT_COLUMNS}
        async with self._writing():
            await self._db.execute(f"INSERT INTO imports ({names}) VALUES ({marks})", values)

    async def mark_running(self, import_id: str, started_at: float) -> None:
        async with self._writing():
            await self._db.execute(
                "UPDATE imports SET state = 'running', started_at = :started_at WHERE id = :id",
                {"id": import_id, "started_at": started_at},
            )

    async def interrupt_unfinished(self, finished_at: float) -> int:
        async with self._writing():
            count = await self._db.fetch_val(
                "SELECT COUNT(*) FROM imports WHERE state IN ('queued', 'running')"
            )
            await self._db.execute(
                """
                UPDATE imports
                   SET state = 'failed', finished_at = :finished_at, error = 'interrupted',
                       message = 'The hub restarted before this import ended.'
                 WHERE state IN ('queued', 'running')
                """,
                {"finished_at": finished_at},
            )
        return int(count or 0)

    async def finish_import(
        self,
        import_id: str,
        state: str,
        finished_at: float,
        error: str | None = None,
        message: str | None = None,
    ) -> None:
        async with self._writing():
            await self._db.execute(
                """
                UPDATE imports
                   SET state = :state, finished_at = :finished_at,
                       error = :error, message = :message
                 WHERE id = :id
                """,
                {
                    "id": import_id,
                    "state": state,
                    "finished_at": finished_at,
                    "error": error,
                    "message": message,
                },
            )

    async def requeue_import(self, import_id: str) -> None:
        async with self._writing():
            await self._db.execute(
                """
                UPDATE imports
                   SET state = 'queued', started_at = NULL, finished_at = NULL,
                       error = NULL, message = NULL
                 WHERE id = :id
                """,
                {"id": import_id},
            )

    async def load_controls(self) -> str | None:
        value: str | None = await self._db.fetch_val(
            "SELECT controls FROM queue_controls WHERE id = 1"
        )
        return value

    async def save_controls(self, controls: str, updated_at: float) -> None:
        async with self._writing():
            await self._db.execute(
                """
                INSERT INTO queue_controls (id, controls, updated_at)
                VALUES (1, :controls, :updated_at)
                ON CONFLICT (id)
                DO UPDATE SET controls = excluded.controls, updated_at = excluded.updated_at
                """,
                {"controls": controls, "updated_at": updated_at},
            )

    async def get_import(self, import_id: str) -> ImportRecord | None:
        row = await self._db.fetch_one(
            f"SELECT {', '.join(IMPORT_COLUMNS)} FROM imports WHERE id = :id", {"id": import_id}
        )
        if row is None:
            return None
        return ImportRecord(**{c: row[c] for c in IMPORT_COLUMNS})

    async def get_cursor(self, source: str, username: str) -> str | None:
        value: str | None = await self._db.fetch_val(
            "SELECT cursor FROM players WHERE source = :source AND username = :username",
            {"source": source, "username": username},
        )
        return value

    async def count_games(self, source: str, username: str) -> int:
        value: int = await self._db.fetch_val(
            "SELECT count(*) FROM player_games WHERE source = :source AND username = :username",
            {"source": source, "username": username},
        )
        return value

    async def game_ids(self, source: str, username: str) -> list[str]:
        rows = await self._db.fetch_all(
            """
            SELECT game_id FROM player_games
             WHERE source = :source AND username = :username
             ORDER BY end_time, game_id
            """,
            {"source": source, "username": username},
        )
        return [row[0] for row in rows]

    async def player_summary(self, source: str, username: str) -> PlayerSummary:
        who = {"source": source, "username": username}
        async with self._db.connection() as conn, conn.transaction(**self.snapshot_options):
            tally = await conn.fetch_all(_TALLY, who)
            months = await conn.fetch_all(_MONTHS.format(month=self.month_sql), who)
            ratings = await conn.fetch_all(_RATINGS, {**who, "limit": MAX_RATING_POINTS})
        colors = _records(tally, "color")
        return PlayerSummary(
            source=source,
            username=username,
            games=sum(row["n"] for row in tally),
            by_month=[MonthCount(row["month"], row["n"]) for row in months],
            by_color={c: colors.get(c, Record()) for c in ("white", "black")},
            by_time_class=dict(sorted(_records(tally, "time_class").items())),
            rating=[
                RatingPoint(r["end_time"], r["player_rating"], r["time_class"])
                for r in reversed(ratings)
            ],
        )


def _records(tally: Sequence[DbRecord], key: str) -> dict[str, Record]:
    counts: dict[str, dict[str, int]] = {}
    for row in tally:
        outcome = counts.setdefault(row[key], {"win": 0, "draw": 0, "loss": 0})
        outcome[row["outcome"]] += row["n"]
    return {name: Record(**c) for name, c in counts.items()}
