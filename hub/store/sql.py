"""Queries shared by the SQL backends, run through the part of `databases` they share."""

from __future__ import annotations

import abc
import bisect
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Protocol

import msgspec

from hub.store.base import (
    Comparable,
    GameRow,
    Games,
    ImportRecord,
    Ledger,
    LedgerWrite,
    MonthCount,
    PlayerSummary,
    RatingPoint,
    Record,
    Store,
    Unit,
)

# The analytics page draws every point; beyond this it gets heavy and no clearer.
MAX_RATING_POINTS = 2000

GAME_COLUMNS = (
    "source", "game_id", "end_time", "time_class", "rated", "white", "black",
    "white_rating", "black_rating", "white_result", "black_result", "pgn",
    "variant", "initial_fen", "listed_ms",
)  # fmt: skip
PLAYER_GAME_COLUMNS = (
    "source", "username", "game_id", "color", "outcome", "end_time", "time_class",
    "player_rating",
)  # fmt: skip
IMPORT_COLUMNS = (
    "id", "source", "username", "state", "created_at", "started_at", "finished_at",
    "pages", "pages_total", "games", "error", "message",
)  # fmt: skip

ImportTuple = tuple[
    str, str, str, str, float, float | None, float | None, int, int | None, int, str | None,
    str | None,
]  # fmt: skip
LEDGER_COLUMNS = (
    "source", "username", "unit", "state", "status", "etag", "last_modified", "games_seen",
    "games_new", "games_known", "skipped", "unreadable", "first_ms", "last_ms", "error",
    "fetched_at",
)  # fmt: skip

GameTuple = tuple[
    str, str, int, str, bool, str, str, int | None, int | None, str, str, str | None,
    str, str | None, int | None,
]  # fmt: skip
PlayerGameTuple = tuple[str, str, str, str, str, int, str, int | None]

# A game written again keeps its row, except that rows written before the ledger existed
# learn their variant, start and place in the units.
GAME_CONFLICT = """
    ON CONFLICT (source, game_id) DO UPDATE
       SET variant = excluded.variant, initial_fen = excluded.initial_fen,
           listed_ms = excluded.listed_ms
     WHERE games.listed_ms IS NULL
"""

# "Standard chess from the standard start position", the analytics' default.
_STANDARD = """
    AND EXISTS (
        SELECT 1 FROM games g
         WHERE g.source = player_games.source AND g.game_id = player_games.game_id
           AND g.variant = 'standard' AND g.initial_fen IS NULL
    )
"""

_ENDED_WHERE = "state IN ('done', 'failed', 'cancelled') AND finished_at < :before"
_ENDED = f"SELECT id FROM imports WHERE {_ENDED_WHERE} LIMIT :batch"

_TALLY = """
    SELECT color, time_class, outcome, count(*) AS n
      FROM player_games
     WHERE source = :source AND username = :username {only}
     GROUP BY color, time_class, outcome
"""
_MONTHS = """
    SELECT {month} AS month, count(*) AS n
      FROM player_games
     WHERE source = :source AND username = :username {only}
     GROUP BY 1
     ORDER BY 1
"""
_RATINGS = """
    SELECT end_time, player_rating, time_class
      FROM player_games
     WHERE source = :source AND username = :username AND player_rating IS NOT NULL {only}
     ORDER BY end_time DESC, game_id DESC
     LIMIT :limit
"""
_WHO = "source = :source AND username = :username"
_LISTED = """
    SELECT g.listed_ms
      FROM player_games pg
      JOIN games g ON g.source = pg.source AND g.game_id = pg.game_id
     WHERE pg.source = :source AND pg.username = :username AND g.listed_ms IS NOT NULL
"""
_UPSERT_SITE_COUNT = """
    INSERT INTO players (source, username, cursor, updated_at, site_count, site_checked_at)
    VALUES (:source, :username, NULL, :now, :count, :now)
    ON CONFLICT (source, username)
    DO UPDATE SET site_count = excluded.site_count, site_checked_at = excluded.site_checked_at
"""


