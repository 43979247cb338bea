"""The asyncio driver of the slot manager for a single hub process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from hub.queue.core import Entry, Slots
from hub.queue.driver import Event
from hub.tasks import cancel_and_wait


class LocalQueue:
    durable = False  # the line lives in this process only

    """Feeds the sans-I/O core from one event loop and hands its decisions on.

    Every core call is synchronous and the loop runs one coroutine at a time,
    so no lock is needed: events are applied in the order they arrive.
    """

    def __init__(
        self,
        slots: Slots,
        clock: Callable[[], float],
        tick_s: float = 1.0,
    ) -> None:
        self.slots = slots
        self.clock = clock
        # The hub that acts on decisions sets this when it takes the queue.
        self.apply: Callable[[Sequence[Event]], None] = lambda events: None
        self.tick_s = tick_s
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="queue-ticker")

    def ready(self) -> bool:
        return True

    async def stop(self) -> None:
        if self._ticker is not None:
            await cancel_and_wait([self._ticker])

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.apply(self.slots.tick(self.clock()))

    async def join(
        self, ticket: str, import_id: str, source: str, username: str
    ) -> tuple[Entry, bool]:
        entry, joined, decisions = self.slots.join(
            ticket, import_id, source, username, self.clock()
        )
        self.apply(decisions)
        return entry, joined

    async def attach(self, ticket: str) -> Entry:
        return self.slots.attach(ticket)

    async def detach(self, ticket: str) -> None:
        self.slots.detach(ticket, self.clock())

    async def cancel(self, ticket: str) -> None:
        self.apply(self.slots.cancel(ticket, self.clock()))

    async def abort(self, import_id: str, reason: str) -> None:
        self.apply(self.slots.abort(import_id, reason, self.clock()))

    async def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int
    ) -> None:
        self.apply(self.slots.progress(import_id, pages, pages_total, games, self.clock()))

    async def interrupted(self, import_id: str) -> None:
        """The hub is stopping mid-import: nothing outlives this process, so it simply ends."""
        await self.finished(import_id, ok=False)

    async def sized(self, import_id: str, pages: int) -> None:
        self.apply(self.slots.sized(import_id, pages))

    async def finished(self, import_id: str, ok: bool) -> None:
        self.apply(self.slots.finished(import_id, self.clock(), ok))
