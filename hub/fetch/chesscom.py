"""chess.com Published-Data API: monthly archives, one page per month, conditional refetch."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from urllib.parse import quote, urlsplit

import msgspec

from hub.errors import HubError, PlayerNotFound, RateLimited, UpstreamBadData, UpstreamUnavailable
from hub.fetch.base import Page, Probed, WaitCallback
from hub.fetch.http import Http, Reply
from hub.fetch.months import Cursor, MonthPlan
from hub.settings import Settings
from hub.store.base import Comparable, GameRow, Ledger, LedgerWrite, Unit

log = logging.getLogger(__name__)

UPSTREAM = "chesscom"
DRAW_RESULTS = frozenset(
    {"agreed", "repetition", "stalemate", "insufficient", "50move", "timevsinsufficient"}
)
STANDARD_START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
# The stats classes, and the stored games each counts (rated games only, by chess.com's word).
STATS_CLASSES = ("chess_daily", "chess960_daily", "chess_rapid", "chess_blitz", "chess_bullet")
COMPARABLE = Comparable(
    site_what="rated games in chess.com's stats records: " + ", ".join(STATS_CLASSES),
    stored_what="stored rated games: standard daily, rapid, blitz and bullet, and chess960 daily",
    rated_only=True,
    kinds=(("standard", ("daily", "rapid", "blitz", "bullet")), ("chess960", ("daily",))),
)
_MONTH_PATH = re.compile(r"/games/(\d{4})/(\d{2})/?$")
_MONTH = re.compile(r"\d{4}/\d{2}")
# A probe's archive list is reused by the pages() call that usually follows it right away.
_PROBE_FRESH_S = 30.0
# Months failing one after another mean chess.com is down, not that one month is broken.
GIVE_UP_AFTER = 3


class _Side(msgspec.Struct, kw_only=True):
    username: str
    result: str
    rating: int | None = None


class _Game(msgspec.Struct, kw_only=True):
    uuid: str | None = None
    url: str | None = None
    end_time: int
    time_class: str
    rated: bool
    white: _Side
    black: _Side
    pgn: str | None = None
    rules: str = "chess"
    initial_setup: str | None = None


class _Ids(msgspec.Struct):
    """Only the ids of a game that would not parse, to name it."""

    uuid: str | None = None
    url: str | None = None


class _Month(msgspec.Struct):
    games: list[msgspec.Raw]


class _Archives(msgspec.Struct):
    archives: list[str]


class _Record(msgspec.Struct):
    win: int = 0
    loss: int = 0
    draw: int = 0


class _Class(msgspec.Struct):
    record: _Record | None = None


class _Stats(msgspec.Struct):
    chess_daily: _Class | None = None
    chess960_daily: _Class | None = None
    chess_rapid: _Class | None = None
    chess_blitz: _Class | None = None
    chess_bullet: _Class | None = None


class MonthRead(msgspec.Struct, kw_only=True):
    """One month's games, and what could not be taken from it."""

    rows: list[GameRow]
    seen: int  # distinct games listed
    skipped: dict[str, int]
    unreadable: list[str]
    first_ms: int | None  # end times of the games listed, in ms
    last_ms: int | None


_game_decoder = msgspec.json.Decoder(_Game)
_ids_decoder = msgspec.json.Decoder(_Ids)
_month_decoder = msgspec.json.Decoder(_Month)
_archives_decoder = msgspec.json.Decoder(_Archives)
_stats_decoder = msgspec.json.Decoder(_Stats)
_cursor_decoder = msgspec.json.Decoder(Cursor)


def outcome(result: str) -> str:
    """The player's outcome from their own side's `result` string."""
    if result == "win":
        return "win"
    return "draw" if result in DRAW_RESULTS else "loss"


def to_row(game: _Game, username: str) -> GameRow | None:
    """Map one game for `username` (lower-case); None when the player is on neither side."""
    game_id = game.uuid or game.url
    if not game_id:
        raise UpstreamBadData("chess.com sent a game with neither uuid nor url.")
    if game.white.username.lower() == username:
        color, own = "white", game.white
    elif game.black.username.lower() == username:
        color, own = "black", game.black
    else:
        log.warning("chess.com game %s: %s plays neither side; skipped", game_id, username)
        return None
    start = game.initial_setup
    return GameRow(
        source=UPSTREAM,
        game_id=game_id,
        username=username,
        end_time=game.end_time,
        time_class=game.time_class,
        rated=game.rated,
        white=game.white.username,
        black=game.black.username,
        white_rating=game.white.rating,
        black_rating=game.black.rating,
        white_result=game.white.result,
        black_result=game.black.result,
        color=color,
        outcome=outcome(own.result),
        pgn=game.pgn,
        variant="standard" if game.rules == "chess" else game.rules,
        initial_fen=start if start and start != STANDARD_START else None,
        listed_ms=game.end_time * 1000,
    )


