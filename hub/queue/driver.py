"""What the hub needs from a queue driver, and the events only a fleet driver reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hub.queue.core import Decision, Entry, Slots


@dataclass(frozen=True)
class RemoteStarted:
    """An import this replica follows started on another replica."""

    import_id: str
    waited_s: float


@dataclass(frozen=True)
class RemoteProgress:
    """Another replica stored a page of an import this replica follows."""

    import_id: str
    page: int
    pages: int
    games: int


@dataclass(frozen=True)
class RemoteEnded:
    """An import this replica follows left the line or finished elsewhere."""

    import_id: str
    tickets: frozenset[str]


Event = Decision | RemoteStarted | RemoteProgress | RemoteEnded


class QueueDriver(Protocol):
    """Feeds the sans-I/O core (`slots`, a live view) and hands its decisions to `apply`."""

    slots: Slots
    clock: Callable[[], float]  # the core's time base
    durable: bool  # whether the line outlives this process
    apply: Callable[[Sequence[Event]], None]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def join(
        self, ticket: str, import_id: str, source: str, username: str
    ) -> tuple[Entry, bool]: ...
    async def attach(self, ticket: str) -> Entry: ...
    async def detach(self, ticket: str) -> None: ...
    async def cancel(self, ticket: str) -> None: ...
    async def abort(self, import_id: str, reason: str) -> None: ...
    async def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int
    ) -> None: ...
    async def sized(self, import_id: str, pages: int) -> None: ...
    async def finished(self, import_id: str, ok: bool) -> None: ...
    async def interrupted(self, import_id: str) -> None: ...
    def ready(self) -> bool: ...
