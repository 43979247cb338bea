"""The slot manager as plain state: events in, decisions out, no I/O and no clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.queue.eta import Ewma, remaining, simulate

WAITING = "waiting"
RUNNING = "running"


@dataclass
class Entry:
    """One import, waiting in line or running, shared by every ticket that asked for it."""

    import_id: str
    source: str
    username: str  # lower-cased; the dedup key with source
    seq: int  # arrival order, the FIFO key
    joined_at: float
    owner: str  # the ticket whose request created the import
    tickets: set[str] = field(default_factory=set)
    state: str = WAITING
    started_at: float | None = None
    pages: int = 0
    pages_total: int | None = None
    games: int = 0
    first_page_at: float | None = None
    size: int | None = None  # pages probed while waiting
    stopping: bool = False


@dataclass
class Ticket:
    ticket: str
    import_id: str
    sockets: int = 0
    detached_at: float | None = None


# Decisions: what the driver must now do.
@dataclass(frozen=True)
class Admit:
    """Start this import now; it holds a slot until `finished`."""

    import_id: str


@dataclass(frozen=True)
class Drop:
    """This waiting import left the line without running; tell its tickets why."""

    import_id: str
    reason: str  # "cancelled" | "abandoned" | a failure code
    tickets: frozenset[str]
    source: str
    username: str


@dataclass(frozen=True)
class Stop:
    """Ask this running import to stop at its next page boundary."""

    import_id: str


@dataclass(frozen=True)
class Release:
    """This ticket no longer follows any import."""

    ticket: str


@dataclass(frozen=True)
class LineChanged:
    """Positions or estimates may have moved: republish them."""


Decision = Admit | Drop | Stop | Release | LineChanged


@dataclass(frozen=True)
class Estimate:
    position: int  # 1-based rank among waiting imports, in arrival order
    eta_s: float
    informed: bool = True  # the size of this import and of all before it is known


class UnknownTicket(KeyError):
    """The ticket is not held by this manager."""


class Slots:
    """Fair FIFO admission under a global cap and per-upstream lane caps.

    Admission is FIFO within an upstream and work-conserving across upstreams:
    when a slot frees, the oldest waiting import whose lane has room starts.
    An import may be overtaken only by another upstream's, and only while its
    own lane is full.
    """

    def __init__(
        self,
        slots: int,
        lanes: Mapping[str, int],
        priors: Mapping[str, Ewma],
        grace_s: float = 60.0,
    ) -> None:
        self.slots = slots
        self.lanes = dict(lanes)
        self.ewma = dict(priors)
        self.grace_s = grace_s
        self.entries: dict[str, Entry] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.tickets: dict[str, Ticket] = {}
        # Insertion-ordered by seq: the global line and one line per upstream.
        self.line: dict[str, Entry] = {}
        self.lines: dict[str, dict[str, Entry]] = {source: {} for source in self.lanes}
        self.running: dict[str, Entry] = {}
        self.in_lane: dict[str, int] = dict.fromkeys(self.lanes, 0)
        self._seq = 0

    # -- queries ----------------------------------------------------------

    @property
    def free(self) -> int:
        return max(self.slots - len(self.running), 0)

    def entry_for(self, ticket: str) -> Entry:
        try:
            return self.entries[self.tickets[ticket].import_id]
        except KeyError:
            raise UnknownTicket(ticket) from None

    def estimates(self, now: float) -> dict[str, Estimate]:
        """Position and estimated wait of every waiting import, in one pass."""
        running = [
            (
                e.source,
                remaining(
                    self.ewma[e.source],
                    now - (e.started_at if e.started_at is not None else now),
                    e.pages,
                    e.pages_total,
                    e.size,
                    None
                    if e.first_page_at is None or e.started_at is None
                    else e.first_page_at - e.started_at,
                ),
            )
            for e in self.running.values()
        ]
        # An import not sized yet counts as the average of those that are, when any are:
        # closer to this line's truth than a long-run mean of whole imports.
        sizes: dict[str, list[int]] = {}
        for e in self.entries.values():
            known = e.size if e.size is not None else e.pages_total
            if known is not None:
                sizes.setdefault(e.source, []).append(known)
        typical = {source: round(sum(v) / len(v)) for source, v in sizes.items()}
        waiting = [
            (
                e.source,
                self.ewma[e.source].expected(
                    e.size if e.size is not None else typical.get(e.source)
                ),
            )
            for e in self.line.values()
        ]
        starts = simulate(self.slots, self.lanes, running, waiting)
        informed = all(
            e.pages_total is not None or e.size is not None for e in self.running.values()
        )
        result: dict[str, Estimate] = {}
        for i, e in enumerate(self.line.values()):
            informed = informed and e.size is not None
            result[e.import_id] = Estimate(i + 1, starts[i], informed)
        return result

    # -- events -----------------------------------------------------------

    def join(
        self, ticket: str, import_id: str, source: str, username: str, now: float
    ) -> tuple[Entry, bool, list[Decision]]:
        """A request for an import; joins the existing one for the same player.

        Returns the entry, whether the ticket joined an existing import, and
        the decisions. `ticket` and `import_id` are minted by the caller.
        """
        if source not in self.lanes:
            raise ValueError(f"unknown source {source!r}")
        key = (source, username.lower())
        self.tickets[ticket] = Ticket(ticket, "", sockets=1)
        existing = self.by_key.get(key)
        if existing is not None:
            entry = self.entries[existing]
            entry.tickets.add(ticket)
            self.tickets[ticket].import_id = entry.import_id
            return entry, True, []
        self._seq += 1
        entry = Entry(import_id, source, key[1], self._seq, now, owner=ticket, tickets={ticket})
        self.tickets[ticket].import_id = import_id
        self.entries[import_id] = entry
        self.by_key[key] = import_id
        self.line[import_id] = entry
        self.lines[source][import_id] = entry
        decisions = self._admit(now)
        decisions.append(LineChanged())
        return entry, False, decisions

    def attach(self, ticket: str) -> Entry:
        """A socket follows this ticket (a resume)."""
        entry = self.entry_for(ticket)
        held = self.tickets[ticket]
        held.sockets += 1
        held.detached_at = None
        return entry

    def detach(self, ticket: str, now: float) -> None:
        """A socket that followed this ticket closed; the grace period starts at zero."""
        held = self.tickets.get(ticket)
        if held is None:
            return
        held.sockets = max(held.sockets - 1, 0)
        if held.sockets == 0:
            held.detached_at = now

    def cancel(self, ticket: str, now: float) -> list[Decision]:
        """The owner stops the import; anyone else only lets go of it."""
        entry = self.entry_for(ticket)
        if ticket != entry.owner:
            return self._release(ticket, now)
        if entry.state == RUNNING:
            entry.stopping = True
            return [Stop(entry.import_id)]
        return self._remove(entry, "cancelled", now)

    def abort(self, import_id: str, reason: str, now: float) -> list[Decision]:
        """Take a waiting import out of line, e.g. when its player does not exist."""
        entry = self.entries.get(import_id)
        if entry is None or entry.state != WAITING:
            return []
        return self._remove(entry, reason, now)

    def progress(
        self,
        import_id: str,
        pages: int,
        pages_total: int | None,
        games: int = 0,
        now: float | None = None,
    ) -> list[Decision]:
        entry = self.entries.get(import_id)
        if entry is None:
            return []
        if entry.first_page_at is None and pages >= 1 and now is not None:
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
        decisions: list[Decision] = []
        expired = [
            t.ticket
            for t in self.tickets.values()
            if t.sockets == 0 and t.detached_at is not None and now - t.detached_at >= self.grace_s
        ]
        for ticket in expired:
            if ticket in self.tickets:
                decisions += self._release(ticket, now)
        return decisions

    # -- rules ------------------------------------------------------------

    def _admit(self, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        while len(self.running) < self.slots:
            best: Entry | None = None
            for source, line in self.lines.items():
                if not line or self.in_lane[source] >= self.lanes[source]:
                    continue
                head = next(iter(line.values()))
                if best is None or head.seq < best.seq:
                    best = head
            if best is None:
                break
            del self.line[best.import_id]
            del self.lines[best.source][best.import_id]
            best.state = RUNNING
            best.started_at = now
            self.running[best.import_id] = best
            self.in_lane[best.source] += 1
            decisions.append(Admit(best.import_id))
        return decisions

    def _release(self, ticket: str, now: float) -> list[Decision]:
        held = self.tickets.pop(ticket)
        entry = self.entries.get(held.import_id)
        decisions: list[Decision] = [Release(ticket)]
        if entry is None:
            return decisions
        entry.tickets.discard(ticket)
        if entry.state == WAITING and not entry.tickets:
            decisions += self._remove(entry, "abandoned", now)
        return decisions

    def _remove(self, entry: Entry, reason: str, now: float) -> list[Decision]:
        del self.line[entry.import_id]
        del self.lines[entry.source][entry.import_id]
        self._forget(entry)
        decisions: list[Decision] = [
            Drop(entry.import_id, reason, frozenset(entry.tickets), entry.source, entry.username)
        ]
        decisions += [Release(t) for t in sorted(entry.tickets)]
        decisions.append(LineChanged())
        return decisions

    def _forget(self, entry: Entry) -> None:
        del self.entries[entry.import_id]
        self.by_key.pop((entry.source, entry.username), None)
        for ticket in entry.tickets:
            self.tickets.pop(ticket, None)

    def admit(self, now: float) -> list[Decision]:
        """Fill free slots by the rules; drivers call it after loading saved state."""
        return self._admit(now)

    def load(self, entries: Iterable[Entry], tickets: Iterable[Ticket]) -> None:
        """Replace the line with state saved elsewhere; the estimates learned stay."""
        self.entries.clear()
        self.by_key.clear()
        self.tickets.clear()
        self.line.clear()
        self.running.clear()
        for line in self.lines.values():
            line.clear()
        self.in_lane = dict.fromkeys(self.lanes, 0)
        for entry in sorted(entries, key=lambda e: e.seq):
            self._seq = max(self._seq, entry.seq)
            self.entries[entry.import_id] = entry
            self.by_key[(entry.source, entry.username)] = entry.import_id
            if entry.state == RUNNING:
                self.running[entry.import_id] = entry
                self.in_lane[entry.source] += 1
            else:
                self.line[entry.import_id] = entry
                self.lines[entry.source][entry.import_id] = entry
        for ticket in tickets:
            owner = self.entries.get(ticket.import_id)
            if owner is not None:
                owner.tickets.add(ticket.ticket)
                self.tickets[ticket.ticket] = ticket
