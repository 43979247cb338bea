"""Estimated waits at one instant: the head of the line simulated, the rest from prefix sums."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.queue.eta import simulate
from hub.queue.index import LineIndex

if TYPE_CHECKING:
    from hub.queue.core import Entry, Slots

INF = float("inf")


@dataclass(slots=True)
class Frame:
    """Raw estimated waits (seconds from `now`), before the accuracy correction.

    The first `horizon` waiters are simulated exactly by the admission rule.
    Beyond them, what lies ahead of a waiter is work: per lane, a fixed start
    per import plus a time per page (or the typical import when unsized). A
    waiter starts once the slots have drained the work before it, and its own
    lane has drained its share: a fluid bound, O(log n) from the index, or
    O(1) per waiter when walking the line in order.
    """

    now: float
    slots: int
    lanes: dict[str, int]
    blocked: frozenset[str]
    starts: dict[str, float]  # import_id -> start, for the simulated head
    edge_seq: int  # arrival number of the last simulated waiter
    edge_start: float
    busy: dict[str, float]  # per lane: work still running at edge_start
    unit: dict[str, tuple[float, float, float]]  # lane -> (start, per page, unsized import)
    index: LineIndex

    def wait(self, entry: Entry, now: float) -> float:
        """One waiter's raw wait, from `now`."""
        start = self.starts.get(entry.import_id)
        if start is None:
            work = {
                lane: self._work(lane, *self.index.between(lane, self.edge_seq, entry.seq - 1))
                for lane in self.lanes
            }
            start = self._beyond(entry.source, work)
        return max(start - (now - self.now), 0.0)

    def walk(self, slots: Slots, after: int, now: float) -> Iterator[tuple[Entry, int, float]]:
        """(entry, position, raw wait) of every waiter that arrived after `after`, in order."""
        position = self.index.rank(after) if after > 0 else 0
        elapsed = now - self.now
        work: dict[str, float] | None = None
        for entry in slots.waiting(after):
            position += 1
            start = self.starts.get(entry.import_id)
            if start is None:
                if work is None:  # the first waiter past the head: one index query
                    work = {
                        lane: self._work(
                            lane, *self.index.between(lane, self.edge_seq, entry.seq - 1)
                        )
                        for lane in self.lanes
                    }
                start = self._beyond(entry.source, work)
                work[entry.source] += self._cost(entry)
            yield entry, position, max(start - elapsed, 0.0)

    def _work(self, lane: str, waiting: int, sized: int, pages: int) -> float:
        if lane in self.blocked:
            return 0.0  # a paused lane's waiters take no slot
        fixed, per_page, unsized = self.unit[lane]
        return fixed * sized + per_page * pages + unsized * (waiting - sized)

    def _cost(self, entry: Entry) -> float:
        if entry.source in self.blocked:
            return 0.0
        fixed, per_page, unsized = self.unit[entry.source]
        return unsized if entry.size is None else fixed + per_page * entry.size

    def _beyond(self, lane: str, work: dict[str, float]) -> float:
        cap = min(self.lanes.get(lane, 0), self.slots)
        if lane in self.blocked or cap <= 0:
            return INF
        total = sum(self.busy.values()) + sum(work.values())
        own = self.busy.get(lane, 0.0) + work[lane]
        return self.edge_start + max(total / self.slots, own / cap)


def make_frame(slots: Slots, now: float) -> Frame:
    """Simulate the head of the line and note what the rest of it needs."""
    running = [(e.source, slots.remaining(e, now)) for e in slots.running.values()]
    unit: dict[str, tuple[float, float, float]] = {}
    for lane in slots.lanes:
        ewma = slots.ewma[lane]
        _, sized, pages = slots.index.totals(lane)
        # An unsized import counts as the average of the sized ones, when any are:
        # closer to this line's truth than a long-run mean of whole imports.
        typical = ewma.expected(round(pages / sized)) if sized else ewma.duration_s
        unit[lane] = (ewma.overhead_s, ewma.page_s, typical)
    head = list(itertools.islice(slots.waiting(), slots.horizon))
    blocked = frozenset(slots.paused)
    waiting_costs = [
        (
            e.source,
            unit[e.source][2] if e.size is None else unit[e.source][0] + unit[e.source][1] * e.size,
        )
        for e in head
    ]
    schedule = simulate(slots.slots, slots.lanes, running, waiting_costs, blocked)
    busy = dict.fromkeys(slots.lanes, 0.0)
    for end, source in schedule.ends:
        busy[source] = busy.get(source, 0.0) + max(end - schedule.clock, 0.0)
    return Frame(
        now=now,
        slots=slots.slots,
        lanes=dict(slots.lanes),
        blocked=blocked,
        starts={e.import_id: start for e, start in zip(head, schedule.starts, strict=True)},
        edge_seq=head[-1].seq if head else 0,
        edge_start=schedule.clock,
        busy=busy,
        unit=unit,
        index=slots.index,
    )
