"""Choosing a store by URL, and planning schema upgrades, without touching a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.store import DEFAULT_URL, GameRow, PostgresStore, SQLiteStore, Store, open_store
from hub.store.schema import (
    LATEST_VERSION,
    POSTGRES_STEPS,
    SQLITE_STEPS,
    SchemaError,
    current_version,
    pending,
)
from hub.store.sql import player_game_tuple


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (DEFAULT_URL, "hub.db"),
        ("sqlite:///data/hub.db", "data/hub.db"),
        ("sqlite:////var/lib/hub/hub.db", "/var/lib/hub/hub.db"),
        ("sqlite+aiosqlite:///./hub.db", "hub.db"),
        ("SQLite:///my%20games.db", "my games.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == Path(path)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://hub:secret@db:5432/hub",
        "postgres://hub@db/hub",
        "postgresql+asyncpg://hub@db/hub?min_size=2",
    ],
)
def test_postgres_urls(url: str) -> None:
    assert isinstance(open_store(url), PostgresStore)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://hub:secret@db/hub",
        "hub.db",
        "",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite://host/hub.db",
        "sqlite:///hub.db?mode=ro",
        "postgresql+psycopg://hub:secret@db/hub",
    ],
)
def test_unsupported_urls_are_refused_without_leaking_secrets(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(url)
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


SCHEMES = st.sampled_from(["", "sqlite://", "sqlite:///", "sqlite+aiosqlite:///", "postgres://"])


@given(SCHEMES, st.text())
def test_any_string_gives_a_store_or_a_value_error(scheme: str, rest: str) -> None:
    try:
        store = open_store(scheme + rest)
    except ValueError:
        return
    assert isinstance(store, Store)


def test_dialects_agree_on_the_number_of_steps() -> None:
    assert len(SQLITE_STEPS) == len(POSTGRES_STEPS) == LATEST_VERSION >= 1


def test_plan_from_empty_applies_every_step_in_order() -> None:
    plan = pending("sqlite", 0)
    assert [version for version, _ in plan] == list(range(1, LATEST_VERSION + 1))
    assert pending("postgres", LATEST_VERSION) == []


def test_newer_database_is_refused_with_both_versions() -> None:
    with pytest.raises(SchemaError) as caught:
        pending("postgres", LATEST_VERSION + 2)
    assert str(caught.value) == (
        f"database schema version {LATEST_VERSION + 2} is newer than this hub "
        f"({LATEST_VERSION}); upgrade the hub"
    )
    assert isinstance(caught.value, RuntimeError)


@pytest.mark.parametrize(
    ("rows", "expected"), [([], None), ([(3,)], 3), ([(0,)], 0)], ids=["none", "three", "zero"]
)
def test_current_version(rows: list[tuple[object, ...]], expected: int | None) -> None:
    assert current_version(rows) == expected


@pytest.mark.parametrize("rows", [[(1,), (2,)], [("1",)], [(None,)]])
def test_corrupt_version_table_is_refused(rows: list[tuple[object, ...]]) -> None:
    with pytest.raises(SchemaError, match="exactly one integer"):
        current_version(rows)


@pytest.mark.parametrize(
    ("username", "color", "rating"), [("alice", "white", 1500), ("bob", "black", 1400)]
)
def test_player_rating_is_the_players_own(username: str, color: str, rating: int) -> None:
    row = GameRow(
        source="lichess", game_id="g", username=username, end_time=0, time_class="blitz",
        rated=True, white="alice", black="bob", white_rating=1500, black_rating=1400,
        white_result="win", black_result="resigned", color=color, outcome="win",
    )  # fmt: skip
    assert player_game_tuple(row)[-1] == rating
