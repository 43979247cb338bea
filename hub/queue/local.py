"""The asyncio driver of the slot manager for a single hub process."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from hub.queue import controls
from hub.queue.core import Entry, Slots
from hub.queue.driver import Event
from hub.queue.holds import OPERATOR

log = logging.getLogger("hub")


class ControlsStore(Protocol):
    """Where the operator's settings of the line outlive the process."""

    async def load_controls(self) -> str | None: ...
    async def save_controls(self, controls: str, updated_at: float) -> None: ...


class LocalQueue:
    """Feeds the sans-I/O core from one event loop and returns its decisions.

    Every core call is synchronous and the loop runs one coroutine at a time,
    so no lock is needed: events are applied in the order they arrive.
    """

    durable = False  # the line lives in this process only

    def __init__(
        self,
        slots: Slots,
        clock: Callable[[], float],
        tick_s: float = 1.0,
        store: ControlsStore | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.slots = slots
        self.clock = clock
        self.tick_s = tick_s
        self.store = store  # keeps the operator's changes across restarts
        self.wall = wall
        self.replica = f"{socket.gethostname()}-{os.getpid()}"
        self._saved: str | None = None

    async def start(self) -> None:
        """Take back what the operator set before a restart."""
        if self.store is None:
            return
        saved = await self.store.load_controls()
        restored = None if saved is None else controls.decode(saved)
        if restored is not None:
            self.slots.restore(restored)
            log.info("restored the operator's settings", extra={"controls": saved})
        self._saved = controls.encode(self.slots.controls(), lapsing=False)

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return True

    def running_on(self, import_id: str) -> str | None:
        return self.replica if import_id in self.slots.running else None

    async def events(self) -> list[Event]:
        """Grace periods and pauses that ran out, once a tick."""
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

    async def requeue(self, import_id: str) -> list[Event]:
        return list(self.slots.requeue(import_id, self.clock()))

    # -- operator ---------------------------------------------------------

    async def resize(self, slots: int, lanes: Mapping[str, int]) -> list[Event]:
        decisions: list[Event] = list(self.slots.resize(slots, lanes, self.clock()))
        await self._save()
        return decisions

    async def pause(
        self, source: str | None, reason: str, by: str = OPERATOR, lapse_s: float | None = None
    ) -> list[Event]:
        now = self.clock()
        until = None if lapse_s is None else now + lapse_s
        decisions = self.slots.pause(source, reason, now, by=by, until=until, since=self.wall())
        await self._save()
        return list(decisions)

    async def resume(self, source: str | None, by: str = OPERATOR) -> list[Event]:
        decisions: list[Event] = list(self.slots.resume(source, self.clock(), by=by))
        await self._save()
        return decisions

    async def drain(self) -> list[Event]:
        return list(self.slots.drain(self.clock()))

    async def undrain(self) -> list[Event]:
        return list(self.slots.undrain(self.clock()))

    async def _save(self) -> None:
        # Pauses that lapse by themselves (a breaker's) are not kept: see controls.encode.
        text = controls.encode(self.slots.controls(), lapsing=False)
        if self.store is None or text == self._saved:
            return
        try:
            await self.store.save_controls(text, self.wall())
            self._saved = text
        except Exception as exc:
            # The change holds in this process; only a restart would forget it.
            log.warning("could not save the operator's change: %s", exc)