def _name(raw: msgspec.Raw) -> str:
    """The id of a game that would not parse, or "?" when even that is unreadable."""
    try:
        ids = _ids_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return "?"
    return ids.uuid or ids.url or "?"


def parse_month(body: bytes, username: str) -> MonthRead:
    """Rows of one month's `{"games": [...]}`, de-duplicated by game id.

    A body that is not a month raises UpstreamBadData; a single game that cannot be
    read is counted as skipped ("unparseable") and named, and the others are kept.
    """
    try:
        month = _month_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"chess.com sent a month we could not read: {exc}") from None
    rows: dict[str, GameRow] = {}
    skipped: Counter[str] = Counter()
    unreadable: list[str] = []
    seen: set[str] = set()
    ends: list[int] = []
    for raw in month.games:
        try:
            game = _game_decoder.decode(raw)
            if not (game.uuid or game.url):
                raise UpstreamBadData("a game with neither uuid nor url")
        except (msgspec.DecodeError, RecursionError, UpstreamBadData) as exc:
            name = _name(raw)
            log.warning("chess.com game %s unreadable: %s; skipped", name, exc)
            skipped["unparseable"] += 1
            unreadable.append(name)
            continue
        game_id = game.uuid or game.url or ""
        if game_id in seen:
            continue
        seen.add(game_id)
        ends.append(game.end_time * 1000)
        row = to_row(game, username)
        if row is None:
            skipped["not_the_player"] += 1
        else:
            rows[game_id] = row
    return MonthRead(
        rows=list(rows.values()),
        seen=len(seen) + len(unreadable),
        skipped=dict(skipped),
        unreadable=unreadable,
        first_ms=min(ends, default=None),
        last_ms=max(ends, default=None),
    )


def parse_archives(body: bytes) -> list[tuple[str, str]]:
    """(month "YYYY/MM", url) for each archive, in the order given (ascending)."""
    try:
        urls = _archives_decoder.decode(body).archives
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"chess.com sent an archive list we could not read: {exc}") from None
    months: list[tuple[str, str]] = []
    for url in urls:
        match = _MONTH_PATH.search(urlsplit(url).path)
        if match is None:
            raise UpstreamBadData(f"chess.com sent an archive URL we could not read: {url!r}")
        months.append((f"{match[1]}/{match[2]}", url))
    return months


def parse_stats(body: bytes) -> int:
    """Rated games counted by the stats records of every class that has one."""
    try:
        stats = _stats_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"chess.com sent stats we could not read: {exc}") from None
    total = 0
    for name in STATS_CLASSES:
        klass: _Class | None = getattr(stats, name)
        if klass is not None and klass.record is not None:
            total += klass.record.win + klass.record.loss + klass.record.draw
    return total


def rebase(url: str, base: str) -> str:
    """Keep the path of an upstream URL but point it at `base` (the real API or the simulator)."""
    target, parts = urlsplit(base), urlsplit(url)
    prefix = target.path.rstrip("/")
    path = parts.path if parts.path.startswith(prefix + "/") else prefix + parts.path
    query = f"?{parts.query}" if parts.query else ""
    return f"{target.scheme}://{target.netloc}{path}{query}"


def decode_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None:
        return None
    try:
        decoded = _cursor_decoder.decode(cursor)
    except (msgspec.DecodeError, RecursionError):
        decoded = None
    if decoded is None or not _MONTH.fullmatch(decoded.month):
        # We wrote it, so this is a leftover of another format: start over; the store drops dups.
        log.warning("chess.com cursor %r unreadable; importing from the start", cursor)
        return None
    return decoded


def _refused(reply: Reply, what: str) -> UpstreamUnavailable:
    if reply.status == 403:
        return UpstreamUnavailable(
            "chess.com refused our User-Agent (403); set HUB_USER_AGENT to one that names you."
        )
    return UpstreamUnavailable(f"chess.com answered HTTP {reply.status} for {what}.")


