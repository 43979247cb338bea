"""lichess game export: one NDJSON stream cut into pages, and games in progress asked by id."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator
from urllib.parse import quote

import aiohttp
import msgspec
from aiohttp.http_exceptions import LineTooLong

from hub.errors import PlayerNotFound, RateLimited, UpstreamBadData, UpstreamUnavailable
from hub.fetch.base import Page, Probed, WaitCallback, needs_repair
from hub.fetch.http import TRANSIENT_ERRORS, Http
from hub.fetch.windows import (
    UPSTREAM,
    Block,
    Cursor,
    Game,
    Pager,
    decode_cursor,
    decode_game,
    name_of,
    parse_game,
    to_row,
)
from hub.settings import Settings
from hub.store.base import Comparable, Ledger, LedgerWrite, Unit

__all__ = [
    "COMPARABLE",
    "Cursor",
    "Game",
    "Lichess",
    "Pager",
    "decode_cursor",
    "decode_game",
    "parse_game",
    "to_row",
]

log = logging.getLogger(__name__)

COMPARABLE = Comparable(
    site_what="finished games: lichess count.all (without games in progress or imported PGNs)",
    stored_what="stored games",
)
IDS_PER_REQUEST = 300  # the most lichess takes in one POST /api/games/export/_ids
ONGOING = "ongoing"  # the ledger unit of the games in progress, asked for by id
_EXPORT = {"pgnInJson": "true", "clocks": "false", "opening": "true"}
_NDJSON = {"Accept": "application/x-ndjson"}
_COUNT_KEPT_S = 3600.0


class _Count(msgspec.Struct):
    all: int


class _Profile(msgspec.Struct):
    count: _Count | None = None
    disabled: bool = False


_profile_decoder = msgspec.json.Decoder(_Profile)


class Lichess:
    """The history as one dateAsc export; a page is each `lichess_page` games."""

    name = UPSTREAM
    comparable = COMPARABLE

    def __init__(self, http: Http, settings: Settings) -> None:
        self._http = http
        self._base = settings.lichess_url.rstrip("/")
        self._page = settings.lichess_page
        self._lookback_ms = int(settings.lichess_lookback_s * 1000)
        self._probed: Probed[int | None] = Probed()
        # The profile count each import read as it began: the site's own count for its receipt.
        # (read at, count); an import that fails never asks for it, so old ones are dropped.
        self._counted: dict[str, tuple[float, int | None]] = {}

    async def probe(self, username: str, cursor: str | None) -> int | None:
        """Pages left by the profile's game count: one cheap request."""
        user = username.lower()
        request = profile_count(self._http, self._base, user, None, probe=True)
        total = await self._probed.fetch(user, request)
        if total is None:
            return None
        start = decode_cursor(cursor)
        return math.ceil(max(0, total - (start.seen if start else 0)) / self._page)

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
        ledger = ledger or Ledger()
        # The profile first: an unknown player fails before anything else is asked. A repair
        # that reads no export needs no page estimate, and asks no more than it reads.
        total = None if repair else await self._total(user, on_wait)
        followed = ledger.units.get(ONGOING)
        # A repair asks about games in progress only when that failed last time.
        follow = not repair or needs_repair(followed, None)
        if follow and ledger.ongoing:
            async for page in self._ongoing(user, ledger.ongoing, on_wait):
                yield page
        start = decode_cursor(cursor)
        # A cursor from before the ledger: nobody followed that player's games in progress,
        # so they are asked for once (again, if that failed).
        legacy = start is not None and not ledger.units
        unfollowed = followed is not None and followed.state == "failed" and not ledger.ongoing
        if follow and start is not None and ((legacy and not repair) or unfollowed):
            yield await self._in_progress(user, on_wait)
        if repair:
            for unit in ledger.units.values():
                closed = unit.first_ms is not None and unit.last_ms is not None
                if closed and needs_repair(unit, ledger.stored.get(unit.unit, 0)):
                    yield await self._window(user, unit, ledger, on_wait)
            if legacy:
                start = None  # nothing vouches for what it read: the whole export again
            elif start is not None and not ledger.open_units():
                return  # the export from the cursor was read to its end
            total = await self._total(user, on_wait)
        pager = Pager(
            user,
            self._page,
            total,
            start,
            self._lookback_ms,
            ongoing=frozenset(ledger.ongoing),
            open_units=ledger.open_units(),
        )
        async for page in self._export(user, pager, on_wait):
            yield page

    async def _export(
        self, user: str, pager: Pager, on_wait: WaitCallback | None
    ) -> AsyncGenerator[Page, None]:
        url = f"{self._base}/api/games/user/{quote(user, safe='')}"
        budget = self._http.budget(UPSTREAM, on_wait)
        try:
            while True:
                params = {"sort": "dateAsc", "ongoing": "true", **_EXPORT}
                if pager.since is not None:
                    params["since"] = str(pager.since)  # epoch ms
                try:
                    async with self._http.stream(
                        UPSTREAM, url, budget, params=params, headers=_NDJSON
                    ) as resp:
                        _check(resp, user)
                        while line := await _readline(resp):
                            if not line.strip():
                                continue
                            page = _feed(pager, line)
                            if page is not None:
                                yield page
                                budget.reset()  # progress: a later cut is a fresh failure
                        last = pager.finish()
                        if last is not None:
                            yield last
                        return
                except TRANSIENT_ERRORS as exc:
                    # A cut stream: resume from the last yielded page, re-reading the block.
                    pager.restart()
                    await budget.backoff(f"export stream cut: {type(exc).__name__}")
        except (UpstreamUnavailable, RateLimited, UpstreamBadData) as exc:
            # The cursor stays at the last stored game; the ledger says where it stopped.
            yield pager.failed(exc.message, exc.status)
            raise

    async def _ongoing(
        self, user: str, ids: list[str], on_wait: WaitCallback | None
    ) -> AsyncGenerator[Page, None]:
        """Ask for the games in progress by id; the finished ones are stored."""
        url = f"{self._base}/api/games/export/_ids"
        seen, new_total, skipped = 0, 0, {"ongoing": 0, "not_found": 0}
        for start in range(0, len(ids), IDS_PER_REQUEST):
            batch = ids[start : start + IDS_PER_REQUEST]
            try:
                reply = await self._http.post(
                    UPSTREAM,
                    url,
                    ",".join(batch).encode(),
                    params=_EXPORT,
                    headers=_NDJSON,
                    on_wait=on_wait,
                )
                if reply.status != 200:
                    raise UpstreamUnavailable(f"lichess answered HTTP {reply.status} for ids.")
            except (UpstreamUnavailable, RateLimited) as exc:
                log.warning("lichess games in progress of %s: %s", user, exc.message)
                unit = Unit(unit=ONGOING, state="failed", status=exc.status, error=exc.message)
                yield Page(rows=[], pages_total=None, cursor=None, ledger=LedgerWrite(unit=unit))
                return
            block = Block(user, frozenset(batch))
            for line in reply.body.splitlines():
                if line.strip():
                    _add(block, line)
            missing = [game for game in batch if game not in block.ids]
            seen += block.seen
            new_total += len(block.rows)
            skipped["ongoing"] += block.skipped["ongoing"]
            skipped["not_found"] += len(missing)
            still = {game for game, _ in block.ongoing}
            unit = Unit(
                unit=ONGOING,
                state="stored",
                status=200,
                games_seen=seen,
                skipped={k: v for k, v in skipped.items() if v},
                unreadable=block.unreadable,
            )
            # The games no longer in progress leave the list, as do ids lichess does not know.
            write = LedgerWrite(unit=unit, ongoing_remove=[g for g in batch if g not in still])
            yield Page(rows=block.rows, pages_total=None, cursor=None, ledger=write)

    async def _in_progress(self, user: str, on_wait: WaitCallback | None) -> Page:
        """Every game of the player still in progress, to follow them by id from now on."""
        params = {"ongoing": "true", "finished": "false", **_EXPORT}
        try:
            block = await self._read_all(user, params, frozenset(), on_wait)
        except (UpstreamUnavailable, RateLimited, UpstreamBadData) as exc:
            unit = Unit(unit=ONGOING, state="failed", status=exc.status, error=exc.message)
            return Page(rows=[], pages_total=None, cursor=None, ledger=LedgerWrite(unit=unit))
        # Only games in progress were asked for; any finished one is stored all the same.
        write = block.write(ONGOING)
        assert write.unit is not None
        write.unit.first_ms = write.unit.last_ms = None
        return Page(rows=block.rows, pages_total=None, cursor=None, ledger=write)

    async def _window(
        self, user: str, unit: Unit, ledger: Ledger, on_wait: WaitCallback | None
    ) -> Page:
        """Read one export window again, whole, for a repair; the cursor does not move."""
        assert unit.first_ms is not None and unit.last_ms is not None
        params = {"sort": "dateAsc", "ongoing": "true", **_EXPORT}
        params.update(since=str(unit.first_ms), until=str(unit.last_ms))
        try:
            block = await self._read_all(user, params, frozenset(ledger.ongoing), on_wait)
        except (UpstreamUnavailable, RateLimited, UpstreamBadData) as exc:
            failed = msgspec.structs.replace(
                unit, state="failed", status=exc.status, error=exc.message
            )
            return Page(rows=[], pages_total=None, cursor=None, ledger=LedgerWrite(unit=failed))
        write = block.write(unit.unit, unit.first_ms, unit.last_ms)
        return Page(rows=block.rows, pages_total=None, cursor=None, ledger=write)

    async def _read_all(
        self,
        user: str,
        params: dict[str, str],
        ongoing: frozenset[str],
        on_wait: WaitCallback | None,
    ) -> Block:
        """One export request read whole into a block, read again from the start if cut."""
        url = f"{self._base}/api/games/user/{quote(user, safe='')}"
        budget = self._http.budget(UPSTREAM, on_wait)
        while True:
            block = Block(user, ongoing)
            try:
                async with self._http.stream(
                    UPSTREAM, url, budget, params=params, headers=_NDJSON
                ) as resp:
                    _check(resp, user)
                    while line := await _readline(resp):
                        if line.strip():
                            _add(block, line)
                return block
            except TRANSIENT_ERRORS as exc:
                await budget.backoff(f"export stream cut: {type(exc).__name__}")

    async def _total(self, user: str, on_wait: WaitCallback | None) -> int | None:
        """The profile's game count, the probe's if fresh; kept as the site's own count."""
        total = await self._probed.take(user)
        if total is None:
            total = await profile_count(self._http, self._base, user, on_wait)
        now = time.monotonic()
        self._counted = {u: c for u, c in self._counted.items() if now - c[0] < _COUNT_KEPT_S}
        self._counted[user] = (now, total)
        return total

    async def site_count(self, username: str, on_wait: WaitCallback | None = None) -> int | None:
        """lichess's own count of finished games: the profile's count.all.

        The one read as the import began is used: a game that finishes meanwhile can only
        make the store hold more than it, never make a missing game look present.
        """
        user = username.lower()
        if user in self._counted:
            return self._counted.pop(user)[1]
        return await profile_count(self._http, self._base, user, on_wait)


