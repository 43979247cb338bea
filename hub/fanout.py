"""Who follows which import, and pushing positions, progress and the board to them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from hub import protocol as p
from hub.mailbox import Mailbox
from hub.queue.core import Slots
from hub.tasks import cancel_and_wait

# A pass may use at most 1/(1 + this) of the loop's time: cheap passes (a short
# line) follow each change at once, costly ones (thousands waiting) are spaced.
PUBLISH_SPACING = 4.0


@dataclass(eq=False)
class Client:
    """One socket: its mailbox and what it follows."""

    mailbox: Mailbox
    address: str = ""
    tickets: dict[str, str] = field(default_factory=dict)  # ticket -> import_id
    watching: bool = False
    # import_id -> (position, eta_s, when) of the last `queued` sent
    sent: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def put(self, message: p.ServerMessage) -> None:
        self.mailbox.put(p.encode(message))

    def put_text(self, text: str) -> None:
        self.mailbox.put(text)


class Fanout:
    """Never awaits a socket: every message goes into a mailbox that its own task drains."""

    def __init__(
        self,
        slots: Slots,
        clock: Callable[[], float],
        board_hz: float = 4.0,
        queued_hz: float = 2.0,
        board_rows: int = 100,
        hold_s: float = 1.0,
    ) -> None:
        self.slots = slots
        self.clock = clock
        self.board_interval = 1.0 / board_hz
        self.queued_interval = 1.0 / queued_hz
        self.board_rows = board_rows
        self.hold_s = hold_s
        self.clients: set[Client] = set()
        self.watchers: set[Client] = set()
        self.followers: dict[str, dict[Client, int]] = {}
        self.ticket_clients: dict[str, set[Client]] = {}
        self.ticket_import: dict[str, str] = {}
        # import_id -> (first estimated wait announced, when): graded at admission
        self.first_eta: dict[str, tuple[float, float]] = {}
        self._positions_timer: asyncio.TimerHandle | None = None
        self._next_publish = 0.0
        self._board_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._board_forever(), name="board"),
            asyncio.create_task(self._positions_forever(), name="positions"),
        ]

    async def stop(self) -> None:
        if self._positions_timer is not None:
            self._positions_timer.cancel()
        await cancel_and_wait(self._tasks)

    # -- membership -------------------------------------------------------

    def connect(self, client: Client) -> None:
        self.clients.add(client)

    def watch(self, client: Client) -> None:
        client.watching = True
        self.watchers.add(client)
        client.mailbox.offer("queue", p.encode(self.board(client)))

    def follow(self, client: Client, ticket: str, import_id: str) -> None:
        if ticket in client.tickets:
            return
        client.tickets[ticket] = import_id
        self.ticket_clients.setdefault(ticket, set()).add(client)
        self.ticket_import[ticket] = import_id
        counts = self.followers.setdefault(import_id, {})
        counts[client] = counts.get(client, 0) + 1

    def _unfollow(self, client: Client, ticket: str) -> None:
        import_id = client.tickets.pop(ticket, None)
        if import_id is None:
            return
        counts = self.followers.get(import_id, {})
        counts[client] = counts.get(client, 1) - 1
        if counts[client] <= 0:
            del counts[client]
            client.sent.pop(import_id, None)
            client.mailbox.discard("queued:" + import_id)
        if not counts:
            self.followers.pop(import_id, None)

    def release(self, ticket: str) -> None:
        """The ticket ended: nobody follows the import through it any more."""
        for client in self.ticket_clients.pop(ticket, set()):
            self._unfollow(client, ticket)
        self.ticket_import.pop(ticket, None)

    def drop_client(self, client: Client) -> list[str]:
        """A socket closed; returns the tickets it followed."""
        tickets = list(client.tickets)
        for ticket in tickets:
            self._unfollow(client, ticket)
            held = self.ticket_clients.get(ticket)
            if held is not None:
                held.discard(client)
                if not held:
                    del self.ticket_clients[ticket]
        self.clients.discard(client)
        self.watchers.discard(client)
        client.mailbox.close()
        return tickets

    # -- pushing ----------------------------------------------------------

    def to_import(self, import_id: str, message: p.ServerMessage) -> None:
        self.to_import_text(import_id, p.encode(message), started=isinstance(message, p.Started))

    def to_import_text(self, import_id: str, text: str, started: bool = False) -> None:
        for client in self.followers.get(import_id, {}):
            if started:
                client.mailbox.discard("queued:" + import_id)
                client.sent.pop(import_id, None)
            client.mailbox.put(text)

    def line_changed(self, now: bool = False) -> None:
        """Positions moved: publish with the next pass, or in this one when `now` and cheap.

        An admission publishes at once, so a waiter learns it is first in line even
        when the next slot frees right after.
        """
        self._board_due.set()
        loop = asyncio.get_running_loop()
        if now and loop.time() >= self._next_publish:
            if self._positions_timer is not None:
                self._positions_timer.cancel()
            self.publish_positions()
            return
        if self._positions_timer is None:
            delay = max(0.0, self._next_publish - loop.time())
            self._positions_timer = loop.call_later(delay, self.publish_positions)

    def publish_positions(self) -> None:
        """Send each follower of a waiting import its position and wait, when they moved.

        A position change goes out with the next pass. A wait that only drifted
        goes out when it moved by more than 1 s and 10 % from what the browser
        is counting down, and at most `queued_hz` times a second. One pass costs
        O(line + followers), so passes are spaced to take at most a fifth of
        the time: a burst of joins is answered by a few passes, not one each.
        """
        self._positions_timer = None
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            self._publish()
        finally:
            took = loop.time() - began
            self._next_publish = loop.time() + PUBLISH_SPACING * took

    def _publish(self) -> None:
        line = self.slots.line
        if not any(i in self.followers for i in line):
            return
        now = self.clock()
        estimates = self.slots.estimates(now)
        total, free = self.slots.slots, self.slots.free
        targets = [(i, c) for i in estimates if i in self.followers for c in self.followers[i]]
        for import_id, client in targets:
            est = estimates[import_id]
            last = client.sent.get(import_id)
            if (
                last is None
                and not est.informed
                and now - self.slots.line[import_id].joined_at < self.hold_s
            ):
                # A burst arrives before its size probes answer: a wait computed from
                # averages would be far off, so the first `queued` waits for them, briefly.
                continue
            eta = round(est.eta_s, 1) if est.eta_s != float("inf") else 1e9
            if last is not None:
                position, last_eta, when = last
                counted_down = max(last_eta - (now - when), 0.0)
                drift = abs(eta - counted_down)
                moved = drift > 1.0 and drift > 0.1 * max(counted_down, 1.0)
                if est.position >= position and not (moved and now - when >= self.queued_interval):
                    continue
            client.sent[import_id] = (est.position, eta, now)
            self.first_eta.setdefault(import_id, (eta, now))
            client.mailbox.offer(
                "queued:" + import_id,
                p.encode(p.Queued(import_id, est.position, est.position - 1, eta, total, free)),
            )

    async def _positions_forever(self) -> None:
        # Estimates drift as running imports progress; catch what events did not.
        while True:
            await asyncio.sleep(self.queued_interval)
            self.publish_positions()

    def board(self, viewer: Client | None = None) -> p.Board:
        mine = set(viewer.tickets.values()) if viewer is not None else set()

        def name(import_id: str, username: str) -> str:
            return username if import_id in mine else p.mask(username)

        running = [
            p.RunningRow(
                e.import_id, e.source, name(e.import_id, e.username), e.pages, e.pages_total
            )
            for e in self.slots.running.values()
        ]
        waiting = []
        for position, e in enumerate(self.slots.line.values(), start=1):
            if position > self.board_rows:
                break
            waiting.append(p.WaitingRow(position, e.source, name(e.import_id, e.username)))
        return p.Board(self.slots.slots, self.slots.free, running, waiting, len(self.slots.line))

    async def _board_forever(self) -> None:
        while True:
            await self._board_due.wait()
            self._board_due.clear()
            if self.watchers:
                shared = p.encode(self.board())
                for client in self.watchers:
                    # Only a socket that holds a ticket on the board sees its full name.
                    text = p.encode(self.board(client)) if client.tickets else shared
                    client.mailbox.offer("queue", text)
            await asyncio.sleep(self.board_interval)
