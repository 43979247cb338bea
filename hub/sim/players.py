"""Deterministic simulated players: names, sizes, months, growth and the month cache."""

from __future__ import annotations

import calendar
import functools
import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from hub.sim.games import (
    CLASSES,
    Game,
    Profile,
    chesscom_game,
    digest,
    lichess_game,
    person_uuid,
)

Month = tuple[int, int]
Growth = Mapping[Month, Sequence[int]]

SOURCES = ("chesscom", "lichess")
FAULTS = ("flaky", "drop", "dup", "slow", "gone")
MAX_MONTHS = 240
MAX_GAMES = 5000

_NAME = re.compile(r"^[A-Za-z0-9_-]{2,50}$")
_SIZE = re.compile(r"p(\d+)x(\d+)$")
_UNITS_MS = (86_400_000, 3_600_000, 60_000, 1000, 1)
_CACHE_BYTES = 256 * 1024 * 1024
_TALLY = ("rated", "ai", "draw", "loss", "win")


def is_valid(name: str) -> bool:
    """True when the name is shaped like a real account name."""
    return _NAME.fullmatch(name) is not None


def exists(name: str) -> bool:
    """True for every valid name except the `ghost` ones."""
    return is_valid(name) and not name.lower().startswith("ghost")


def fault_of(name: str) -> str | None:
    """The fault a name asks for by its prefix, if any."""
    lower = name.lower()
    return next((f for f in FAULTS if lower.startswith(f)), None)


def size_of(name: str) -> tuple[int, int]:
    """(months, games per month): from a `p<M>x<G>` suffix, else from a stable hash."""
    lower = name.lower()
    match = _SIZE.search(lower)
    if match:
        return min(int(match[1]), MAX_MONTHS), min(int(match[2]), MAX_GAMES)
    seed = digest(f"size|{lower}")
    return 1 + seed[0] % 24, 5 + seed[1] % 116


def display_name(name: str) -> str:
    """The fixed display case both sites show for a player."""
    return name.lower().capitalize()


def month_of(now: float) -> Month:
    """The UTC month that contains `now` (epoch seconds)."""
    t = time.gmtime(now)
    return t.tm_year, t.tm_mon


def shift(month: Month, k: int) -> Month:
    """The month k months after `month` (k may be negative)."""
    year, index = divmod(month[0] * 12 + month[1] - 1 + k, 12)
    return year, index + 1


def month_start_ms(month: Month) -> int:
    return calendar.timegm((month[0], month[1], 1, 0, 0, 0)) * 1000


def span_ms(month: Month, now: float) -> int:
    """How much of the month holds games: all of a closed month, else the elapsed part.

    The elapsed part is rounded down to the day (finer on the first day) so game
    times stay put between requests instead of sliding with the clock.
    """
    start, end = month_start_ms(month), month_start_ms(shift(month, 1))
    now_ms = int(now * 1000)
    if now_ms >= end:
        return end - start
    elapsed = max(0, now_ms - start)
    unit = next((u for u in _UNITS_MS if elapsed >= u), 1)
    return elapsed - elapsed % unit


def base_count(name: str, month: Month, now: float) -> int:
    """Games a month holds before any growth."""
    months, games = size_of(name)
    back = _index(month_of(now)) - _index(month)
    return games if 0 <= back < months else 0


def player_months(name: str, now: float, growth: Growth) -> list[Month]:
    """Archive months, ascending: the last M months up to now plus any grown month."""
    months, _ = size_of(name)
    current = month_of(now)
    found = {shift(current, -k) for k in range(months)}
    found.update(m for m, times in growth.items() if times)
    return sorted(found)


