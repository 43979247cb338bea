"""Upstreams that stop answering: their imports pause, wait at the head of the line, go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from hub.errors import HubError
from hub.fetch.base import Source
from hub.fetch.breaker import Change, Opened
from hub.fetch.http import SITE_NAMES, Breakers
from hub.queue.core import Entry
from hub.queue.driver import Event, QueueDriver
from hub.queue.holds import BREAKER
from hub.tasks import cancel_and_wait

log = logging.getLogger("hub")

Dispatch = Callable[[Iterable[Event]], None]

# A breaker's pause lapses after this many probe intervals without a failed probe to
# renew it, so that a replica that dies with its breaker open cannot hold a fleet's
# line: every other replica's breaker may well be closed.
LAPSE_PROBES = 3


class Outages:
    """Acts on what the breakers decide; the rules stay in the breaker and in the core.

    An open breaker pauses its source (a pause held by the breaker, which the
    operator's resume does not lift), and an import that meets it goes back to
    the head of its line. While open, a prober asks the upstream a cheap
    question (the size probe of a player who waits for it) at each probe
    turn; the first answer closes the breaker and resumes the source.
    """

    def __init__(
        self,
        breakers: Breakers,
        sources: dict[str, Source],
        queue: QueueDriver,
        dispatch: Dispatch,
    ) -> None:
        self.breakers = breakers
        self.sources = sources
        self.queue = queue
        self.dispatch = dispatch
        self._probers: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """The hub's loop over the breakers' changes."""
        while True:
            for change in await self.breakers.changes():
                try:
                    await self._changed(change)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # In a fleet the line may be unreachable for a while: the next
                    # failed probe renews the pause, the next answer lifts it.
                    log.exception("could not act on a breaker", extra={"change": change})

    async def _changed(self, change: Change) -> None:
        upstream = change.upstream
        if isinstance(change, Opened):
            if upstream not in self._probers:
                self._probers[upstream] = asyncio.create_task(
                    self._probe_forever(upstream), name=f"probe-{upstream}"
                )
            await self._hold(upstream)
        else:
            prober = self._probers.pop(upstream, None)
            if prober is not None:
                prober.cancel()
            self.dispatch(await self.queue.resume(upstream, by=BREAKER))

    async def stop(self) -> None:
        await cancel_and_wait(list(self._probers.values()))
        self._probers.clear()

    async def send_back(self, entry: Entry) -> None:
        """A running import met the open breaker: to the head of its line, paused."""
        if self.breakers.breaker.is_open(entry.source):
            # Again: in a fleet another replica's breaker may have resumed the source.
            try:
                await self._hold(entry.source)
            except Exception as exc:  # the return to the line below must not be lost
                log.warning("could not pause a site", extra={"error": str(exc)})
        log.info(
            "import back to the head of the line",
            extra={"import_id": entry.import_id, "source": entry.source, "pages": entry.pages},
        )
        self.dispatch(await self.queue.requeue(entry.import_id))

    async def _hold(self, upstream: str) -> None:
        lapse_s = LAPSE_PROBES * self.breakers.breaker.probe_s
        reason = f"{SITE_NAMES[upstream]} is not answering"
        self.dispatch(await self.queue.pause(upstream, reason, by=BREAKER, lapse_s=lapse_s))

    async def _probe_forever(self, upstream: str) -> None:
        breaker, clock = self.breakers.breaker, self.breakers.clock
        try:
            while (due := breaker.next_probe(upstream)) is not None:
                await asyncio.sleep(max(due - clock(), 0.0))
                if breaker.next_probe(upstream) != due:
                    continue  # another request took this turn
                entry = self.queue.slots.head(upstream)
                if entry is None:
                    # Nobody waits for this upstream; the next import to arrive will.
                    await asyncio.sleep(breaker.probe_s)
                    continue
                try:
                    await self.sources[upstream].probe(entry.username, None)
                except HubError:
                    pass  # "no such player" is an answer too; the breaker has heard it
                except Exception:
                    log.exception("breaker probe failed", extra={"source": upstream})
        finally:
            if self._probers.get(upstream) is asyncio.current_task():
                del self._probers[upstream]
