"""Upstream misbehaviour for the simulator: User-Agent rules, limits, penalties, fault memory."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

_LIBRARY_UA = re.compile(r"^(Python/|python-requests/|Python-urllib/|aiohttp/|curl/)")
DUP_EVERY = 7


def identifies(user_agent: str | None) -> bool:
    """True when the User-Agent names its owner rather than a bare library default."""
    if not user_agent or not user_agent.strip():
        return False
    if _LIBRARY_UA.match(user_agent):
        # a library default still counts when it carries a contact (mail or URL);
        # "aiohttp/" itself contains "http", so look for a URL scheme, not the bare word
        return "@" in user_agent or "http://" in user_agent or "https://" in user_agent
    return True


def with_dups(lines: Sequence[bytes]) -> list[bytes]:
    """Every DUP_EVERY-th line sent twice in a row, as a flaky upstream would."""
    out: list[bytes] = []
    for i, line in enumerate(lines, 1):
        out.append(line)
        if i % DUP_EVERY == 0:
            out.append(line)
    return out


class SiteStats:
    """Request counters for one site; in_flight counts what that site's limiter counts."""

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.status: Counter[int] = Counter()

    def begin(self, tracked: bool = True) -> None:
        self.requests += 1
        if tracked:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, tracked: bool = True) -> None:
        if tracked:
            self.in_flight -= 1

    def record(self, status: int) -> None:
        self.status[status] += 1

    def reset(self) -> None:
        # in-flight requests are real and will still call end(), so keep that count
        self.requests = 0
        self.peak_in_flight = self.in_flight
        self.status.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "status": {str(code): n for code, n in sorted(self.status.items())},
        }


class Attempts:
    """Remembers which requests were already tried, for faults that hit only the first try."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def clear(self) -> None:
        self._seen.clear()


class Penalties:
    """Client addresses refused until a deadline (monotonic seconds)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def active(self, address: str, now: float) -> bool:
        until = self._until.get(address)
        if until is None:
            return False
        if now >= until:
            del self._until[address]
            return False
        return True

    def start(self, address: str, until: float) -> None:
        self._until[address] = until

    def clear(self) -> None:
        self._until.clear()
