"""A per-socket outbox: ordered must-deliver messages plus latest-state slots."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class MailboxStats:
    sent: int = 0
    coalesced: int = 0  # latest-state messages replaced before they were sent


@dataclass(eq=False)
class Mailbox:
    """Each socket drains its own mailbox, so a slow reader never holds up the others.

    `put` queues a message that must arrive (progress, done, failed...). `offer`
    queues a latest-state message under a key (`queued:<id>`, `queue`): a newer
    offer replaces the unsent one in place, so a reader that falls behind gets
    the current state, not a backlog.
    """

    send: Callable[[str], Awaitable[None]]
    stats: MailboxStats = field(default_factory=MailboxStats)
    _pending: dict[object, str] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    closed: bool = False

    def put(self, text: str) -> None:
        if self.closed:
            return
        self._pending[next(self._ids)] = text
        self._wake.set()

    def offer(self, key: str, text: str) -> None:
        if self.closed:
            return
        if key in self._pending:
            self.stats.coalesced += 1
        self._pending[key] = text
        self._wake.set()

    def discard(self, key: str) -> None:
        """Drop an unsent latest-state message that no longer holds."""
        self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        """Send until closed; the socket handler runs this as the writer task."""
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self.closed:
                key = next(iter(self._pending))
                text = self._pending.pop(key)
                await self.send(text)
                self.stats.sent += 1

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._wake.set()
