"""Ticket secrets, and the last word of recently ended imports for a resume that comes late."""

from __future__ import annotations

import secrets
from typing import NamedTuple

from hub.guard import ticket_key


class Ended(NamedTuple):
    expires: float
    import_id: str
    source: str
    username: str
    final: str  # the encoded `done`, `failed` or `error` that ended it


class Tickets:
    """Mints tickets and answers `resume` of one that ended less than `keep_s` ago.

    The cache is bounded twice: by time, pruned on a timer, and by size, so a
    flood of short imports cannot grow it without end.
    """

    def __init__(self, keep_s: float, limit: int = 100_000) -> None:
        self.keep_s = keep_s
        self.limit = limit
        self.ended: dict[str, Ended] = {}  # ticket key -> last word; in order of expiry

    @staticmethod
    def mint() -> tuple[str, str]:
        """A new ticket: (secret for the client, key the hub files it under)."""
        secret = secrets.token_urlsafe(24)  # 192 bits
        return secret, ticket_key(secret)

    def remember(
        self, keys: frozenset[str] | set[str] | list[str], import_id: str, source: str,
        username: str, final: str, now: float,
    ) -> None:  # fmt: skip
        expires = now + self.keep_s
        for key in keys:
            self.ended.pop(key, None)
            self.ended[key] = Ended(expires, import_id, source, username, final)
        while len(self.ended) > self.limit:
            del self.ended[next(iter(self.ended))]

    def lookup(self, key: str, now: float) -> Ended | None:
        hit = self.ended.get(key)
        return hit if hit is not None and hit.expires > now else None

    def prune(self, now: float) -> None:
        expired = []
        for key, hit in self.ended.items():
            if hit.expires > now:
                break
            expired.append(key)
        for key in expired:
            del self.ended[key]
