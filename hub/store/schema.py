"""The versioned schema: one ordered list of SQL steps per dialect, and the upgrade plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

# Created outside the numbered steps so that version 0 can be recorded before any of them.
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"

# Step N (1-based) takes a database from version N-1 to N. Append only: never edit a
# released step, add a new one. Both dialects must always have the same number of steps.
#
# player_games has no foreign key to games: store_page, the only writer, inserts the game
# first in the same transaction, and PostgreSQL's per-row check cost ~30% of page speed.
SQLITE_STEPS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE games (
            source        TEXT    NOT NULL,
            game_id       TEXT    NOT NULL,
            end_time      INTEGER NOT NULL,
            time_class    TEXT    NOT NULL,
            rated         INTEGER NOT NULL CHECK (rated IN (0, 1)),
            white         TEXT    NOT NULL,
            black         TEXT    NOT NULL,
            white_rating  INTEGER,
            black_rating  INTEGER,
            white_result  TEXT    NOT NULL,
            black_result  TEXT    NOT NULL,
            pgn           TEXT,
            PRIMARY KEY (source, game_id)
        )
        """,
        """
        CREATE TABLE player_games (
            source         TEXT    NOT NULL,
            username       TEXT    NOT NULL,
            game_id        TEXT    NOT NULL,
            color          TEXT    NOT NULL CHECK (color IN ('white', 'black')),
            outcome        TEXT    NOT NULL CHECK (outcome IN ('win', 'draw', 'loss')),
            end_time       INTEGER NOT NULL,
            time_class     TEXT    NOT NULL,
            player_rating  INTEGER,
            PRIMARY KEY (source, username, game_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX player_games_by_time ON player_games (source, username, end_time)",
        """
        CREATE TABLE imports (
            id           TEXT    PRIMARY KEY,
            source       TEXT    NOT NULL,
            username     TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            created_at   REAL    NOT NULL,
            started_at   REAL,
            finished_at  REAL,
            pages        INTEGER NOT NULL DEFAULT 0,
            pages_total  INTEGER,
            games        INTEGER NOT NULL DEFAULT 0,
            error        TEXT,
            message      TEXT
        )
        """,
        "CREATE INDEX imports_by_player ON imports (source, username, created_at)",
        """
        CREATE TABLE players (
            source      TEXT NOT NULL,
            username    TEXT NOT NULL,
            cursor      TEXT,
            updated_at  REAL NOT NULL,
            PRIMARY KEY (source, username)
        )
        """,
    ),
)

# Keys are opaque ids compared for equality only: byte order ("C") is the fastest index
# order and does not depend on the server's locale.
POSTGRES_STEPS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE games (
            source        TEXT    COLLATE "C" NOT NULL,
            game_id       TEXT    COLLATE "C" NOT NULL,
            end_time      BIGINT  NOT NULL,
            time_class    TEXT    NOT NULL,
            rated         BOOLEAN NOT NULL,
            white         TEXT    NOT NULL,
            black         TEXT    NOT NULL,
            white_rating  INTEGER,
            black_rating  INTEGER,
            white_result  TEXT    NOT NULL,
            black_result  TEXT    NOT NULL,
            pgn           TEXT,
            PRIMARY KEY (source, game_id)
        )
        """,
        """
        CREATE TABLE player_games (
            source         TEXT    COLLATE "C" NOT NULL,
            username       TEXT    COLLATE "C" NOT NULL,
            game_id        TEXT    COLLATE "C" NOT NULL,
            color          TEXT    NOT NULL CHECK (color IN ('white', 'black')),
            outcome        TEXT    NOT NULL CHECK (outcome IN ('win', 'draw', 'loss')),
            end_time       BIGINT  NOT NULL,
            time_class     TEXT    NOT NULL,
            player_rating  INTEGER,
            PRIMARY KEY (source, username, game_id)
        )
        """,
        "CREATE INDEX player_games_by_time ON player_games (source, username, end_time)",
        """
        CREATE TABLE imports (
            id           TEXT    PRIMARY KEY,
            source       TEXT    NOT NULL,
            username     TEXT    NOT NULL,
            state        TEXT    NOT NULL,
            created_at   DOUBLE PRECISION NOT NULL,
            started_at   DOUBLE PRECISION,
            finished_at  DOUBLE PRECISION,
            pages        INTEGER NOT NULL DEFAULT 0,
            pages_total  INTEGER,
            games        INTEGER NOT NULL DEFAULT 0,
            error        TEXT,
            message      TEXT
        )
        """,
        "CREATE INDEX imports_by_player ON imports (source, username, created_at)",
        """
        CREATE TABLE players (
            source      TEXT NOT NULL,
            username    TEXT NOT NULL,
            cursor      TEXT,
            updated_at  DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, username)
        )
        """,
    ),
)


