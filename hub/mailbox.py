"""Per-socket outboxes, all written by one callback: a task only for a socket that pushes back."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

Send = Callable[[str], Coroutine[Any, Any, None]]

# Keys of must-deliver messages: unique in every mailbox, cheaper than a counter each.
_ids = itertools.count()


class MailboxStats:
    __slots__ = ("coalesced", "pushed_back", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.coalesced = 0  # latest-state messages replaced before they were sent
        self.pushed_back = 0  # sends that had to wait for a transport to drain


class Mailbox:
    """One socket's outgoing messages: ordered must-deliver ones plus latest-state slots.

    `put` queues a message that must arrive (progress, done, failed...). `offer`
    queues a latest-state message under a key (`queued:<id>`, `queue`): a newer
    offer replaces the unsent one in place, so a reader that falls behind gets
    the current state, not a backlog. The `Outbox` writes it; the mailbox holds
    no task and no dict while it is idle.
    """

    __slots__ = ("_inflight", "_pending", "closed", "outbox", "scheduled", "send", "writer")

    def __init__(self, send: Send, outbox: Outbox) -> None:
        self.send = send
        self.outbox = outbox
        self._pending: dict[object, str] | None = None
        self.closed = False
        self.scheduled = False  # in the outbox's ready list
        self.writer: asyncio.Task[None] | None = None  # only while the transport pushes back
        self._inflight: Coroutine[Any, Any, None] | None = None  # the send it finishes

    def put(self, text: str) -> None:
        self._queue(next(_ids), text)

    def offer(self, key: str, text: str) -> None:
        if self._pending is not None and key in self._pending:
            self.outbox.stats.coalesced += 1
        self._queue(key, text)

    def discard(self, key: str) -> None:
        """Drop an unsent latest-state message that no longer holds."""
        if self._pending is not None:
            self._pending.pop(key, None)

    def __len__(self) -> int:
        return len(self._pending) if self._pending is not None else 0

    def close(self) -> None:
        self.closed = True
        self._pending = None
        if self.writer is not None:
            self.writer.cancel()
            self.writer = None
        if self._inflight is not None:
            self._inflight.close()  # even if the writer never got to run
            self._inflight = None

    def _queue(self, key: object, text: str) -> None:
        if self.closed:
            return
        if self._pending is None:
            self._pending = {}
        self._pending[key] = text
        if not self.scheduled and self.writer is None:
            self.scheduled = True
            self.outbox.ready(self)

    def _next(self) -> str | None:
        pending = self._pending
        if not pending:
            self._pending = None
            return None
        key = next(iter(pending))
        return pending.pop(key)

    def flush(self) -> None:
        """Send what is pending without waiting; hand the rest to a task if a send must wait."""
        stats = self.outbox.stats
        while not self.closed and (text := self._next()) is not None:
            send = self.send(text)
            try:
                waiting_on = send.send(None)
            except StopIteration:
                stats.sent += 1
                continue
            except Exception:
                # The peer is gone; the socket's reader sees the disconnect and cleans up.
                self.close()
                return
            stats.pushed_back += 1
            self._inflight = send
            self.writer = asyncio.ensure_future(self._drain(send, waiting_on))
            return

    async def _drain(self, send: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Finish a send that had to wait, then the rest, in this socket's own task."""
        try:
            await _finish(send, waiting_on)
            self._inflight = None
            self.outbox.stats.sent += 1
            while not self.closed and (text := self._next()) is not None:
                await self.send(text)
                self.outbox.stats.sent += 1
        except Exception:
            self.close()
        finally:
            self.writer = None


async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Run a coroutine on from where it first suspended, awaiting what it waits on."""
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield: it only asked to be run again
            else:
                await asyncio.wait([waiting_on])
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                return
    finally:
        coro.close()  # no-op once finished; otherwise it must not be left half-run


class Outbox:
    """Writes every ready mailbox from one callback per loop turn.

    A socket whose transport accepts the bytes costs no task; one that pushes
    back gets a task of its own until it drains, so it never holds up the others.
    """

    __slots__ = ("_ready", "_scheduled", "stats")

    def __init__(self, stats: MailboxStats | None = None) -> None:
        self.stats = stats or MailboxStats()
        self._ready: deque[Mailbox] = deque()
        self._scheduled = False

    def ready(self, mailbox: Mailbox) -> None:
        self._ready.append(mailbox)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        ready = self._ready
        while ready:
            mailbox = ready.popleft()
            mailbox.scheduled = False
            mailbox.flush()