def read_unit(
    month: str, reply: Reply, username: str, before: Unit | None
) -> tuple[Unit, MonthRead]:
    """The ledger row and games of one month's answer; raise for one that is not a month."""
    etag, modified = reply.headers.get("ETag"), reply.headers.get("Last-Modified")
    if reply.status == 304 and before is not None:
        unit = msgspec.structs.replace(
            before, state="not_modified", status=304, games_new=0, error=None,
            games_known=before.games_new + before.games_known,
            etag=etag or before.etag, last_modified=modified or before.last_modified,
        )  # fmt: skip
        return unit, MonthRead(
            rows=[], seen=0, skipped={}, unreadable=[], first_ms=None, last_ms=None
        )
    if reply.status == 410:  # this month will never exist: an empty month
        read = MonthRead(rows=[], seen=0, skipped={}, unreadable=[], first_ms=None, last_ms=None)
        return Unit(unit=month, state="stored", status=410), read
    if reply.status != 200:
        raise _refused(reply, f"month {month}")
    read = parse_month(reply.body, username)
    unit = Unit(
        unit=month, state="stored", status=200, etag=etag, last_modified=modified,
        games_seen=read.seen, skipped=read.skipped, unreadable=read.unreadable,
        first_ms=read.first_ms, last_ms=read.last_ms,
    )  # fmt: skip
    return unit, read


class ChessCom:
    """One page per archived month; months already read are refetched with their ETag."""

    name = UPSTREAM
    comparable = COMPARABLE

    def __init__(
        self, http: Http, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._http = http
        self._base = settings.chesscom_url.rstrip("/")
        self._clock = clock
        self._probed: Probed[list[tuple[str, str]]] = Probed(_PROBE_FRESH_S, clock)

    async def probe(self, username: str, cursor: str | None) -> int | None:
        """Months this import will request: one archive-list request."""
        user = username.lower()
        months = await self._probed.fetch(user, self._archives(user, None, probe=True))
        return len(MonthPlan(months, decode_cursor(cursor), Ledger()).months)

    async def pages(
        self,
        username: str,
        cursor: str | None,
        on_wait: WaitCallback | None = None,
        *,
        ledger: Ledger | None = None,
        repair: bool = False,
    ) -> AsyncGenerator[Page, None]:
        user = username.lower()
        months = await self._probed.take(user)
        if months is None:
            months = await self._archives(user, on_wait)
        plan = MonthPlan(months, decode_cursor(cursor), ledger or Ledger(), repair)
        failures = 0
        for i, (month, url) in enumerate(plan.months):
            error: HubError | None = None
            read: MonthRead | None = None
            try:
                unit, read = await self._month(user, month, url, plan, on_wait)
                failures = 0
            except (UpstreamUnavailable, UpstreamBadData, RateLimited) as exc:
                failures += 1
                log.warning("chess.com month %s of %s failed: %s", month, user, exc.message)
                unit = Unit(unit=month, state="failed", status=exc.status, error=exc.message)
                error = exc
            write = LedgerWrite(unit=unit, drop=plan.dropped if i == 0 else [])
            if i == 0:
                write.pending = plan.unrecorded
            moved = plan.record(unit)
            yield Page(
                rows=read.rows if read else [],
                pages_total=len(plan.months),
                cursor=None if moved is None else msgspec.json.encode(moved).decode(),
                ledger=write,
            )
            if error is not None and (failures >= GIVE_UP_AFTER or isinstance(error, RateLimited)):
                raise error  # the months not read stay pending in the ledger

    async def _month(
        self, user: str, month: str, url: str, plan: MonthPlan, on_wait: WaitCallback | None
    ) -> tuple[Unit, MonthRead]:
        # A listed month answering 404 is chess.com's transient "internal error": retry it.
        reply = await self._http.get(
            UPSTREAM,
            rebase(url, self._base),
            headers=plan.validators(month),
            on_wait=on_wait,
            retry_on=frozenset({404}),
        )
        return read_unit(month, reply, user, plan.units.get(month))

    async def site_count(self, username: str, on_wait: WaitCallback | None = None) -> int | None:
        """chess.com's own count: the stats records, which count rated games only."""
        user = username.lower()
        url = f"{self._base}/pub/player/{quote(user, safe='')}/stats"
        reply = await self._http.get(UPSTREAM, url, on_wait=on_wait)
        if reply.status != 200:
            log.warning("chess.com stats of %s: HTTP %s", user, reply.status)
            return None
        return parse_stats(reply.body)

    async def _archives(
        self, user: str, on_wait: WaitCallback | None, probe: bool = False
    ) -> list[tuple[str, str]]:
        url = f"{self._base}/pub/player/{quote(user, safe='')}/games/archives"
        reply = await self._http.get(UPSTREAM, url, on_wait=on_wait, probe=probe)
        if reply.status == 404:
            raise PlayerNotFound(f'chess.com has no player "{user}".')
        if reply.status == 410:
            raise PlayerNotFound(f'chess.com no longer has the games of "{user}".')
        if reply.status != 200:
            raise _refused(reply, "the archive list")
        return parse_archives(reply.body)
