"""Storage behind one small interface: SQLite by default, PostgreSQL in production."""

from urllib.parse import unquote, urlsplit

from hub.store.base import GameRow, ImportRecord, PlayerSummary, Store
from hub.store.postgres import PostgresStore
from hub.store.schema import SchemaError
from hub.store.sqlite import SQLiteStore

DEFAULT_URL = "sqlite:///./hub.db"

_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for any other database."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SQLITE_SCHEMES:
        return None
    parts = urlsplit("sqlite://" + rest)
    if parts.netloc or parts.query or not parts.path.startswith("/"):
        raise ValueError("SQLite URLs look like sqlite:///relative/path or sqlite:////abs/path")
    return unquote(parts.path[1:])


def open_store(url: str) -> Store:
    """The store for a database URL; call `connect()` on it before use."""
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(path)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in _POSTGRES_SCHEMES:
        # `databases` picks asyncpg for plain postgresql://; the driver suffix is ours.
        return PostgresStore("postgresql://" + rest)
    # Only the scheme is echoed: the rest of a URL may hold a password.
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///path or postgresql://…"
    )


__all__ = [
    "DEFAULT_URL",
    "GameRow",
    "ImportRecord",
    "PlayerSummary",
    "PostgresStore",
    "SQLiteStore",
    "SchemaError",
    "Store",
    "open_store",
    "sqlite_path",
]
