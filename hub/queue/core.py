"""The slot manager as plain state: events in, decisions out, no I/O and no clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from hub.queue.accuracy import Accuracy
from hub.queue.eta import Ewma, remaining
from hub.queue.frame import Frame, make_frame
from hub.queue.holds import OPERATOR, Holds, Pause
from hub.queue.index import Arrivals, LineIndex

WAITING = "waiting"
RUNNING = "running"

# A waiter's estimate is graded once its size is known, or this long after its ticket.
GRADE_AFTER_S = 1.0


@dataclass(slots=True, eq=False)
class Entry:
    """One import, waiting in line or running, shared by every ticket that asked for it."""

    import_id: str
    source: str
    username: str  # lower-cased; the dedup key with source
    seq: int  # arrival order, the FIFO key
    joined_at: float
    tickets: set[str] = field(default_factory=set)
    state: str = WAITING
    started_at: float | None = None
    pages: int = 0
    pages_total: int | None = None
    games: int = 0
    first_page_at: float | None = None
    size: int | None = None  # pages probed while waiting
    stopping: bool = False
    kept: bool = False  # a follower left without cancelling: run to the end
    # (when, raw, shown, low, high): the estimate graded at admission
    graded: tuple[float, float, float, float, float] | None = None


@dataclass(slots=True)
class Ticket:
    ticket: str
    import_id: str
    address: str = ""
    detached_at: float | None = None  # None while a socket follows it


@dataclass(frozen=True, slots=True)
class Controls:
    """What an operator set on the line: caps and pauses, as saved and restored."""

    slots: int | None  # None until the operator resizes: the configured caps hold
    lanes: dict[str, int] | None
    pauses: tuple[tuple[str, Pause], ...]  # (source, pause); one per source and holder


# Decisions: what the driver must now do.
@dataclass(frozen=True, slots=True)
class Admit:
    """Start this import now; it holds a slot until `finished`."""

    import_id: str


@dataclass(frozen=True, slots=True)
class Drop:
    """This waiting import left the line without running; tell its tickets why."""

    import_id: str
    reason: str  # "cancelled" | "abandoned" | a failure code
    tickets: frozenset[str]
    source: str
    username: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask this running import to stop at its next checkpoint."""

    import_id: str


@dataclass(frozen=True, slots=True)
class Left:
    """This ticket cancelled: it alone is done with the import, which others may keep."""

    ticket: str
    import_id: str
    source: str
    username: str


@dataclass(frozen=True, slots=True)
class Release:
    """This ticket no longer follows any import."""

    ticket: str


@dataclass(frozen=True, slots=True)
class LineChanged:
    """Positions or estimates may have moved: republish them."""


Decision = Admit | Drop | Stop | Left | Release | LineChanged


@dataclass(frozen=True, slots=True)
class Estimate:
    position: int  # 1-based rank among waiting imports, in arrival order
    eta_s: float
    low_s: float
    high_s: float


class UnknownTicket(KeyError):
    """The ticket is not held by this manager."""