class LedgerSql:
    """The ledger writes of a page, in a backend's own parameter style (`?1` or `$1`)."""

    def __init__(self, mark: str) -> None:
        def numbered(sql: str) -> str:
            return re.sub(r"#(\d+)", lambda m: f"{mark}{m[1]}", sql)

        marks = ", ".join(f"#{i}" for i in range(1, len(LEDGER_COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in LEDGER_COLUMNS[3:])
        self.drop = numbered("DELETE FROM ledger WHERE source = #1 AND username = #2 AND unit = #3")
        self.pending = numbered(
            "INSERT INTO ledger (source, username, unit, state, fetched_at) "
            "VALUES (#1, #2, #3, 'pending', #4) ON CONFLICT (source, username, unit) DO NOTHING"
        )
        self.upsert = numbered(
            f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT (source, username, unit) DO UPDATE SET {updates}"
        )
        self.ongoing_add = numbered(
            "INSERT INTO ongoing (source, username, game_id, created_ms) VALUES (#1, #2, #3, #4) "
            "ON CONFLICT (source, username, game_id) DO NOTHING"
        )
        self.ongoing_remove = numbered(
            "DELETE FROM ongoing WHERE source = #1 AND username = #2 AND game_id = #3"
        )


# Runs one statement for each parameter tuple, inside the page's transaction.
ExecuteMany = Callable[[str, list[tuple[Any, ...]]], Awaitable[Any]]


async def write_ledger(
    many: ExecuteMany,
    sql: LedgerSql,
    who: tuple[str, str],
    ledger: LedgerWrite,
    rows: int,
    new: int,
) -> None:
    """Apply a page's ledger changes; `rows` stored of which `new` were new."""
    now = time.time()
    if ledger.drop:
        await many(sql.drop, [(*who, unit) for unit in ledger.drop])
    if ledger.unit is not None:
        await many(sql.upsert, [unit_tuple(who, ledger.unit, rows, new, now)])
    if ledger.pending:
        await many(sql.pending, [(*who, unit, now) for unit in ledger.pending])
    if ledger.ongoing_remove:
        await many(sql.ongoing_remove, [(*who, game) for game in ledger.ongoing_remove])
    if ledger.ongoing_add:
        await many(sql.ongoing_add, [(*who, game, ms) for game, ms in ledger.ongoing_add])


def unit_tuple(
    who: tuple[str, str], unit: Unit, rows: int, new: int, now: float
) -> tuple[Any, ...]:
    """One ledger row; a unit read whole counts its new and known games from the page."""
    games_new, games_known = unit.games_new, unit.games_known
    if unit.state == "stored":
        games_new, games_known = new, rows - new
    return (
        *who, unit.unit, unit.state, unit.status, unit.etag, unit.last_modified,
        unit.games_seen, games_new, games_known, _json(unit.skipped), _json(unit.unreadable),
        unit.first_ms, unit.last_ms, unit.error, now,
    )  # fmt: skip


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def count_in_ranges(listed: list[int], units: list[Unit]) -> dict[str, int]:
    """Stored games inside each unit's range of `listed_ms`."""
    times = sorted(listed)
    return {
        u.unit: bisect.bisect_right(times, u.last_ms) - bisect.bisect_left(times, u.first_ms)
        for u in units
        if u.first_ms is not None and u.last_ms is not None
    }


def comparable_sql(comparable: Comparable) -> tuple[str, dict[str, Any]]:
    """The count of stored games in the category a site's own count covers."""
    where = ["pg.source = :source", "pg.username = :username"]
    params: dict[str, Any] = {}
    if comparable.rated_only:
        where.append("g.rated = :rated")
        params["rated"] = True
    if comparable.kinds is not None:
        parts: list[str] = []
        for i, (variant, classes) in enumerate(comparable.kinds):
            names = [f":class_{i}_{j}" for j in range(len(classes))]
            params[f"variant_{i}"] = variant
            params.update({name[1:]: c for name, c in zip(names, classes, strict=True)})
            parts.append(f"(g.variant = :variant_{i} AND pg.time_class IN ({', '.join(names)}))")
        where.append(f"({' OR '.join(parts) or 'FALSE'})")
    sql = f"""
        SELECT count(*)
          FROM player_games pg
          JOIN games g ON g.source = pg.source AND g.game_id = pg.game_id
         WHERE {" AND ".join(where)}
    """
    return sql, params


Values = dict[str, Any] | None


class Queries(Protocol):
    """Queries take `:name` parameters and return rows indexable by name and position."""

    async def fetch_all(self, query: str, values: Values = None) -> Sequence[Any]: ...
    async def fetch_one(self, query: str, values: Values = None) -> Any: ...
    async def fetch_val(self, query: str, values: Values = None) -> Any: ...
    async def execute(self, query: str, values: Values = None) -> Any: ...


class Connection(Queries, Protocol):
    """What `SQLStore` calls on one connection (`databases.core.Connection` has it)."""

    def transaction(self, **options: Any) -> AbstractAsyncContextManager[object]: ...


class Database(Queries, Protocol):
    """What `SQLStore` calls on its database: `databases.Database`, or `SQLitePool`."""

    async def connect(self) -> None: ...
    async def disconnect(self) -> None: ...
    def connection(self) -> AbstractAsyncContextManager[Connection]: ...


def import_tuple(record: ImportRecord) -> ImportTuple:
    return (
        record.id, record.source, record.username, record.state, record.created_at,
        record.started_at, record.finished_at, record.pages, record.pages_total, record.games,
        record.error, record.message,
    )  # fmt: skip


def game_tuple(row: GameRow) -> GameTuple:
    return (
        row.source, row.game_id, row.end_time, row.time_class, row.rated, row.white,
        row.black, row.white_rating, row.black_rating, row.white_result, row.black_result,
        row.pgn, row.variant, row.initial_fen, row.listed_ms,
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
    """A `Store` over a `Database`; subclasses add schema and bulk writes."""

    # SQL expression giving "YYYY-MM" (UTC) of player_games.end_time.
    month_sql: ClassVar[str]
    # Options for the read-only transaction that keeps a summary self-consistent.
    snapshot_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, db: Database) -> None:
        self._db = db

    def _writing(self) -> AbstractAsyncContextManager[object]:
        """Held around every write; a backend may serialise writers here."""
        return contextlib.nullcontext()

    async def close(self) -> None:
        await self._db.disconnect()

    async def ping(self) -> None:
        await self._db.fetch_val("SELECT 1")

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

    async def delete_ended_imports(self, before: float, batch: int) -> int:
        # Found without the write lock, then deleted by key: SQLite's writer is not
        # held while a scan looks for them. The condition is checked again on delete.
        rows = await self._db.fetch_all(_ENDED, {"before": before, "batch": batch})
        if not rows:
            return 0
        ids = {f"id{n}": row[0] for n, row in enumerate(rows)}
        marks = ", ".join(f":{name}" for name in ids)
        async with self._writing():
            deleted = await self._db.fetch_all(
                f"DELETE FROM imports WHERE id IN ({marks}) AND {_ENDED_WHERE} RETURNING id",
                {**ids, "before": before},
            )
        return len(deleted)

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

    async def player_updated_at(self, source: str, username: str) -> float | None:
        value: float | None = await self._db.fetch_val(
            "SELECT updated_at FROM players WHERE source = :source AND username = :username",
            {"source": source, "username": username},
        )
        return value

    async def player_summary(
        self, source: str, username: str, games: Games = "standard"
    ) -> PlayerSummary:
        if games not in ("standard", "all"):
            raise ValueError(f"games must be standard or all, not {games!r}")
        who = {"source": source, "username": username}
        only = _STANDARD if games == "standard" else ""
        async with self._db.connection() as conn, conn.transaction(**self.snapshot_options):
            tally = await conn.fetch_all(_TALLY.format(only=only), who)
            months = await conn.fetch_all(_MONTHS.format(month=self.month_sql, only=only), who)
            ratings = await conn.fetch_all(
                _RATINGS.format(only=only), {**who, "limit": MAX_RATING_POINTS}
            )
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

    async def read_ledger(self, source: str, username: str, with_stored: bool = False) -> Ledger:
        """The player's ledger; `with_stored` also counts the games held in each unit."""
        who = {"source": source, "username": username}
        async with self._db.connection() as conn, conn.transaction(**self.snapshot_options):
            rows = await conn.fetch_all(
                f"SELECT {', '.join(LEDGER_COLUMNS[2:])} FROM ledger WHERE {_WHO} ORDER BY unit",
                who,
            )
            ongoing = await conn.fetch_all(
                f"SELECT game_id FROM ongoing WHERE {_WHO} ORDER BY created_ms, game_id", who
            )
            player = await conn.fetch_one(f"SELECT site_count FROM players WHERE {_WHO}", who)
            listed = await conn.fetch_all(_LISTED, who) if with_stored else []
        units = [_unit(row) for row in rows]
        return Ledger(
            units={u.unit: u for u in units},
            ongoing=[row[0] for row in ongoing],
            stored=count_in_ranges([row[0] for row in listed], units),
            site_count=None if player is None else player[0],
            known=player is not None or bool(units),
        )

    async def record_site_count(self, source: str, username: str, count: int | None) -> None:
        values = {"source": source, "username": username, "count": count, "now": time.time()}
        async with self._writing():
            await self._db.execute(_UPSERT_SITE_COUNT, values)

    async def count_comparable(self, source: str, username: str, comparable: Comparable) -> int:
        sql, params = comparable_sql(comparable)
        value = await self._db.fetch_val(sql, {"source": source, "username": username, **params})
        return int(value or 0)

    async def count_ongoing(self, source: str, username: str) -> int:
        value = await self._db.fetch_val(
            f"SELECT count(*) FROM ongoing WHERE {_WHO}", {"source": source, "username": username}
        )
        return int(value or 0)


_skipped_decoder = msgspec.json.Decoder(dict[str, int])
_ids_decoder = msgspec.json.Decoder(list[str])


def _unit(row: Any) -> Unit:
    return Unit(
        unit=row["unit"],
        state=row["state"],
        status=row["status"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        games_seen=row["games_seen"],
        games_new=row["games_new"],
        games_known=row["games_known"],
        skipped=_skipped_decoder.decode(row["skipped"]),
        unreadable=_ids_decoder.decode(row["unreadable"]),
        first_ms=row["first_ms"],
        last_ms=row["last_ms"],
        error=row["error"],
        fetched_at=row["fetched_at"],
    )


def _records(tally: Sequence[Any], key: str) -> dict[str, Record]:
    counts: dict[str, dict[str, int]] = {}
    for row in tally:
        outcome = counts.setdefault(row[key], {"win": 0, "draw": 0, "loss": 0})
        outcome[row["outcome"]] += row["n"]
    return {name: Record(**c) for name, c in counts.items()}