def grow_times(last_ms: int, now_ms: int, n: int) -> list[int]:
    """End times for n new games spread over (last_ms, now_ms], ascending."""
    gap = max(now_ms - last_ms, 0)
    return [last_ms + gap * (k + 1) // n for k in range(n)]


class MonthData(NamedTuple):
    """One month of one player on one site, already encoded for the wire."""

    ids: tuple[str, ...]
    times: tuple[int, ...]  # chess.com end_time (s); lichess createdAt (ms)
    last_ms: int  # end of the latest game; 0 when the month is empty
    body: bytes  # chess.com `{"games":[...]}`; empty for lichess
    lines: tuple[bytes, ...]  # lichess ndjson lines, ascending; empty for chess.com
    tally: tuple[int, ...]  # lichess rated, ai, draw, loss, win: the `/api/user` counts
    etag: str  # chess.com: strong validator of `body`, computed once per build


def month_data(
    source: str, name: str, month: Month, now: float, grown: Sequence[int] = ()
) -> MonthData:
    """The month as of `now`, cached; the key holds everything it depends on."""
    lower = name.lower()
    key = (source, lower, month, span_ms(month, now), base_count(lower, month, now), tuple(grown))
    cached = _cache.get(key)
    if cached is None:
        games = build_month(source, lower, month, key[3], key[4], key[5])
        cached = _encode(source, lower, games)
        _cache.put(key, cached)
    return cached


def build_month(
    source: str, name: str, month: Month, span: int, base: int, grown: Sequence[int]
) -> list[Game]:
    """Games of one month, ascending: `base` spread over `span` ms, then the grown ones."""
    lower = name.lower()
    start = month_start_ms(month)
    limit = month_start_ms(shift(month, 1)) - 1
    tag = f"{source}|{lower}|{month[0]:04d}-{month[1]:02d}|"
    seeds = [digest(f"{tag}{i}") for i in range(base + len(grown))]
    ends = [
        start + span * (i * 1000 + 100 + seeds[i][63] * 800 // 255) // (base * 1000)
        for i in range(base)
    ]
    prev = ends[-1] if ends else start
    for t in grown:
        prev = min(max(t, prev + 1), limit)
        ends.append(prev)
    who = _profile(lower, month)
    make = chesscom_game if source == "chesscom" else lichess_game
    return [make(who, seeds[i], ends[i], ends[i - 1] if i else start) for i in range(len(ends))]


def etag(body: bytes) -> str:
    """A strong ETag from the content, so equal bodies share a tag across restarts."""
    return f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()[:24]}"'


def last_modified_s(data: MonthData, month: Month, now: float) -> int:
    """Time of the latest game, or the end of the part of the month that has passed."""
    if data.ids:
        return data.last_ms // 1000
    return (month_start_ms(month) + span_ms(month, now)) // 1000


def all_games(source: str, name: str, now: float, growth: Growth) -> tuple[list[str], list[Month]]:
    """Every game id (ascending) and every month, as a client syncing now would see them."""
    months = player_months(name, now, growth)
    ids: list[str] = []
    for month in months:
        ids.extend(month_data(source, name, month, now, growth.get(month, ())).ids)
    return ids, months


def lichess_lines(
    name: str, now: float, growth: Growth, since: int, until: int, limit: int, newest_first: bool
) -> list[bytes]:
    """Export lines with since <= createdAt <= until, capped at limit (0 = all)."""
    months = player_months(name, now, growth)
    out: list[bytes] = []
    for month in reversed(months) if newest_first else months:
        if month_start_ms(shift(month, 1)) <= since or month_start_ms(month) > until:
            continue
        data = month_data("lichess", name, month, now, growth.get(month, ()))
        pairs = list(zip(data.times, data.lines, strict=True))
        for created, line in reversed(pairs) if newest_first else pairs:
            if since <= created <= until:
                out.append(line)
                if len(out) == limit:
                    return out
    return out


def lichess_user(name: str, now: float, growth: Growth) -> dict[str, Any]:
    """The `/api/user` document, counted from the games that exist now."""
    lower = name.lower()
    months = player_months(lower, now, growth)
    total, counts, seen = 0, [0, 0, 0, 0, 0], 0
    for month in months:
        data = month_data("lichess", lower, month, now, growth.get(month, ()))
        total += len(data.ids)
        counts = [a + b for a, b in zip(counts, data.tally, strict=True)]
        seen = max(seen, data.last_ms)
    first = months[0] if months else month_of(now)
    created = month_start_ms(first) - (30 + digest(f"joined|{lower}")[0]) * 86_400_000
    return {
        "id": lower,
        "username": display_name(lower),
        "createdAt": created,
        "seenAt": seen or created,
        "count": {"all": total, **dict(zip(_TALLY, counts, strict=True)), "import": 0, "me": 0},
    }


def _index(month: Month) -> int:
    return month[0] * 12 + month[1] - 1


@functools.lru_cache(maxsize=4096)
def _profile(lower: str, month: Month) -> Profile:
    seed = digest(f"profile|{lower}")
    drift = 140 * math.sin(_index(month) * 0.35 + seed[2] / 40)
    rating = 900 + (seed[0] * 256 + seed[1]) % 1300 + round(drift)
    date = f"{month[0]}.{month[1]:02d}."
    start = month_start_ms(month) // 1000
    return Profile(
        lower, display_name(lower), person_uuid(lower), rating, CLASSES[seed[3] % 3], start, date
    )


_encoder = msgspec.json.Encoder()


def _encode(source: str, lower: str, games: list[Game]) -> MonthData:
    if source == "chesscom":
        last = games[-1]["end_time"] * 1000 if games else 0
        ids, times = tuple(g["uuid"] for g in games), tuple(g["end_time"] for g in games)
        body = _encoder.encode({"games": games})
        return MonthData(ids, times, last, body, (), (), etag(body))
    tally = [0, 0, 0, 0, 0]
    for g in games:
        side = "white" if g["players"]["white"].get("user", {}).get("id") == lower else "black"
        winner = g.get("winner")
        tally[0] += g["rated"]
        tally[1] += g["source"] == "ai"
        tally[2 if winner is None else 4 if winner == side else 3] += 1
    last = games[-1]["lastMoveAt"] if games else 0
    ids, times = tuple(g["id"] for g in games), tuple(g["createdAt"] for g in games)
    lines = tuple(_encoder.encode(g) + b"\n" for g in games)
    return MonthData(ids, times, last, b"", lines, tuple(tally), "")


class _Cache:
    """LRU bounded by encoded size, since one huge month can outweigh thousands of small ones."""

    def __init__(self, budget: int) -> None:
        self._items: OrderedDict[tuple[Any, ...], MonthData] = OrderedDict()
        self._budget = budget
        self._used = 0

    def get(self, key: tuple[Any, ...]) -> MonthData | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], value: MonthData) -> None:
        self._items[key] = value
        self._used += _weight(value)
        while self._used > self._budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._used -= _weight(old)


def _weight(data: MonthData) -> int:
    return len(data.body) + sum(map(len, data.lines)) + 100 * len(data.ids)


_cache = _Cache(_CACHE_BYTES)
