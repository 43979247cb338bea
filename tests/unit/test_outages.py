"""What the hub does with its breakers: pause a site, probe it, resume it, send imports back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from hub.fetch.base import Page, WaitCallback
from hub.fetch.breaker import Turn
from hub.fetch.http import Breakers, HttpStats
from hub.outages import LAPSE_PROBES, Outages
from hub.queue.core import Slots
from hub.queue.driver import Event
from hub.queue.eta import Ewma
from hub.queue.holds import BREAKER
from hub.queue.local import LocalQueue
from hub.settings import Settings
from tests.poll import eventually


class Site:
    """A chess site that is down until told otherwise; its probe is one request."""

    def __init__(self, name: str, breakers: Breakers) -> None:
        self.name = name
        self.breakers = breakers
        self.up = False
        self.asked: list[str] = []

    async def probe(self, username: str, cursor: str | None) -> int | None:
        turn = self.breakers.turn(self.name)  # UpstreamPaused unless it is the probe's turn
        self.asked.append(username)
        self.breakers.verdict(self.name, turn, 200 if self.up else 503)
        return 1

    async def pages(
        self, username: str, cursor: str | None, on_wait: WaitCallback | None = None
    ) -> AsyncGenerator[Page, None]:
        raise AssertionError("no import runs here")
        yield  # pragma: no cover


async def test_a_site_that_stops_answering_is_paused_probed_and_resumed() -> None:
    settings = Settings(breaker_failures=2, breaker_probe_s=0.05)
    breakers = Breakers(settings, HttpStats(breaker_open={}, breaker_openings={}))
    sites: dict[str, Any] = {s: Site(s, breakers) for s in ("chesscom", "lichess")}
    core = Slots(1, {"chesscom": 1, "lichess": 1}, {s: Ewma(10.0, 1.0) for s in sites})
    queue = LocalQueue(core, time.monotonic)
    dispatched: list[Event] = []

    def dispatch(events: Iterable[Event]) -> None:
        dispatched.extend(events)

    outages = Outages(breakers, sites, queue, dispatch)
    await queue.join("t0", "running", "chesscom", "first", "a")
    await queue.join("t1", "waiting", "chesscom", "second", "a")
    run = asyncio.create_task(outages.run())
    try:
        for _ in range(2):  # two requests of the running import fail
            breakers.verdict("chesscom", breakers.turn("chesscom"), 503)
        pause = await eventually(lambda: core.paused.get("chesscom"), "chess.com paused")
        assert (
            pause is not None
            and pause.reason == "chess.com is not answering"
            and pause.by == BREAKER
        )
        assert pause.until is not None and pause.until - time.monotonic() <= LAPSE_PROBES * 0.05

        # The running import meets the open breaker: back to the head, first in line.
        await outages.send_back(core.entries["running"])
        assert list(core.line) == ["running", "waiting"] and not core.running
        asked = len(sites["chesscom"].asked)

        # Probes go out for the head of the line, one an interval, and renew the pause.
        await eventually(lambda: len(sites["chesscom"].asked) >= asked + 2, "two probes")
        assert set(sites["chesscom"].asked[asked:]) == {"first"}
        assert "chesscom" in core.paused
        sites["chesscom"].up = True
        await eventually(lambda: "chesscom" not in core.paused, "chess.com resumed")
        assert list(core.running) == ["running"]  # the import sent back goes first
        assert sites["lichess"].asked == []
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await outages.stop()
    assert breakers.stats.breaker_openings == {"chesscom": 1}


def test_turns_are_refused_while_open() -> None:
    breakers = Breakers(Settings(breaker_failures=1, breaker_probe_s=30.0), HttpStats())
    breakers.verdict("lichess", Turn.GO, None)
    assert breakers.stats.breaker_open == {"lichess": 1}
    try:
        breakers.turn("lichess")
    except Exception as exc:
        assert getattr(exc, "code", None) == "upstream_paused"
    else:
        raise AssertionError("an open breaker let a request through")
