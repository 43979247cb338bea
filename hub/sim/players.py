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
    vary_chesscom,
    vary_lichess,
)

Month = tuple[int, int]
Growth = Mapping[Month, Sequence[int]]

SOURCES = ("chesscom", "lichess")
FAULTS = ("flaky", "drop", "dup", "slow", "gone", "hole", "corr", "mixed")
MAX_MONTHS = 240
MAX_GAMES = 5000

_NAME = re.compile(r"^[A-Za-z0-9_-]{2,50}$")
_SIZE = re.compile(r"p(\d+)x(\d+)$")
_UNITS_MS = (86_400_000, 3_600_000, 60_000, 1000, 1)
_CACHE_BYTES = 256 * 1024 * 1024
_TALLY = ("rated", "ai", "draw", "loss", "win")
# chess.com stats classes: (rules, time class) of the rated games each record counts.
_STATS_CLASSES = {
    ("chess", "daily"): "chess_daily",
    ("chess960", "daily"): "chess960_daily",
    ("chess", "rapid"): "chess_rapid",
    ("chess", "blitz"): "chess_blitz",
    ("chess", "bullet"): "chess_bullet",
}
_DRAWS = frozenset(
    {"agreed", "repetition", "stalemate", "insufficient", "50move", "timevsinsufficient"}
)


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
    # chess.com stats: (class, win, loss, draw, last end s, last rating) per rated class
    record: tuple[tuple[str, int, int, int, int, int], ...] = ()


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
    who = profile(lower, month)
    mixed = fault_of(lower) == "mixed"
    games: list[Game] = []
    for i, end in enumerate(ends):
        prev = ends[i - 1] if i else start
        if source == "chesscom":
            # a mixed player's month opens with a daily game, then variants
            game = chesscom_game(who, seeds[i], end, prev, daily=mixed and i == 0)
        else:
            game = lichess_game(who, seeds[i], end, prev)
        kind = _variant(i, seeds[i]) if mixed else None
        if kind is not None:
            game = vary_chesscom(game, kind) if source == "chesscom" else vary_lichess(game, kind)
        games.append(game)
    return games


def _variant(index: int, seed: bytes) -> str | None:
    """What a mixed player's game is besides standard: each kind early in every month."""
    forced = {1: "chess960", 2: "position", 3: "unrated"}
    if index in forced:
        return forced[index]
    if index == 0:
        return None
    return {0: "chess960", 1: "position", 2: "unrated"}.get(seed[29] % 10)


def etag(body: bytes) -> str:
    """A strong ETag from the content, so equal bodies share a tag across restarts."""
    return f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()[:24]}"'


def last_modified_s(data: MonthData, month: Month, now: float) -> int:
    """Time of the latest game, or the end of the part of the month that has passed."""
    if data.ids:
        return data.last_ms // 1000
    return (month_start_ms(month) + span_ms(month, now)) // 1000


def all_games(
    source: str, name: str, now: float, growth: Growth, extra: Sequence[tuple[int, str]] = ()
) -> tuple[list[str], list[Month]]:
    """Every game id (ascending) and every month, as a client syncing now would see them.

    `extra` are (createdAt, id) of finished games outside the months, merged in.
    """
    months = player_months(name, now, growth)
    ids: list[str] = []
    for month in months:
        ids.extend(month_data(source, name, month, now, growth.get(month, ())).ids)
    if extra:
        times: list[int] = []
        for month in months:
            times.extend(month_data(source, name, month, now, growth.get(month, ())).times)
        merged = sorted([*zip(times, ids, strict=True), *extra], key=lambda row: row[0])
        ids = [game for _, game in merged]
    return ids, months


Line = tuple[int, str, bytes]  # (createdAt ms, id, ndjson line)


def lichess_rows(
    name: str,
    now: float,
    growth: Growth,
    since: int,
    until: int,
    limit: int,
    newest_first: bool,
    extra: Sequence[Line] = (),
) -> list[Line]:
    """Export lines with since <= createdAt <= until, capped at limit (0 = all).

    `extra` are games outside the months (correspondence games of `corr` players),
    merged in by creation time.
    """
    months = player_months(name, now, growth)
    out: list[Line] = []
    for month in reversed(months) if newest_first else months:
        if month_start_ms(shift(month, 1)) <= since or month_start_ms(month) > until:
            continue
        data = month_data("lichess", name, month, now, growth.get(month, ()))
        rows = list(zip(data.times, data.ids, data.lines, strict=True))
        for row in reversed(rows) if newest_first else rows:
            if since <= row[0] <= until:
                out.append(row)
                if len(out) == limit and not extra:
                    return out
    if extra:
        out.extend(row for row in extra if since <= row[0] <= until)
        out.sort(key=lambda row: row[0], reverse=newest_first)
        if limit:
            del out[limit:]
    return out


def lichess_lines(
    name: str, now: float, growth: Growth, since: int, until: int, limit: int, newest_first: bool
) -> list[bytes]:
    """Export lines with since <= createdAt <= until, capped at limit (0 = all)."""
    rows = lichess_rows(name, now, growth, since, until, limit, newest_first)
    return [line for _, _, line in rows]