async def profile_count(
    http: Http, base: str, user: str, on_wait: WaitCallback | None, probe: bool = False
) -> int | None:
    """The profile's count.all: finished games. Raises PlayerNotFound for no such player."""
    # Not a game export: lichess limits concurrent exports, not profile reads, so this
    # does not take the stream slot (and cannot wait behind another import's export).
    reply = await http.get(
        UPSTREAM,
        f"{base}/api/user/{quote(user, safe='')}",
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


def _check(resp: aiohttp.ClientResponse, user: str) -> None:
    if resp.status == 404:
        raise PlayerNotFound(f'lichess has no player "{user}".')
    if resp.status != 200:
        raise UpstreamUnavailable(f"lichess answered HTTP {resp.status}.")


def _feed(pager: Pager, line: bytes) -> Page | None:
    try:
        game = decode_game(line)
    except UpstreamBadData:
        pager.unreadable(name_of(line))
        return None
    return pager.feed(game)


def _add(block: Block, line: bytes) -> None:
    try:
        game: Game = decode_game(line)
    except UpstreamBadData:
        block.add_unreadable(name_of(line))
        return
    if game.id not in block.ids:
        block.add(game)


async def _readline(resp: aiohttp.ClientResponse) -> bytes:
    # The line limit is twice the session's read buffer (512 KiB); one game is a few KB.
    # Older aiohttp raises ValueError("Chunk too big") instead of LineTooLong.
    try:
        return await resp.content.readline()
    except (LineTooLong, ValueError):
        raise UpstreamBadData("lichess sent a line too long to be one game.") from None
