"""lichess game export: one NDJSON stream, read line by line and cut into pages."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator
from typing import Literal
from urllib.parse import quote

import aiohttp
import msgspec
from aiohttp.http_exceptions import LineTooLong

from hub.errors import PlayerNotFound, UpstreamBadData, UpstreamUnavailable
from hub.fetch.base import Page, Probed, WaitCallback
from hub.fetch.http import TRANSIENT_ERRORS, Http
from hub.settings import Settings
from hub.store.base import GameRow

log = logging.getLogger(__name__)

UPSTREAM = "lichess"
# Statuses that say how the loser lost; anything else is reported as a plain "loss".
LOSS_STATUSES = frozenset(
    {"mate", "resign", "outoftime", "timeout", "cheat", "noStart", "variantEnd"}
)


class _User(msgspec.Struct, kw_only=True):
    name: str
    id: str | None = None


class _Player(msgspec.Struct, kw_only=True):
    user: _User | None = None
    ai_level: int | None = msgspec.field(default=None, name="aiLevel")
    rating: int | None = None


class _Players(msgspec.Struct, kw_only=True):
    white: _Player
    black: _Player


class Game(msgspec.Struct, kw_only=True):
    id: str
    rated: bool
    speed: str
    created_at: int = msgspec.field(name="createdAt")  # epoch ms
    last_move_at: int = msgspec.field(name="lastMoveAt")  # epoch ms
    status: str
    players: _Players
    winner: Literal["white", "black"] | None = None  # absent on a draw
    pgn: str | None = None


class _Count(msgspec.Struct):
    all: int


class _Profile(msgspec.Struct):
    count: _Count | None = None
    disabled: bool = False


class Cursor(msgspec.Struct, kw_only=True):
    since: int  # epoch MILLISECONDS: createdAt of the last game stored + 1
    seen: int  # games counted so far, for the page estimate


_game_decoder = msgspec.json.Decoder(Game)
_profile_decoder = msgspec.json.Decoder(_Profile)
_cursor_decoder = msgspec.json.Decoder(Cursor)


def decode_game(line: bytes) -> Game:
    try:
        return _game_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"lichess sent a game line we could not read: {exc}") from None


def _name(player: _Player) -> str:
    if player.user is not None:
        return player.user.name
    if player.ai_level is not None:
        return f"AI level {player.ai_level}"
    return "Anonymous"


def _is(player: _Player, username: str) -> bool:
    user = player.user
    return user is not None and username in (user.id, user.name.lower())


def to_row(game: Game, username: str) -> GameRow | None:
    """Map one game for `username` (lower-case); None when the player is on neither side."""
    white, black = game.players.white, game.players.black
    if _is(white, username):
        color = "white"
    elif _is(black, username):
        color = "black"
    else:
        log.warning("lichess game %s: %s plays neither side; skipped", game.id, username)
        return None
    if game.winner is None:
        results = {"white": "draw", "black": "draw"}
        result = "draw"
    else:
        lost = game.status if game.status in LOSS_STATUSES else "loss"
        results = {"white": lost, "black": lost, game.winner: "win"}
        result = "win" if game.winner == color else "loss"
    return GameRow(
        source=UPSTREAM,
        game_id=game.id,
        username=username,
        end_time=game.last_move_at // 1000,
        time_class=game.speed,
        rated=game.rated,
        white=_name(white),
        black=_name(black),
        white_rating=white.rating,
        black_rating=black.rating,
        white_result=results["white"],
        black_result=results["black"],
        color=color,
        outcome=result,
        pgn=game.pgn,
    )


def parse_game(line: bytes, username: str) -> GameRow | None:
    return to_row(decode_game(line), username)


def decode_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None:
        return None
    try:
        return _cursor_decoder.decode(cursor)
    except (msgspec.DecodeError, RecursionError):
        # We wrote it, so this is a leftover of another format: start over; the store drops dups.
        log.warning("lichess cursor %r unreadable; importing from the start", cursor)
        return None


def _encode(cursor: Cursor) -> str:
    return msgspec.json.encode(cursor).decode()


class Pager:
    """Cuts the export into pages and keeps the resume point; no I/O, so it is unit-testable."""

    def __init__(
        self,
        username: str,
        page_size: int,
        total: int | None,
        start: Cursor | None,
        lookback_ms: int,
    ) -> None:
        self._user = username
        self._size = page_size
        self._total = total  # the profile's count.all: only an estimate of the export
        self._floor = start.since if start else 0  # games created before were stored before
        self._seen = start.seen if start else 0
        # `since` filters on createdAt, so a correspondence game created before the cursor but
        # finished after it would never be exported again: the first request re-reads a
        # lookback window and the store's unique key drops the games it already has.
        self.since: int | None = max(0, self._floor - lookback_ms) if start else None
        self.yielded = 0
        self._ids: set[str] = set()  # ids yielded by this import, across resumed requests
        self.restart()

    def restart(self) -> None:
        """Drop the partial block: the export is requested again from `since`."""
        self._block: list[GameRow] = []
        self._block_ids: set[str] = set()
        self._block_seen = self._seen
        self._last_created = self._floor - 1

    def feed(self, game: Game) -> Page | None:
        """Take the next game; return the previous block once it is full."""
        if game.id in self._ids or game.id in self._block_ids:
            return None  # the export has sent the same game twice
        row = to_row(game, self._user)
        page = None
        # Never cut between games created in the same ms: since = last + 1 would skip one.
        full = len(self._block) >= self._size
        if row is not None and full and game.created_at != self._last_created:
            page = self._cut(more=True)
        self._last_created = max(self._last_created, game.created_at)
        if game.created_at >= self._floor:
            self._block_seen += 1  # lookback re-reads are not new games
        if row is not None:
            self._block.append(row)
            self._block_ids.add(game.id)
        return page

    def finish(self) -> Page | None:
        """The export ended: the last, partial block."""
        return self._cut(more=False) if self._block else None

    def _cut(self, more: bool) -> Page:
        self.yielded += 1
        pages_total = self.yielded
        if more:
            # The next row is in hand, so at least one more page follows whatever the
            # profile count says (it disagrees with exports).
            left = max(0, (self._total or 0) - self._block_seen)
            pages_total += max(1, math.ceil(left / self._size))
        self.since = max(self._floor, self._last_created + 1)
        self._seen = self._block_seen
        self._ids.update(self._block_ids)
        page = Page(
            rows=self._block,
            pages_total=pages_total,
            cursor=_encode(Cursor(since=self.since, seen=self._seen)),
        )
        self._block, self._block_ids = [], set()
        return page


class Lichess:
    """The whole history as one dateAsc export; a page is each `lichess_page` games."""

    name = UPSTREAM

    def __init__(self, http: Http, settings: Settings) -> None:
        self._http = http
        self._base = settings.lichess_url.rstrip("/")
        self._page = settings.lichess_page
        self._lookback_ms = int(settings.lichess_lookback_s * 1000)
        self._probed: Probed[int | None] = Probed()

    async def probe(self, username: str, cursor: str | None) -> int | None:
        """Pages left by the profile's game count: one cheap request."""
        user = username.lower()
        total = await self._probed.fetch(user, self._count(user, None, probe=True))
        if total is None:
            return None
        start = decode_cursor(cursor)
        return math.ceil(max(0, total - (start.seen if start else 0)) / self._page)

    async def pages(
        self, username: str, cursor: str | None, on_wait: WaitCallback | None = None
    ) -> AsyncGenerator[Page, None]:
        user = username.lower()
        total = await self._probed.take(user)
        if total is None:
            total = await self._count(user, on_wait)
        pager = Pager(user, self._page, total, decode_cursor(cursor), self._lookback_ms)
        url = f"{self._base}/api/games/user/{quote(user, safe='')}"
        headers = {"Accept": "application/x-ndjson"}
        budget = self._http.budget(UPSTREAM, on_wait)
        while True:
            params = {"sort": "dateAsc", "pgnInJson": "true", "clocks": "false", "opening": "true"}
            if pager.since is not None:
                params["since"] = str(pager.since)  # epoch ms
            try:
                async with self._http.stream(
                    UPSTREAM, url, budget, params=params, headers=headers
                ) as resp:
                    if resp.status == 404:
                        raise PlayerNotFound(f'lichess has no player "{user}".')
                    if resp.status != 200:
                        raise UpstreamUnavailable(f"lichess answered HTTP {resp.status}.")
                    while line := await _readline(resp):
                        if not line.strip():
                            continue
                        page = pager.feed(decode_game(line))
                        if page is not None:
                            yield page
                            budget.reset()  # progress: a later cut is a fresh failure
                    last = pager.finish()
                    if last is not None:
                        yield last
                    return
            except TRANSIENT_ERRORS as exc:
                # A cut stream: resume from the last yielded page, re-reading the partial block.
                pager.restart()
                await budget.backoff(f"export stream cut: {type(exc).__name__}")

    async def _count(
        self, user: str, on_wait: WaitCallback | None, probe: bool = False
    ) -> int | None:
        # Not a game export: lichess limits concurrent exports, not profile reads, so this
        # does not take the stream slot (and cannot wait behind another import's export).
        reply = await self._http.get(
            UPSTREAM,
            f"{self._base}/api/user/{quote(user, safe='')}",
            on_wait=on_wait,
            limited=False,
            probe=probe,
        )
        if reply.status == 404:
            raise PlayerNotFound(f'lichess has no player "{user}".')
        if reply.status != 200:
            raise UpstreamUnavailable(f"lichess answered HTTP {reply.status} for the profile.")
        try:
            profile = _profile_decoder.decode(reply.body)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise UpstreamBadData(f"lichess sent a profile we could not read: {exc}") from None
        if profile.disabled:
            raise PlayerNotFound(f'lichess account "{user}" is closed.')
        return None if profile.count is None else profile.count.all


async def _readline(resp: aiohttp.ClientResponse) -> bytes:
    # The line limit is twice the session's read buffer (512 KiB); one game is a few KB.
    # Older aiohttp raises ValueError("Chunk too big") instead of LineTooLong.
    try:
        return await resp.content.readline()
    except (LineTooLong, ValueError):
        raise UpstreamBadData("lichess sent a line too long to be one game.") from None
