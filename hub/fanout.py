"""Who follows which import, and pushing positions, progress and the board to them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable

from hub import protocol as p
from hub.mailbox import Mailbox
from hub.queue.core import WAITING, Entry, Slots
from hub.queue.frame import Frame

INF = float("inf")


class Seen:
    """The last `queued` one socket was sent for one import."""

    __slots__ = ("eta", "position", "when")

    def __init__(self, position: int, eta: float, when: float) -> None:
        self.position = position
        self.eta = eta
        self.when = when


class Client:
    """One socket: its mailbox and what it follows."""

    __slots__ = ("address", "mailbox", "tickets", "watching")

    def __init__(self, mailbox: Mailbox, address: str = "") -> None:
        self.mailbox = mailbox
        self.address = address
        self.tickets: dict[str, str] = {}  # ticket -> import_id
        self.watching = False

    def put(self, message: p.ServerMessage) -> None:
        self.mailbox.put(p.encode(message))

    def put_text(self, text: str) -> None:
        self.mailbox.put(text)


class Fanout:
    """Never awaits a socket: every message goes into a mailbox that the outbox writes.

    Positions go out in passes, at most `queued_hz` a second; a pass whose
    predecessor is older than that runs at once. A pass touches only the
    waiters whose position changed (those behind the first that left the
    line), the head of the line, and a rotating slice of the rest for a
    drifting estimate, so its cost does not grow with an idle line.
    """

    def __init__(
        self,
        slots: Slots,
        clock: Callable[[], float],
        board_hz: float = 4.0,
        queued_hz: float = 2.0,
        board_rows: int = 100,
    ) -> None:
        self.slots = slots
        self.clock = clock
        self.board_interval = 1.0 / board_hz
        self.queued_interval = 1.0 / queued_hz
        self.board_rows = board_rows
        self.clients: set[Client] = set()
        self.watchers: set[Client] = set()
        self.followers: dict[str, dict[Client, Seen | None]] = {}
        self.ticket_clients: dict[str, set[Client]] = {}
        self.frame: Frame | None = None
        self._drift_after = 0  # arrival number the next drift slice starts after
        self._last_pass = -INF
        self._pass_timer: asyncio.TimerHandle | None = None
        self._board_timer: asyncio.TimerHandle | None = None
        self._last_board = -INF
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._drift_forever(), name="positions")

    async def stop(self) -> None:
        for timer in (self._pass_timer, self._board_timer):
            if timer is not None:
                timer.cancel()
        if self._ticker is not None:
            self._ticker.cancel()

    # -- membership -------------------------------------------------------

    def connect(self, client: Client) -> None:
        self.clients.add(client)

    def watch(self, client: Client) -> None:
        client.watching = True
        self.watchers.add(client)
        client.mailbox.offer("queue", p.encode(self.board()))

    def follow(self, client: Client, ticket: str, import_id: str) -> bool:
        """This socket follows the ticket; True when it is the ticket's first socket."""
        if ticket in client.tickets:
            return False
        client.tickets[ticket] = import_id
        sockets = self.ticket_clients.setdefault(ticket, set())
        sockets.add(client)
        self.followers.setdefault(import_id, {}).setdefault(client, None)
        return len(sockets) == 1

    def attached_tickets(self) -> list[str]:
        """Tickets some socket of this process follows."""
        return list(self.ticket_clients)

    def _unfollow(self, client: Client, ticket: str) -> None:
        import_id = client.tickets.pop(ticket, None)
        if import_id is None or import_id in client.tickets.values():
            return
        followers = self.followers.get(import_id)
        if followers is not None:
            followers.pop(client, None)
            if not followers:
                del self.followers[import_id]
        entry = self.slots.entries.get(import_id)
        if entry is not None and entry.state == WAITING:
            # The import waits on without this socket: an unsent position no longer holds.
            # Once it started or ended, that position is what the socket must read before
            # `started`, however far behind the socket is.
            client.mailbox.discard("queued:" + import_id)

    def release(self, ticket: str) -> None:
        """The ticket ended: nobody follows the import through it any more."""
        for client in self.ticket_clients.pop(ticket, ()):
            self._unfollow(client, ticket)

    def drop_client(self, client: Client) -> list[str]:
        """A socket closed; returns the tickets no socket follows any more."""
        orphaned = []
        for ticket in list(client.tickets):
            self._unfollow(client, ticket)
            sockets = self.ticket_clients.get(ticket)
            if sockets is not None:
                sockets.discard(client)
                if not sockets:
                    del self.ticket_clients[ticket]
                    orphaned.append(ticket)
        self.clients.discard(client)
        self.watchers.discard(client)
        client.mailbox.close()
        return orphaned

    # -- pushing ----------------------------------------------------------

    def to_import(self, import_id: str, message: p.ServerMessage) -> None:
        self.to_import_text(import_id, p.encode(message))

    def to_import_text(self, import_id: str, text: str) -> None:
        for client in self.followers.get(import_id, ()):
            client.mailbox.put(text)

    def to_ticket(self, ticket: str, message: p.ServerMessage) -> None:
        text = p.encode(message)
        for client in self.ticket_clients.get(ticket, ()):
            client.mailbox.put(text)

    def started(self, entry: Entry, position: int, waited_s: float) -> None:
        """An import took a slot: its followers hear their last position, then `started`."""
        started = p.encode(p.Started(entry.import_id, round(waited_s, 3)))
        last: str | None = None
        for client, seen in self.followers.get(entry.import_id, {}).items():
            if seen is not None and seen.position != position:
                # A waiter always sees where it stood when its turn came.
                last = last or self._queued(entry, position, 0.0, 0.0, 0.0)
                client.mailbox.offer("queued:" + entry.import_id, last)
            client.mailbox.put(started)

    def greet(self, client: Client, entry: Entry) -> None:
        """A socket that just started following a waiting import hears where it stands now."""
        now = self.clock()
        frame = self.frame if self.frame is not None else self._new_frame(now)
        estimate = self.slots.estimate(entry, frame, now)
        text = self._queued(
            entry, estimate.position, estimate.eta_s, estimate.low_s, estimate.high_s
        )
        self.followers[entry.import_id][client] = Seen(estimate.position, _eta(estimate.eta_s), now)
        client.mailbox.offer("queued:" + entry.import_id, text)

    def line_changed(self) -> None:
        """Positions or estimates moved: a pass now, or once the last one is old enough."""
        self._board_due()
        if self._pass_timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_pass + self.queued_interval - loop.time())
        # Even at once, one loop turn later: a burst of events shares one pass.
        self._pass_timer = loop.call_later(delay, self.publish_positions)

    def publish_positions(self) -> None:
        """The pass that follows events: new positions first, then drifted estimates."""
        self._pass_timer = None
        self._last_pass = asyncio.get_running_loop().time()
        self._pass(positions=True)

    def _pass(self, positions: bool) -> None:
        now = self.clock()
        frame = self._new_frame(now)
        self.slots.grade(frame, now)
        moved = self.slots.take_moved() if positions else None
        if not self.slots.line or not self.followers:
            return
        done = 0
        if moved is not None:  # everyone behind it moved up
            for entry, position, raw in frame.walk(self.slots, moved, now):
                self._offer(entry, position, raw, now)
            done = moved
        # The head's estimates move with every page; the rest drift slowly, a slice a pass.
        head = itertools.islice(frame.walk(self.slots, 0, now), self.slots.horizon)
        self._check(head, now, done)
        after = self._drift_after
        tail = list(itertools.islice(frame.walk(self.slots, after, now), self.slots.horizon))
        self._check(tail, now, done)
        self._drift_after = tail[-1][0].seq if len(tail) == self.slots.horizon else 0

    def _check(self, walked: Iterable[tuple[Entry, int, float]], now: float, done: int) -> None:
        for entry, position, raw in walked:
            if done and entry.seq > done:
                return  # already sent by this pass
            self._offer(entry, position, raw, now)

    def _offer(self, entry: Entry, position: int, raw: float, now: float) -> None:
        followers = self.followers.get(entry.import_id)
        if not followers:
            return
        text: str | None = None
        low, eta, high = self.slots.accuracy.correct(raw)
        rounded = _eta(eta)
        for client, seen in followers.items():
            # A new place goes out at once; a place rises only behind an import sent back.
            if seen is not None and position == seen.position:
                counted_down = max(seen.eta - (now - seen.when), 0.0)
                drift = abs(rounded - counted_down)
                if not (
                    drift > 1.0
                    and drift > 0.1 * max(counted_down, 1.0)
                    and now - seen.when >= self.queued_interval
                ):
                    continue
            if text is None:
                text = self._queued(entry, position, eta, low, high)
            followers[client] = Seen(position, rounded, now)
            client.mailbox.offer("queued:" + entry.import_id, text)

    def _queued(self, entry: Entry, position: int, eta: float, low: float, high: float) -> str:
        slots = self.slots
        pause = slots.paused.get(entry.source)
        return p.encode(
            p.Queued(
                entry.import_id,
                position,
                position - 1,
                _eta(eta),
                slots.slots,
                slots.free,
                _eta(low),
                _eta(high),
                None if pause is None else p.PauseInfo(pause.reason, pause.since),
            )
        )

    def _new_frame(self, now: float) -> Frame:
        self.frame = self.slots.frame(now)
        return self.frame

    async def _drift_forever(self) -> None:
        """Estimates drift as running imports progress: check them on a tick of their own.

        Only a drifted estimate goes out from here, to a socket told nothing for a whole
        interval; positions are left to the event passes, so that a tick never delays one.
        """
        while True:
            await asyncio.sleep(self.queued_interval)
            if self.slots.line:
                self._pass(positions=False)
            self._board_due()

    # -- the board --------------------------------------------------------

    def board(self) -> p.Board:
        """The same for every watcher: players masked, rows named by import id."""
        slots = self.slots
        running = [
            p.RunningRow(e.import_id, e.source, p.mask(e.username), e.pages, e.pages_total)
            for e in slots.running.values()
        ]
        waiting = [
            p.WaitingRow(position, e.source, p.mask(e.username), e.import_id)
            for position, e in enumerate(
                itertools.islice(slots.waiting(), self.board_rows), start=1
            )
        ]
        paused = [
            p.PausedRow(source, pause.reason, pause.since) for source, pause in slots.paused.items()
        ]
        return p.Board(
            slots.slots,
            slots.free,
            running,
            waiting,
            len(slots.line),
            p.EtaAccuracy(**slots.accuracy.summary()),  # type: ignore[arg-type]
            paused,
        )

    def _board_due(self) -> None:
        if not self.watchers or self._board_timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_board + self.board_interval - loop.time())
        self._board_timer = loop.call_later(delay, self._send_board)

    def _send_board(self) -> None:
        self._board_timer = None
        self._last_board = asyncio.get_running_loop().time()
        if self.watchers:
            text = p.encode(self.board())  # encoded once, the same frame for every watcher
            for client in self.watchers:
                client.mailbox.offer("queue", text)


def _eta(seconds: float) -> float:
    return round(seconds, 1) if seconds != INF else 1e9
