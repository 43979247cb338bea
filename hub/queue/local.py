"""The asyncio driver of the slot manager for a single hub process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from hub.queue.core import Entry, Slots
from hub.queue.driver import Event


class LocalQueue:
    """Feeds the sans-I/O core from one event loop and returns its decisions.

    Every core call is synchronous and the loop runs one coroutine at a time,
    so no lock is needed: events are applied in the order they arrive.
    """

    durable = False  # the line lives in this process only

    def __init__(self, slots: Slots, clock: Callable[[], float], tick_s: float = 1.0) -> None:
        self.slots = slots
        self.clock = clock
        self.tick_s = tick_s

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return True

    async def events(self) -> list[Event]:
        """Grace periods that ran out, once a tick."""
        await asyncio.sleep(self.tick_s)
        return list(self.slots.tick(self.clock()))

    async def join(
        self, ticket: str, import_id: str, source: str, username: str, address: str
    ) -> tuple[Entry, bool, list[Event]]:
        entry, joined, decisions = self.slots.join(
            ticket, import_id, source, username, self.clock(), address
        )
        return entry, joined, list(decisions)

    async def attach(self, ticket: str) -> Entry:
        return self.slots.attach(ticket)

    async def detach(self, ticket: str) -> None:
        self.slots.detach(ticket, self.clock())

    async def cancel(self, ticket: str) -> list[Event]:
        return list(self.slots.cancel(ticket, self.clock()))

    async def abort(self, import_id: str, reason: str) -> list[Event]:
        return list(self.slots.abort(import_id, reason, self.clock()))

    async def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int
    ) -> list[Event]:
        return list(self.slots.progress(import_id, pages, pages_total, games, self.clock()))

    async def interrupted(self, import_id: str) -> list[Event]:
        """The hub is stopping mid-import: nothing outlives this process, so it simply ends."""
        return await self.finished(import_id, ok=False)

    async def sized(self, import_id: str, pages: int) -> list[Event]:
        return list(self.slots.sized(import_id, pages))

    async def finished(self, import_id: str, ok: bool) -> list[Event]:
        return list(self.slots.finished(import_id, self.clock(), ok))

    async def resize(self, slots: int, lanes: Mapping[str, int]) -> list[Event]:
        return list(self.slots.resize(slots, lanes, self.clock()))

    async def pause(self, source: str | None, reason: str) -> list[Event]:
        return list(self.slots.pause(source, reason, self.clock()))

    async def resume(self, source: str | None) -> list[Event]:
        return list(self.slots.resume(source, self.clock()))
