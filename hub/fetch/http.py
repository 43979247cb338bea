"""The one pooled HTTP session: retries, per-upstream in-flight caps and traffic stats."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import aiohttp
import msgspec
from multidict import CIMultiDictProxy

from hub.errors import RateLimited, UpstreamPaused, UpstreamUnavailable
from hub.fetch.base import WaitCallback
from hub.fetch.breaker import Breaker, Change, Opened, Turn
from hub.fetch.shared import SharedLimit
from hub.settings import Settings

log = logging.getLogger(__name__)

UPSTREAMS = ("chesscom", "lichess")
SITE_NAMES = {"chesscom": "chess.com", "lichess": "lichess"}  # as people know them

# Failures worth another attempt: a dropped or refused connection, a cut body, a stalled read.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)

# A Retry-After beyond this is treated as this: an import must not hang for hours.
MAX_RETRY_AFTER_S = 600.0


class HttpStats(msgspec.Struct, kw_only=True):
    """Counters for /health and the tests: proof that connections are pooled."""

    connections_created: int = 0
    connections_reused: int = 0
    requests_by_status: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    retries: dict[str, int] = msgspec.field(default_factory=dict)
    breaker_open: dict[str, int] = msgspec.field(default_factory=dict)  # 1 while open
    breaker_openings: dict[str, int] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole, non-retryable answer; the caller decides what its status means."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Budget:
    """The retry allowance of one logical request: `settings.retries` attempts after the first."""

    def __init__(self, http: Http, upstream: str, on_wait: WaitCallback | None) -> None:
        self._http = http
        self._upstream = upstream
        self._on_wait = on_wait
        self._used = 0
        self._last = ""
        self._only_rate_limited = True  # every failure so far was a 429
        self.status: int | None = None  # the last HTTP status that failed, for the ledger

    def reset(self) -> None:
        """Progress was made (a page was yielded): a later failure is a new request."""
        self._used = 0

    async def rate_limited(self, retry_after: float | None, detail: str) -> None:
        """Sleep out a 429, or raise RateLimited when the budget is spent."""
        settings = self._http.settings
        pause = (
            settings.pause_chesscom_s if self._upstream == "chesscom" else settings.pause_lichess_s
        )
        await self._spend(
            "rate_limited", pause if retry_after is None else retry_after, detail, True
        )

    async def backoff(self, detail: str) -> None:
        """Sleep with full jitter after a transient failure, or raise when the budget is spent."""
        settings = self._http.settings
        cap = min(settings.retry_max_s, settings.retry_base_s * 2**self._used)
        await self._spend("retrying", random.uniform(0, cap), detail, False)

    async def _spend(self, reason: str, delay: float, detail: str, rate_limited: bool) -> None:
        self._last = detail
        self._only_rate_limited = self._only_rate_limited and rate_limited
        if self._used >= self._http.settings.retries:
            self.give_up()
        self._used += 1
        self._http.count_retry(self._upstream)
        log.info("%s: %s; %s in %.2fs", self._upstream, detail, reason, delay)
        if self._on_wait is not None:
            self._on_wait(reason, delay)
        await asyncio.sleep(delay)

    def give_up(self) -> None:
        # A timeout or a 5xx among the failures means the upstream is struggling, not
        # merely asking us to slow down: a 429 after our own timed-out requests is an echo.
        if self._only_rate_limited:
            raise RateLimited(f"{self._upstream} kept answering 429 Too Many Requests.", 429)
        raise UpstreamUnavailable(
            f"{self._upstream} is not answering right now ({self._last}). Try again later.",
            self.status,
        )


class Breakers:
    """Every upstream's breaker, told of every attempt; what they decide waits for the hub.

    The rules are in `hub.fetch.breaker`; this feeds it from the request paths, keeps
    the metrics, and queues its changes for `changes()`, which the hub awaits in a loop.
    """

    def __init__(
        self, settings: Settings, stats: HttpStats, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.breaker = Breaker(UPSTREAMS, settings.breaker_failures, settings.breaker_probe_s)
        self.stats = stats
        self.clock = clock
        self._changes: asyncio.Queue[Change] = asyncio.Queue()

    async def changes(self) -> list[Change]:
        """What the breakers decided since the last call, in order; waits for one."""
        changes = [await self._changes.get()]
        while not self._changes.empty():
            changes.append(self._changes.get_nowait())
        return changes

    def turn(self, upstream: str) -> Turn:
        """This attempt's turn; raises UpstreamPaused while the upstream's breaker is open."""
        turn = self.breaker.attempt(upstream, self.clock())
        if turn is Turn.REFUSE:
            raise UpstreamPaused(f"{SITE_NAMES[upstream]} is not answering.")
        return turn

    def verdict(self, upstream: str, turn: Turn, status: int | None) -> None:
        """Tell the breaker how an attempt went (status None: no answer at all).

        A probe is one attempt: when it fails, it raises UpstreamPaused, and the
        import it served waits for the next probe rather than retrying.
        """
        if status is None or status >= 500:
            changes = self.breaker.failed(upstream, self.clock(), turn)
        elif status == 429:
            self.breaker.settled(upstream, turn)
            changes = []
        else:
            changes = self.breaker.answered(upstream)
        for change in changes:
            self._changed(change)
        if turn is Turn.PROBE and (status is None or status >= 500 or status == 429):
            raise UpstreamPaused(f"{SITE_NAMES[upstream]} is still not answering.")

    def _changed(self, change: Change) -> None:
        upstream = change.upstream
        is_open = isinstance(change, Opened)
        self.stats.breaker_open[upstream] = int(is_open)
        if isinstance(change, Opened) and not change.again:
            self.stats.breaker_openings[upstream] = self.breaker.openings(upstream)
            log.warning(
                "%s is not answering: its imports wait, one probe every %gs",
                upstream,
                self.breaker.probe_s,
            )
        elif not is_open:
            log.info("%s answers again", upstream)
        self._changes.put_nowait(change)

    def settled(self, upstream: str, turn: Turn) -> None:
        self.breaker.settled(upstream, turn)


class Http:
    """THE aiohttp session of the app, with one in-flight semaphore per upstream."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        stats: HttpStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.session = session
        self.stats = stats
        # An upstream that stops answering is left alone but for a probe now and then.
        self.breakers = Breakers(settings, stats, clock)
        self._slots = {
            "chesscom": asyncio.Semaphore(settings.inflight_chesscom),
            "lichess": asyncio.Semaphore(settings.inflight_lichess),
        }
        # Set in a fleet: the same caps, held across every replica.
        self.shared: SharedLimit | None = None
        # Size probes queue apart and enter the request slots no more than `cap` at a
        # time, so a burst of them delays a running import by a request or two, not by
        # the whole burst.
        self._probes = {
            "chesscom": asyncio.Semaphore(settings.inflight_chesscom),
            "lichess": asyncio.Semaphore(settings.inflight_lichess),
        }
        # Connect and per-read timeouts only: a long but live lichess export must not be
        # killed by a total deadline, while a stalled one is.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.request_timeout_s,
            sock_read=settings.request_timeout_s,
        )

    @classmethod
    async def open(cls, settings: Settings) -> Http:
        stats = HttpStats(
            requests_by_status={u: {} for u in UPSTREAMS},
            retries=dict.fromkeys(UPSTREAMS, 0),
            breaker_open=dict.fromkeys(UPSTREAMS, 0),
            breaker_openings=dict.fromkeys(UPSTREAMS, 0),
        )

        async def created(
            _s: aiohttp.ClientSession,
            _c: SimpleNamespace,
            _p: aiohttp.TraceConnectionCreateStartParams,
        ) -> None:
            stats.connections_created += 1

        async def reused(
            _s: aiohttp.ClientSession,
            _c: SimpleNamespace,
            _p: aiohttp.TraceConnectionReuseconnParams,
        ) -> None:
            stats.connections_reused += 1

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_start.append(created)
        trace.on_connection_reuseconn.append(reused)
        connector = aiohttp.TCPConnector(
            limit=settings.http_limit, limit_per_host=settings.http_limit_per_host
        )
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": settings.user_agent},
            trace_configs=[trace],
        )
        return cls(settings, session, stats)

    async def close(self) -> None:
        await self.session.close()

    def budget(self, upstream: str, on_wait: WaitCallback | None = None) -> Budget:
        return Budget(self, upstream, on_wait)

    def count_retry(self, upstream: str) -> None:
        self.stats.retries[upstream] = self.stats.retries.get(upstream, 0) + 1

    def _count_status(self, upstream: str, status: int) -> None:
        by_status = self.stats.requests_by_status.setdefault(upstream, {})
        by_status[str(status)] = by_status.get(str(status), 0) + 1

    async def get(
        self,
        upstream: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        on_wait: WaitCallback | None = None,
        retry_on: frozenset[int] = frozenset(),
        limited: bool = True,
        probe: bool = False,
    ) -> Reply:
        """GET a whole body, retrying 429, 5xx, `retry_on` statuses and transient errors.

        `limited=False` skips the upstream's in-flight slot (for cheap non-stream calls);
        `probe=True` marks a size probe, which first waits for one of the upstream's probe turns.
        """
        if probe:
            async with self._probes[upstream]:
                return await self._fetch(
                    "GET", upstream, url, None, params, headers, on_wait, retry_on, limited
                )
        return await self._fetch(
            "GET", upstream, url, None, params, headers, on_wait, retry_on, limited
        )

    async def post(
        self,
        upstream: str,
        url: str,
        data: bytes,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        on_wait: WaitCallback | None = None,
    ) -> Reply:
        """POST and read the whole answer, in the upstream's slot, retrying like `get`."""
        return await self._fetch(
            "POST", upstream, url, data, params, headers, on_wait, frozenset(), True
        )

    async def _fetch(
        self,
        method: str,
        upstream: str,
        url: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        on_wait: WaitCallback | None,
        retry_on: frozenset[int],
        limited: bool,
    ) -> Reply:
        budget = self.budget(upstream, on_wait)
        while True:
            turn = self.breakers.turn(upstream)
            try:
                async with (
                    self._slot(upstream, limited),
                    self.session.request(
                        method,
                        url,
                        params=params,
                        headers=headers,
                        data=data,
                        timeout=self._timeout,
                    ) as resp,
                ):
                    self._count_status(upstream, resp.status)
                    # Read even error bodies so the connection goes back to the pool.
                    body = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except TRANSIENT_ERRORS as exc:
                self.breakers.verdict(upstream, turn, None)
                await budget.backoff(_describe(exc))
                continue
            except aiohttp.ClientError as exc:  # a bad URL, a redirect loop: retrying won't help
                self.breakers.settled(upstream, turn)
                raise UpstreamUnavailable(f"{upstream}: {_describe(exc)}") from exc
            except BaseException:  # cancelled: no verdict on the upstream
                self.breakers.settled(upstream, turn)
                raise
            self.breakers.verdict(upstream, turn, status)
            if status == 429 or status >= 500 or status in retry_on:
                budget.status = status
            if status == 429:
                retry_after = parse_retry_after(resp_headers.get("Retry-After"))
                await budget.rate_limited(retry_after, "429 Too Many Requests")
            elif status >= 500 or status in retry_on:
                await budget.backoff(f"HTTP {status}")
            else:
                return Reply(status=status, headers=resp_headers, body=body)

    @asynccontextmanager
    async def stream(
        self,
        upstream: str,
        url: str,
        budget: Budget,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streamed response, holding the upstream's slot until the block exits.

        429 and 5xx before the body are retried here; a body cut later is the caller's
        to resume, with the same `budget`.
        """
        while True:
            turn = self.breakers.turn(upstream)
            async with self._slot(upstream, True):
                try:
                    resp = await self.session.get(
                        url, params=params, headers=headers, timeout=self._timeout
                    )
                except TRANSIENT_ERRORS as exc:
                    detail: str | None = _describe(exc)
                    retry_after: float | None = None
                    rate_limited = False
                    self.breakers.verdict(upstream, turn, None)
                except aiohttp.ClientError as exc:
                    self.breakers.settled(upstream, turn)
                    raise UpstreamUnavailable(f"{upstream}: {_describe(exc)}") from exc
                except BaseException:  # cancelled: no verdict on the upstream
                    self.breakers.settled(upstream, turn)
                    raise
                else:
                    async with resp:
                        self._count_status(upstream, resp.status)
                        self.breakers.verdict(upstream, turn, resp.status)
                        rate_limited = resp.status == 429
                        if not rate_limited and resp.status < 500:
                            yield resp
                            return
                        detail = f"HTTP {resp.status}"
                        budget.status = resp.status
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        # Drain the short error body so the connection can be reused.
                        with suppress(*TRANSIENT_ERRORS):
                            await resp.read()
            # Sleep outside the slot so other imports are not held up by our wait.
            if rate_limited:
                await budget.rate_limited(retry_after, "429 Too Many Requests")
            else:
                await budget.backoff(detail or "error")

    @asynccontextmanager
    async def _slot(self, upstream: str, limited: bool) -> AsyncIterator[None]:
        if not limited:
            yield
            return
        async with self._slots[upstream]:
            if self.shared is None:
                yield
            else:
                async with self.shared.slot(upstream):
                    yield


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
