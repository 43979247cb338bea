"""chess.com Published-Data API: monthly archives, one page per month, conditional refetch."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncGenerator, Callable
from urllib.parse import quote, urlsplit

import msgspec

from hub.errors import PlayerNotFound, UpstreamBadData, UpstreamUnavailable
from hub.fetch.base import Page, Probed, WaitCallback
from hub.fetch.http import Http, Reply
from hub.settings import Settings
from hub.store.base import GameRow

log = logging.getLogger(__name__)

UPSTREAM = "chesscom"
DRAW_RESULTS = frozenset(
    {"agreed", "repetition", "stalemate", "insufficient", "50move", "timevsinsufficient"}
)
_MONTH_PATH = re.compile(r"/games/(\d{4})/(\d{2})/?$")
_MONTH = re.compile(r"\d{4}/\d{2}")
# A probe's archive list is reused by the pages() call that usually follows it right away.
_PROBE_FRESH_S = 30.0


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


class _Month(msgspec.Struct):
    games: list[_Game]


class _Archives(msgspec.Struct):
    archives: list[str]


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The last month fully stored, with the validators to refetch it conditionally."""

    month: str  # "YYYY/MM"
    etag: str | None = None
    last_modified: str | None = None


_month_decoder = msgspec.json.Decoder(_Month)
_archives_decoder = msgspec.json.Decoder(_Archives)
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
    )


def parse_month(body: bytes, username: str) -> list[GameRow]:
    """Rows of one month's `{"games": [...]}`, de-duplicated by game id."""
    try:
        month = _month_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"chess.com sent a month we could not read: {exc}") from None
    rows: dict[str, GameRow] = {}
    for game in month.games:
        row = to_row(game, username)
        if row is not None:
            rows.setdefault(row.game_id, row)
    return list(rows.values())


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


class ChessCom:
    """One page per archived month; the cursor month is refetched with If-None-Match."""

    name = UPSTREAM

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
        return len(_plan(months, decode_cursor(cursor)))

    async def pages(
        self, username: str, cursor: str | None, on_wait: WaitCallback | None = None
    ) -> AsyncGenerator[Page, None]:
        user = username.lower()
        start = decode_cursor(cursor)
        months = await self._probed.take(user)
        if months is None:
            months = await self._archives(user, on_wait)
        plan = _plan(months, start)
        for month, url in plan:
            headers: dict[str, str] = {}
            if start is not None and month == start.month:
                if start.etag:
                    headers["If-None-Match"] = start.etag
                if start.last_modified:
                    headers["If-Modified-Since"] = start.last_modified
            # A listed month answering 404 is chess.com's transient "internal error": retry it.
            reply = await self._http.get(
                UPSTREAM,
                rebase(url, self._base),
                headers=headers,
                on_wait=on_wait,
                retry_on=frozenset({404}),
            )
            if reply.status == 304 and start is not None:
                yield Page(rows=[], pages_total=len(plan), cursor=cursor)  # nothing new
                continue
            if reply.status == 410:  # this month will never exist: count it and go on
                rows: list[GameRow] = []
                stored = Cursor(month=month)
            elif reply.status == 200:
                rows = parse_month(reply.body, user)
                stored = Cursor(
                    month=month,
                    etag=reply.headers.get("ETag"),
                    last_modified=reply.headers.get("Last-Modified"),
                )
            else:
                raise _refused(reply, f"month {month}")
            yield Page(
                rows=rows, pages_total=len(plan), cursor=msgspec.json.encode(stored).decode()
            )

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


def _plan(months: list[tuple[str, str]], start: Cursor | None) -> list[tuple[str, str]]:
    """Months to request: all, or those at or after the cursor month (which may have grown)."""
    if start is None:
        return months
    return [(m, url) for m, url in months if m >= start.month]