# Step 2: the shared line of a fleet (hub.queue.postgres). Tickets are filed by digest.
# seq is assigned by the slot manager under the admission lock, not by the database.
def _queue_step(boolean: str, false: str) -> tuple[str, ...]:
    return (
        f"""
        CREATE TABLE queue_entries (
            import_id    TEXT PRIMARY KEY,
            source       TEXT NOT NULL,
            username     TEXT NOT NULL,
            seq          BIGINT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('waiting', 'running')),
            joined_at    DOUBLE PRECISION NOT NULL,
            started_at   DOUBLE PRECISION,
            owner        TEXT NOT NULL,
            pages        INTEGER NOT NULL DEFAULT 0,
            pages_total  INTEGER,
            games        INTEGER NOT NULL DEFAULT 0,
            size         INTEGER,
            stopping     {boolean} NOT NULL DEFAULT {false},
            lease_owner  TEXT,
            lease_until  DOUBLE PRECISION,
            UNIQUE (source, username)
        )
        """,
        """
        CREATE TABLE queue_tickets (
            ticket     TEXT PRIMARY KEY,
            import_id  TEXT NOT NULL REFERENCES queue_entries (import_id) ON DELETE CASCADE,
            seen_at    DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX queue_tickets_by_import ON queue_tickets (import_id)",
    )


SQLITE_STEPS += (_queue_step("INTEGER", "0"),)
POSTGRES_STEPS += (_queue_step("BOOLEAN", "FALSE"),)


# Step 3: receipts. What each game is (variant, start position) and where the site files it
# (listed_ms), the ledger of units read per player, the lichess games still in progress, and
# the site's own count at the end of the last import. skipped and unreadable hold JSON.
def _receipts_step(big: str, real: str) -> tuple[str, ...]:
    return (
        "ALTER TABLE games ADD COLUMN variant TEXT NOT NULL DEFAULT 'standard'",
        "ALTER TABLE games ADD COLUMN initial_fen TEXT",
        f"ALTER TABLE games ADD COLUMN listed_ms {big}",
        f"""
        CREATE TABLE ledger (
            source         TEXT    NOT NULL,
            username       TEXT    NOT NULL,
            unit           TEXT    NOT NULL,
            state          TEXT    NOT NULL
                           CHECK (state IN ('stored', 'not_modified', 'failed', 'pending')),
            status         INTEGER,
            etag           TEXT,
            last_modified  TEXT,
            games_seen     INTEGER NOT NULL DEFAULT 0,
            games_new      INTEGER NOT NULL DEFAULT 0,
            games_known    INTEGER NOT NULL DEFAULT 0,
            skipped        TEXT    NOT NULL DEFAULT '{{}}',
            unreadable     TEXT    NOT NULL DEFAULT '[]',
            first_ms       {big},
            last_ms        {big},
            error          TEXT,
            fetched_at     {real} NOT NULL,
            PRIMARY KEY (source, username, unit)
        )
        """,
        f"""
        CREATE TABLE ongoing (
            source      TEXT NOT NULL,
            username    TEXT NOT NULL,
            game_id     TEXT NOT NULL,
            created_ms  {big} NOT NULL,
            PRIMARY KEY (source, username, game_id)
        )
        """,
        "ALTER TABLE players ADD COLUMN site_count INTEGER",
        f"ALTER TABLE players ADD COLUMN site_checked_at {real}",
    )


SQLITE_STEPS += (_receipts_step("INTEGER", "REAL"),)
POSTGRES_STEPS += (_receipts_step("BIGINT", "DOUBLE PRECISION"),)

# Step 4: the caps on tickets per address are the core's, so a fleet's line keeps addresses.
_ADDRESS_STEP = ("ALTER TABLE queue_tickets ADD COLUMN address TEXT NOT NULL DEFAULT ''",)
SQLITE_STEPS += (_ADDRESS_STEP,)
POSTGRES_STEPS += (_ADDRESS_STEP,)

# Step 4: what the operator set on the line (caps, pauses), one JSON row that outlives
# restarts; in a fleet every replica reads it with the line.
_CONTROLS_STEP = (
    """
    CREATE TABLE queue_controls (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        controls    TEXT NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL
    )
    """,
)
SQLITE_STEPS += (_CONTROLS_STEP,)
POSTGRES_STEPS += (_CONTROLS_STEP,)

STEPS: dict[Dialect, tuple[tuple[str, ...], ...]] = {
    "sqlite": SQLITE_STEPS,
    "postgres": POSTGRES_STEPS,
}

LATEST_VERSION = len(SQLITE_STEPS)
assert len(POSTGRES_STEPS) == LATEST_VERSION, "dialects disagree on the schema version"


class SchemaError(RuntimeError):
    """The database schema cannot be used by this version of the hub."""


def current_version(rows: Sequence[Sequence[object]]) -> int | None:
    """Read the rows of `schema_version`: None when unrecorded, else the one version."""
    if not rows:
        return None
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise SchemaError(f"schema_version must hold exactly one integer, found {list(rows)!r}")
    return rows[0][0]


def pending(
    dialect: Dialect, version: int, target: int = LATEST_VERSION
) -> list[tuple[int, tuple[str, ...]]]:
    """The steps that take `version` to `target`, as (new version, statements) pairs."""
    if version > LATEST_VERSION:
        raise SchemaError(
            f"database schema version {version} is newer than this hub ({LATEST_VERSION}); "
            "upgrade the hub"
        )
    if version < 0:
        raise SchemaError(f"database schema version {version} is invalid")
    steps = STEPS[dialect]
    return [(n, steps[n - 1]) for n in range(version + 1, target + 1)]
