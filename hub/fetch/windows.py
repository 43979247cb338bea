"""lichess games cut into export windows: parsing, pages and their ledger rows, without I/O."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Literal

import msgspec

from hub.errors import UpstreamBadData
from hub.fetch.base import Page
from hub.store.base import GameRow, LedgerWrite, Unit

log = logging.getLogger("hub.fetch.lichess")

UPSTREAM = "lichess"
# Statuses that say how the loser lost; anything else is reported as a plain "loss".
LOSS_STATUSES = frozenset(
    {"mate", "resign", "outoftime", "timeout", "cheat", "noStart", "variantEnd"}
)
IN_PROGRESS = frozenset({"created", "started"})
STANDARD_START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"


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
    variant: str = "standard"
    initial_fen: str | None = msgspec.field(default=None, name="initialFen")


class _Id(msgspec.Struct):
    """Only the id of a line that would not parse, to name it."""

    id: str | None = None


class Cursor(msgspec.Struct, kw_only=True):
    since: int  # epoch MILLISECONDS: createdAt of the last game stored + 1
    seen: int  # games counted so far, for the page estimate


_game_decoder = msgspec.json.Decoder(Game)
_id_decoder = msgspec.json.Decoder(_Id)
_cursor_decoder = msgspec.json.Decoder(Cursor)


def decode_game(line: bytes) -> Game:
    try:
        return _game_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise UpstreamBadData(f"lichess sent a game line we could not read: {exc}") from None


def name_of(line: bytes) -> str:
    """The id of a line that would not parse, or "?" when even that is unreadable."""
    try:
        return _id_decoder.decode(line).id or "?"
    except (msgspec.DecodeError, RecursionError):
        return "?"


def _name(player: _Player) -> str:
    if player.user is not None:
        return player.user.name
    if player.ai_level is not None:
        return f"AI level {player.ai_level}"
    return "Anonymous"


def _is(player: _Player, username: str) -> bool:
    user = player.user
    return user is not None and username in (user.id, user.name.lower())


def storable(game: Game, username: str) -> bool:
    """True for a finished game the player played: one that becomes a row."""
    players = game.players
    return game.status not in IN_PROGRESS and (
        _is(players.white, username) or _is(players.black, username)
    )


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
    start = game.initial_fen
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
        # "fromPosition" is standard chess from another start: the start says so.
        variant="standard" if game.variant == "fromPosition" else game.variant,
        initial_fen=start if start and start != STANDARD_START else None,
        listed_ms=game.created_at,
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


def encode_cursor(cursor: Cursor) -> str:
    return msgspec.json.encode(cursor).decode()


class Block:
    """The games of one unit being read: rows to store, and what was skipped and why."""

    def __init__(self, username: str, ongoing: Collection[str] = ()) -> None:
        self.username = username
        self.known_ongoing = ongoing  # ids the ledger holds as in progress
        self.rows: list[GameRow] = []
        self.ids: set[str] = set()
        self.skipped: Counter[str] = Counter()
        self.unreadable: list[str] = []
        self.ongoing: list[tuple[str, int]] = []
        self.first: int | None = None  # createdAt range of the games seen, ms
        self.last: int | None = None

    @property
    def seen(self) -> int:
        return len(self.ids) + len(self.unreadable)

    def add(self, game: Game) -> GameRow | None:
        """Take one game; its row, if it is a finished game of the player."""
        self.ids.add(game.id)
        self.first = game.created_at if self.first is None else min(self.first, game.created_at)
        self.last = game.created_at if self.last is None else max(self.last, game.created_at)
        if game.status in IN_PROGRESS:
            self.skipped["ongoing"] += 1
            self.ongoing.append((game.id, game.created_at))
            return None
        row = to_row(game, self.username)
        if row is None:
            self.skipped["not_the_player"] += 1
        else:
            self.rows.append(row)
        return row

    def add_unreadable(self, name: str) -> None:
        log.warning("lichess game %s unreadable; skipped", name)
        self.skipped["unparseable"] += 1
        self.unreadable.append(name)

    def write(self, unit: str, first: int | None = None, last: int | None = None) -> LedgerWrite:
        """The ledger change of this block read whole as `unit`."""
        row = Unit(
            unit=unit,
            state="stored",
            status=200,
            games_seen=self.seen,
            skipped=dict(self.skipped),
            unreadable=list(self.unreadable),
            first_ms=self.first if first is None else first,
            last_ms=self.last if last is None else last,
        )
        finished = [r.game_id for r in self.rows if r.game_id in self.known_ongoing]
        return LedgerWrite(unit=row, ongoing_add=list(self.ongoing), ongoing_remove=finished)


def window(first: int, last: int) -> str:
    return f"{first}..{last}"


def tail(since: int | None) -> str:
    """The unread rest of an export, from `since` on."""
    return f"{since or 0}.."


class Pager:
    """Cuts the export into pages and keeps the resume point; no I/O, so it is unit-testable.

    Each page is one export window in the ledger. While more follows, the rest of the
    export is a pending unit, so an import stopped half way is never taken as complete.
    """

    def __init__(
        self,
        username: str,
        page_size: int,
        total: int | None,
        start: Cursor | None,
        lookback_ms: int,
        *,
        ongoing: Collection[str] = (),
        open_units: Sequence[str] = (),
    ) -> None:
        self._user = username
        self._size = page_size
        self._total = total  # the profile's count.all: only an estimate of the export
        self._floor = start.since if start else 0  # games created before were stored before
        self._seen = start.seen if start else 0
        self._ongoing = ongoing
        # Units a successful read supersedes: open ones left by an earlier import.
        self._drop = list(open_units)
        # Games in progress are asked for by id, so the look-back is only a safety margin
        # for an export that lags behind the newest games; the store drops what it has.
        self.since: int | None = max(0, self._floor - lookback_ms) if start else None
        self.yielded = 0
        self._ids: set[str] = set()  # ids yielded by this import, across resumed requests
        self.restart()

    def restart(self) -> None:
        """Drop the partial block: the export is requested again from `since`."""
        self._block = Block(self._user, self._ongoing)
        self._block_seen = self._seen
        self._last_created = self._floor - 1

    def feed(self, game: Game) -> Page | None:
        """Take the next game; return the previous block once it is full."""
        if game.id in self._ids or game.id in self._block.ids:
            return None  # the export has sent the same game twice
        page = None
        # Never cut between games created in the same ms: since = last + 1 would skip one.
        full = len(self._block.rows) >= self._size
        if full and storable(game, self._user) and game.created_at != self._last_created:
            page = self._cut(more=True)
        self._last_created = max(self._last_created, game.created_at)
        if game.created_at >= self._floor:
            self._block_seen += 1  # lookback re-reads are not new games
        self._block.add(game)
        return page

    def unreadable(self, name: str) -> None:
        self._block.add_unreadable(name)

    def finish(self) -> Page | None:
        """The export ended: the last, partial block, or a page closing open units."""
        if self._block.seen or self._drop:
            return self._cut(more=False)
        return None

    def failed(self, error: str, status: int | None = None) -> Page:
        """The export broke for good: the rest from `since` is a failed unit."""
        unit = Unit(unit=tail(self.since), state="failed", status=status, error=error)
        write = LedgerWrite(unit=unit, drop=[u for u in self._drop if u != unit.unit])
        return Page(rows=[], pages_total=self.yielded + 1, cursor=None, ledger=write)

    def _cut(self, more: bool) -> Page:
        block = self._block
        self.yielded += 1
        pages_total = self.yielded
        if more:
            # The next row is in hand, so at least one more page follows whatever the
            # profile count says (it disagrees with exports).
            left = max(0, (self._total or 0) - self._block_seen)
            pages_total += max(1, math.ceil(left / self._size))
        self.since = max(self._floor, self._last_created + 1)
        self._seen = self._block_seen
        self._ids.update(block.ids)
        write = LedgerWrite()
        if block.seen:
            first = block.first if block.first is not None else self.since
            last = block.last if block.last is not None else first
            write = block.write(window(first, last), first, last)
        write.drop = self._drop
        self._drop = []
        if more:
            write.pending = [tail(self.since)]
            self._drop = write.pending[:]  # superseded by the next page
        page = Page(
            rows=block.rows,
            pages_total=pages_total,
            cursor=encode_cursor(Cursor(since=self.since, seen=self._seen)),
            ledger=write,
        )
        self._block = Block(self._user, self._ongoing)
        return page