class Refused(Exception):
    """A request the rules turn away; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Limits:
    """Caps the rules enforce for the whole line (or the whole fleet)."""

    tickets_per_address: int = 3
    queue: int = 10000


class Slots:
    """Fair FIFO admission under a global cap, per-upstream lane caps and pauses.

    Admission is FIFO within an upstream and work-conserving across upstreams:
    when a slot frees, the oldest waiting import whose lane has room and whose
    source is not paused starts. An import may be overtaken only by another
    upstream's, and only while its own lane is full or paused. Every event
    costs O(log n) in the length of the line; estimates come from a frame
    computed at most once per publishing pass.
    """

    def __init__(
        self,
        slots: int,
        lanes: Mapping[str, int],
        priors: Mapping[str, Ewma],
        grace_s: float = 60.0,
        limits: Limits | None = None,
        horizon: int = 500,
        accuracy: Accuracy | None = None,
    ) -> None:
        self.slots = slots
        self.lanes = dict(lanes)
        self.ewma = dict(priors)
        self.grace_s = grace_s
        self.limits = limits or Limits()
        self.horizon = horizon
        self.accuracy = accuracy or Accuracy()
        self.entries: dict[str, Entry] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.tickets: dict[str, Ticket] = {}
        self.per_address: dict[str, int] = {}
        self.line: dict[str, Entry] = {}  # the waiting imports, for lookups and length
        # Their order: the whole line, and each upstream's (heads left lazily on admission).
        self.order: Arrivals[Entry] = Arrivals()
        self.lines: dict[str, deque[Entry]] = {source: deque() for source in self.lanes}
        self.index = LineIndex(self.lanes)
        self.running: dict[str, Entry] = {}
        self.in_lane: dict[str, int] = dict.fromkeys(self.lanes, 0)
        self.holds = Holds(self.lanes)
        self.draining = False  # this process admits nothing; nothing shows to waiters
        self.resized = False  # the caps were set by the operator, not by configuration
        self.moved_after: int | None = None  # lowest arrival whose place moved since taken
        self._detached: dict[str, float] = {}  # ticket -> detached_at, oldest first
        self._ungraded: deque[Entry] = deque()
        self._sized: list[Entry] = []
        self._seq = 0

    # -- queries ----------------------------------------------------------

    @property
    def paused(self) -> dict[str, Pause]:
        """Per paused source, the pause its waiters are shown (its oldest)."""
        return self.holds.shown

    @property
    def free(self) -> int:
        return max(self.slots - len(self.running), 0)

    def entry_for(self, ticket: str) -> Entry:
        try:
            return self.entries[self.tickets[ticket].import_id]
        except KeyError:
            raise UnknownTicket(ticket) from None

    def position(self, entry: Entry) -> int:
        return self.index.rank(entry.seq)

    def waiting(self, after: int = 0) -> Iterator[Entry]:
        """The waiting imports that arrived after `after`, in line order."""
        return self.order.after(after)

    def waiting_in(self, source: str) -> int:
        return self.index.totals(source)[0]

    def head(self, source: str) -> Entry | None:
        """The oldest waiting import of one upstream."""
        lane = self.lines[source]
        while lane and lane[0].import_id not in self.line:
            lane.popleft()
        return lane[0] if lane else None

    def frame(self, now: float) -> Frame:
        """Estimates as of `now`: O(horizon) once, then O(log n) per waiter."""
        return make_frame(self, now)

    def estimate(self, entry: Entry, frame: Frame, now: float) -> Estimate:
        raw = frame.wait(entry, now)
        low, eta, high = self.accuracy.correct(raw)
        return Estimate(self.position(entry), eta, low, high)

    def estimates(self, now: float) -> dict[str, Estimate]:
        """Every waiter's estimate, in one O(n) walk: for tools and tests, not for passes."""
        frame = self.frame(now)
        result = {}
        for entry, position, raw in frame.walk(self, 0, now):
            low, eta, high = self.accuracy.correct(raw)
            result[entry.import_id] = Estimate(position, eta, low, high)
        return result

    def remaining(self, entry: Entry, now: float) -> float:
        """Seconds a running import still needs, by its own pace and the learned one."""
        return remaining(
            self.ewma[entry.source],
            now - (entry.started_at if entry.started_at is not None else now),
            entry.pages,
            entry.pages_total,
            entry.size,
            None
            if entry.first_page_at is None or entry.started_at is None
            else entry.first_page_at - entry.started_at,
        )

    def take_moved(self) -> int | None:
        """The lowest arrival number whose place changed since the last call.

        Every waiter that arrived after it has a new position; nobody else has.
        """
        moved, self.moved_after = self.moved_after, None
        return moved

    # -- events -----------------------------------------------------------

    def join(
        self, ticket: str, import_id: str, source: str, username: str, now: float, address: str = ""
    ) -> tuple[Entry, bool, list[Decision]]:
        """A request for an import; joins the existing one for the same player.

        Returns the entry, whether the ticket joined an existing import, and
        the decisions. `ticket` and `import_id` are minted by the caller.
        Raises Refused when the address or the line is at its cap.
        """
        if source not in self.lanes:
            raise ValueError(f"unknown source {source!r}")
        held = self.per_address.get(address, 0)
        if held >= self.limits.tickets_per_address:
            raise Refused(
                "too_many_imports",
                f"At most {self.limits.tickets_per_address} imports may wait or run for one "
                "visitor at a time; another can start when one of them ends.",
            )
        key = (source, username.lower())
        existing = self.by_key.get(key)
        if existing is None and len(self.line) >= self.limits.queue:
            raise Refused(
                "queue_full",
                f"The line is full ({len(self.line)} waiting); try again later.",
            )
        if existing is None and import_id in self.entries:
            raise ValueError(f"import id {import_id!r} is in use")
        self.tickets[ticket] = Ticket(ticket, "", address)
        self.per_address[address] = held + 1
        if existing is not None:
            entry = self.entries[existing]
            entry.tickets.add(ticket)
            self.tickets[ticket].import_id = entry.import_id
            return entry, True, []
        self._seq += 1
        entry = Entry(import_id, source, key[1], self._seq, now, tickets={ticket})
        self.tickets[ticket].import_id = import_id
        self.entries[import_id] = entry
        self.by_key[key] = import_id
        self._enqueue(entry)
        self._ungraded.append(entry)
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return entry, False, decisions

    def attach(self, ticket: str) -> Entry:
        """A socket follows this ticket; any number of attaches is one."""
        entry = self.entry_for(ticket)
        self.tickets[ticket].detached_at = None
        self._detached.pop(ticket, None)
        return entry

    def detach(self, ticket: str, now: float) -> None:
        """No socket follows this ticket any more: its grace period starts now."""
        held = self.tickets.get(ticket)
        if held is None or held.detached_at is not None:
            return
        held.detached_at = now
        self._detached[ticket] = now

    def cancel(self, ticket: str, now: float) -> list[Decision]:
        """This ticket lets go of its import; the import goes on while others follow it.

        A waiting import leaves the line once nobody follows it. A running one
        stops early only when every ticket that followed it cancelled.
        """
        entry = self.entry_for(ticket)
        decisions: list[Decision] = [Left(ticket, entry.import_id, entry.source, entry.username)]
        decisions += self._release(ticket, now, cancelled=True)
        return decisions

    def abort(self, import_id: str, reason: str, now: float) -> list[Decision]:
        """Take a waiting import out of line, e.g. when its player does not exist."""
        entry = self.entries.get(import_id)
        if entry is None or entry.state != WAITING:
            return []
        return self._remove(entry, reason, now)

    def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int, now: float
    ) -> list[Decision]:
        entry = self.entries.get(import_id)
        if entry is None:
            return []
        if entry.first_page_at is None and pages >= 1:
            entry.first_page_at = now
        entry.pages = pages
        entry.pages_total = pages_total
        entry.games = games
        return [LineChanged()]

    def sized(self, import_id: str, pages: int) -> list[Decision]:
        """A probe learned how many pages this import will take."""
        entry = self.entries.get(import_id)
        if entry is None:
            return []
        if entry.state == WAITING:
            self.index.resize(entry.seq, entry.source, entry.size, pages)
            if entry.graded is None:
                self._sized.append(entry)
        entry.size = pages
        return [LineChanged()]

    def finished(self, import_id: str, now: float, ok: bool = True) -> list[Decision]:
        """A running import ended by any path; its slot is free again."""
        entry = self.entries.get(import_id)
        if entry is None or entry.state != RUNNING:
            return []
        if ok and entry.started_at is not None and not entry.stopping:
            first = None if entry.first_page_at is None else entry.first_page_at - entry.started_at
            self.ewma[entry.source].observe(now - entry.started_at, entry.pages, first)
        del self.running[import_id]
        self.in_lane[entry.source] -= 1
        self._forget(entry)
        decisions: list[Decision] = [Release(t) for t in sorted(entry.tickets)]
        decisions += self._admit(now)
        decisions.append(LineChanged())
        return decisions

    def tick(self, now: float) -> list[Decision]:
        """Let go of tickets whose last socket closed more than the grace period ago."""
        expired = []
        for ticket, since in self._detached.items():  # oldest first
            if now - since < self.grace_s:
                break
            expired.append(ticket)
        decisions: list[Decision] = []
        for ticket in expired:
            if ticket in self.tickets:
                decisions += self._release(ticket, now, cancelled=False)
        if self.holds.lapse(now):
            decisions += self._admit(now)
            decisions.append(LineChanged())
        return decisions

    def grade(self, frame: Frame, now: float) -> None:
        """Fix the estimate each waiter is graded on: once sized, or a second after its ticket."""
        due = self._sized
        self._sized = []
        while self._ungraded and now - self._ungraded[0].joined_at >= GRADE_AFTER_S:
            due.append(self._ungraded.popleft())
        for entry in due:
            if entry.graded is not None or entry.state != WAITING:
                continue
            if entry.import_id not in self.entries:
                continue
            raw = frame.wait(entry, now)
            if raw == float("inf"):
                continue
            low, eta, high = self.accuracy.correct(raw)
            entry.graded = (now, raw, eta, low, high)

    # -- operator ---------------------------------------------------------

    def resize(self, slots: int, lanes: Mapping[str, int], now: float) -> list[Decision]:
        """New caps, live: more admit at once, fewer let running imports finish."""
        self.slots = slots
        self.lanes.update({source: cap for source, cap in lanes.items() if source in self.lanes})
        self.resized = True
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return decisions

    def pause(
        self,
        source: str | None,
        reason: str,
        now: float,
        *,
        by: str = OPERATOR,
        until: float | None = None,
        since: float | None = None,
    ) -> list[Decision]:
        """Admit nothing of `source` (None: of any); its waiters keep their places.

        Each holder (`by`) holds its own pause: a source admits again once every
        holder has resumed it. Pausing again renews the hold (reason, `until`)
        and keeps its `since` (unix seconds; `now` when not given).
        """
        for name in self._sources(source):
            self.holds.hold(name, Pause(reason, now if since is None else since, by, until))
        return [LineChanged()]

    def resume(self, source: str | None, now: float, *, by: str = OPERATOR) -> list[Decision]:
        """Lift `by`'s pause of `source` (None: of every source); other holders' stay."""
        for name in self._sources(source):
            self.holds.lift(name, by)
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return decisions

    def drain(self, now: float) -> list[Decision]:
        """Admit nothing here: running imports finish, waiters keep their places.

        Unlike a pause this is about this process, not a site, so waiters are not
        told of it; in a fleet the other replicas go on admitting the line.
        """
        self.draining = True
        return [LineChanged()]

    def undrain(self, now: float) -> list[Decision]:
        self.draining = False
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return decisions

    def requeue(self, import_id: str, now: float) -> list[Decision]:
        """Send a running import back to the head of its upstream's line.

        For an upstream that stopped answering: the import keeps its arrival
        number, so it is the first of its upstream admitted again, and its
        slot frees at once for the other upstreams. Every waiter that arrived
        after it moves back one place; this is the only event that raises a
        position. It costs O(n) in the length of the line, being rare.
        An import that every follower cancelled simply ends.
        """
        entry = self.entries.get(import_id)
        if entry is None or entry.state != RUNNING:
            return []
        if entry.stopping:
            return self.finished(import_id, now, ok=False)
        del self.running[import_id]
        self.in_lane[entry.source] -= 1
        if entry.pages_total is not None:  # what is left, for the estimates
            entry.size = max(entry.pages_total - entry.pages, 1)
        entry.state = WAITING
        entry.started_at = None
        entry.first_page_at = None
        entry.pages = entry.games = 0
        entry.pages_total = None
        entry.graded = None  # graded once, on its first wait
        _insert(self.line, entry)  # the dict keeps arrival order too, for whoever reads it
        self.order.add(entry.seq, entry)
        lane = self.lines[entry.source]
        if entry in lane:  # a stale reference, never popped
            lane.remove(entry)
        at = 0
        while at < len(lane) and lane[at].seq < entry.seq:
            at += 1
        lane.insert(at, entry)
        self.index.add(entry.seq, entry.source, entry.size)
        if self.moved_after is None or entry.seq - 1 < self.moved_after:
            self.moved_after = entry.seq - 1
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return decisions

    def controls(self) -> Controls:
        pauses = tuple(self.holds)
        if not self.resized:
            return Controls(None, None, pauses)
        return Controls(self.slots, dict(self.lanes), pauses)

    def restore(self, controls: Controls) -> None:
        """Take saved caps and pauses as they are; the caller lets the core admit after."""
        if controls.slots is not None:
            self.slots = controls.slots
            self.resized = True
        if controls.lanes is not None:
            self.lanes.update({s: cap for s, cap in controls.lanes.items() if s in self.lanes})
        self.holds.replace(controls.pauses)

    def _sources(self, source: str | None) -> list[str]:
        if source is None:
            return list(self.lanes)
        if source not in self.lanes:
            raise ValueError(f"unknown source {source!r}")
        return [source]

    # -- rules ------------------------------------------------------------

    def _admit(self, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        while len(self.running) < self.slots and not self.draining:
            best: Entry | None = None
            for source in self.lanes:
                if self.in_lane[source] >= self.lanes[source] or source in self.paused:
                    continue
                head = self.head(source)
                if head is not None and (best is None or head.seq < best.seq):
                    best = head
            if best is None:
                break
            self._dequeue(best)
            self.lines[best.source].popleft()  # it was the head of its lane
            best.state = RUNNING
            best.started_at = now
            self.running[best.import_id] = best
            self.in_lane[best.source] += 1
            self._measure(best, now)
            decisions.append(Admit(best.import_id))
        return decisions

    def _measure(self, entry: Entry, now: float) -> None:
        if entry.graded is None:
            return
        when, raw, shown, low, high = entry.graded
        self.accuracy.record(raw, shown, low, high, now - when)

    def _drop_ticket(self, ticket: str) -> Ticket | None:
        """Forget a ticket, and give its address's place back."""
        held = self.tickets.pop(ticket, None)
        self._detached.pop(ticket, None)
        if held is not None:
            left = self.per_address.get(held.address, 1) - 1
            if left > 0:
                self.per_address[held.address] = left
            else:
                self.per_address.pop(held.address, None)
        return held

    def _release(self, ticket: str, now: float, cancelled: bool) -> list[Decision]:
        held = self._drop_ticket(ticket)
        assert held is not None, "released twice"
        entry = self.entries.get(held.import_id)
        decisions: list[Decision] = [Release(ticket)]
        if entry is None:
            return decisions
        entry.tickets.discard(ticket)
        if not cancelled:
            entry.kept = True
        if entry.tickets:
            return decisions
        if entry.state == WAITING:
            decisions += self._remove(entry, "cancelled" if cancelled else "abandoned", now)
        elif not entry.kept and not entry.stopping:
            entry.stopping = True
            # A stopping import takes no new followers: the next request for this player
            # is a new import, in line like any other.
            self.by_key.pop((entry.source, entry.username), None)
            decisions.append(Stop(entry.import_id))
        return decisions

    def _remove(self, entry: Entry, reason: str, now: float) -> list[Decision]:
        self._dequeue(entry)
        self._forget(entry)
        decisions: list[Decision] = [
            Drop(entry.import_id, reason, frozenset(entry.tickets), entry.source, entry.username)
        ]
        decisions += [Release(t) for t in sorted(entry.tickets)]
        decisions.append(LineChanged())
        return decisions

    def _enqueue(self, entry: Entry) -> None:
        """Into line by arrival number: new arrivals, and lines read back in order."""
        self.line[entry.import_id] = entry
        self.order.add(entry.seq, entry)
        self.lines[entry.source].append(entry)
        self.index.add(entry.seq, entry.source, entry.size)

    def _dequeue(self, entry: Entry) -> None:
        del self.line[entry.import_id]
        self.order.remove(entry.seq)
        self.index.remove(entry.seq, entry.source, entry.size)
        if self.moved_after is None or entry.seq < self.moved_after:
            self.moved_after = entry.seq

    def _forget(self, entry: Entry) -> None:
        del self.entries[entry.import_id]
        key = (entry.source, entry.username)
        if self.by_key.get(key) == entry.import_id:  # not a newer import of the same player
            del self.by_key[key]
        for ticket in entry.tickets:
            self._drop_ticket(ticket)

    def admit(self, now: float) -> list[Decision]:
        """Fill free slots by the rules; drivers call it after loading saved state."""
        return self._admit(now)

    def load(self, entries: Iterable[Entry], tickets: Iterable[Ticket]) -> None:
        """Replace the line with state saved elsewhere; the estimates learned stay."""
        was_waiting = {e.import_id: e.seq for e in self.line.values()}
        self.entries.clear()
        self.by_key.clear()
        self.tickets.clear()
        self.per_address.clear()
        self._detached.clear()
        self.line.clear()
        self.order.clear()
        self.running.clear()
        for line in self.lines.values():
            line.clear()
        self.index = LineIndex(self.lanes)
        self.in_lane = dict.fromkeys(self.lanes, 0)
        for entry in sorted(entries, key=lambda e: e.seq):
            self._seq = max(self._seq, entry.seq)
            self.entries[entry.import_id] = entry
            self.by_key[(entry.source, entry.username)] = entry.import_id
            if entry.state == RUNNING:
                self.running[entry.import_id] = entry
                self.in_lane[entry.source] += 1
            else:
                self._enqueue(entry)
        for ticket in sorted(tickets, key=lambda t: t.detached_at or 0.0):
            owner = self.entries.get(ticket.import_id)
            if owner is not None:
                owner.tickets.add(ticket.ticket)
                self.tickets[ticket.ticket] = ticket
                self.per_address[ticket.address] = self.per_address.get(ticket.address, 0) + 1
                if ticket.detached_at is not None:
                    self._detached[ticket.ticket] = ticket.detached_at
        left = [seq for import_id, seq in was_waiting.items() if import_id not in self.line]
        # Sent back to the line elsewhere (`requeue`): it and everyone behind it moved.
        newest = max(was_waiting.values(), default=0)
        left += [
            e.seq - 1
            for e in self.line.values()
            if e.import_id not in was_waiting and e.seq < newest
        ]
        if left:
            lowest = min(left)
            self.moved_after = lowest if self.moved_after is None else min(self.moved_after, lowest)


def _insert(line: dict[str, Entry], entry: Entry) -> None:
    """Put `entry` back in its place by arrival number, in O(n)."""
    behind = [e for e in line.values() if e.seq > entry.seq]
    for e in behind:
        del line[e.import_id]
    line[entry.import_id] = entry
    for e in behind:
        line[e.import_id] = e