def lichess_user(
    name: str, now: float, growth: Growth, finished: Sequence[Game] = (), playing: int = 0
) -> dict[str, Any]:
    """The `/api/user` document, counted from the games that exist now.

    count.all counts finished games, as lichess does; `finished` are games outside the
    months that ended (correspondence), `playing` the games still in progress.
    """
    lower = name.lower()
    months = player_months(lower, now, growth)
    total, counts, seen = 0, [0, 0, 0, 0, 0], 0
    for month in months:
        data = month_data("lichess", lower, month, now, growth.get(month, ()))
        total += len(data.ids)
        counts = [a + b for a, b in zip(counts, data.tally, strict=True)]
        seen = max(seen, data.last_ms)
    extra = _tally(list(finished), lower)
    total += len(finished)
    counts = [a + b for a, b in zip(counts, extra, strict=True)]
    first = months[0] if months else month_of(now)
    created = month_start_ms(first) - (30 + digest(f"joined|{lower}")[0]) * 86_400_000
    tally = dict(zip(_TALLY, counts, strict=True))
    return {
        "id": lower,
        "username": display_name(lower),
        "createdAt": created,
        "seenAt": seen or created,
        "count": {"all": total, **tally, "playing": playing, "import": 0, "me": 0},
    }


def chesscom_stats(name: str, now: float, growth: Growth) -> dict[str, Any]:
    """The `/stats` document: per rated class a record of rated games only, as chess.com."""
    lower = name.lower()
    classes: dict[str, list[int]] = {}
    for month in player_months(lower, now, growth):
        data = month_data("chesscom", lower, month, now, growth.get(month, ()))
        for key, win, loss, draw, end, rating in data.record:
            row = classes.setdefault(key, [0, 0, 0, 0, 0])
            row[:3] = [row[0] + win, row[1] + loss, row[2] + draw]
            if end >= row[3]:
                row[3:] = [end, rating]
    stats: dict[str, Any] = {}
    for key in _STATS_CLASSES.values():
        if key in classes:
            win, loss, draw, end, rating = classes[key]
            last = {"rating": rating, "date": end, "rd": 40 + digest(f"rd|{lower}")[0] % 60}
            record: dict[str, int] = {"win": win, "loss": loss, "draw": draw}
            if key.endswith("_daily"):  # daily records also tell the pace, as on the site
                record.update(time_per_move=3600 + digest(f"pace|{lower}")[0] * 97)
                record.update(timeout_percent=0)
            stats[key] = {"last": last, "record": record}
    seed = digest(f"tactics|{lower}")
    stats["fide"] = 0
    stats["tactics"] = {"highest": {"rating": 1200 + seed[0] * 4, "date": int(now) - 86400}}
    stats["puzzle_rush"] = {"best": {"total_attempts": 20 + seed[1] % 20, "score": seed[1] % 20}}
    return stats


def hole_month(name: str, now: float, growth: Growth) -> Month | None:
    """The month a `hole` player's chess.com archive cannot serve: the second-oldest."""
    months = player_months(name, now, growth)
    return months[1] if len(months) > 1 else None


def hole_game(name: str, now: float, growth: Growth) -> str | None:
    """The game at which a `hole` player's lichess export breaks: the middle one."""
    ids, _ = all_games("lichess", name, now, growth)
    return ids[len(ids) // 2] if ids else None


def _index(month: Month) -> int:
    return month[0] * 12 + month[1] - 1


@functools.lru_cache(maxsize=4096)
def profile(lower: str, month: Month) -> Profile:
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
        return MonthData(ids, times, last, body, (), (), etag(body), _record(games, lower))
    tally = _tally(games, lower)
    last = games[-1]["lastMoveAt"] if games else 0
    ids, times = tuple(g["id"] for g in games), tuple(g["createdAt"] for g in games)
    lines = tuple(_encoder.encode(g) + b"\n" for g in games)
    return MonthData(ids, times, last, b"", lines, tuple(tally), "")


def _tally(games: list[Game], lower: str) -> list[int]:
    """lichess `/api/user` counts of finished games: rated, ai, draw, loss, win."""
    tally = [0, 0, 0, 0, 0]
    for g in games:
        side = "white" if g["players"]["white"].get("user", {}).get("id") == lower else "black"
        winner = g.get("winner")
        tally[0] += g["rated"]
        tally[1] += g["source"] == "ai"
        tally[2 if winner is None else 4 if winner == side else 3] += 1
    return tally


def _record(games: list[Game], lower: str) -> tuple[tuple[str, int, int, int, int, int], ...]:
    """chess.com stats of one month: rated games per class, and the latest rating."""
    classes: dict[str, list[int]] = {}
    for g in games:
        key = _STATS_CLASSES.get((g["rules"], g["time_class"]))
        if key is None or not g["rated"]:
            continue
        me = g["white"] if g["white"]["username"].lower() == lower else g["black"]
        row = classes.setdefault(key, [0, 0, 0, 0, 0])
        result = me["result"]
        row[0 if result == "win" else 2 if result in _DRAWS else 1] += 1
        row[3:] = [g["end_time"], me["rating"]]
    return tuple((key, *row) for key, row in classes.items())  # type: ignore[misc]


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
