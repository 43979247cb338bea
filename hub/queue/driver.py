"""What the hub needs from a queue driver, and the events only a fleet driver reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from hub.queue.core import Decision, Entry, Slots


@dataclass(frozen=True, slots=True)
class RemoteStarted:
    """An import this replica follows started on another replica."""

    import_id: str
    waited_s: float


@dataclass(frozen=True, slots=True)
class RemoteProgress:
    """Another replica stored a page of an import this replica follows."""

    import_id: str
    page: int
    pages: int
    games: int


@dataclass(frozen=True, slots=True)
class RemoteEnded:
    """An import this replica follows left the line or finished elsewhere."""

    import_id: str
    tickets: frozenset[str]


Event = Decision | RemoteStarted | RemoteProgress | RemoteEnded


class QueueDriver(Protocol):
    """Feeds the sans-I/O core (`slots`, a live view) and hands its decisions back.

    Every event method returns the decisions it caused, to be acted on by the
    caller; what happens on its own (grace periods running out, other
    replicas' changes) comes out of `events()`, which the caller awaits in a loop.
    """

    slots: Slots
    clock: Callable[[], float]  # the core's time base
    durable: bool  # whether the line outlives this process
    replica: str  # this process's name in the fleet

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def events(self) -> list[Event]: ...
    async def join(
        self, ticket: str, import_id: str, source: str, username: str, address: str
    ) -> tuple[Entry, bool, list[Event]]: ...
    async def attach(self, ticket: str) -> Entry: ...
    async def detach(self, ticket: str) -> None: ...
    async def cancel(self, ticket: str) -> list[Event]: ...
    async def abort(self, import_id: str, reason: str) -> list[Event]: ...
    async def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int
    ) -> list[Event]: ...
    async def sized(self, import_id: str, pages: int) -> list[Event]: ...
    async def finished(self, import_id: str, ok: bool) -> list[Event]: ...
    async def interrupted(self, import_id: str) -> list[Event]: ...
    async def requeue(self, import_id: str) -> list[Event]: ...
    # The operator's (and the breakers') changes; caps and pauses outlive restarts.
    async def resize(self, slots: int, lanes: Mapping[str, int]) -> list[Event]: ...
    async def pause(
        self, source: str | None, reason: str, by: str = ..., lapse_s: float | None = None
    ) -> list[Event]: ...
    async def resume(self, source: str | None, by: str = ...) -> list[Event]: ...
    async def drain(self) -> list[Event]: ...
    async def undrain(self) -> list[Event]: ...
    def ready(self) -> bool: ...
    def running_on(self, import_id: str) -> str | None: ...
