"""Estimated waits: running-time learning and one simulation pass over the line."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted means of an upstream's import times.

    An import costs a fixed start (the size request, the first round trips)
    plus a time per page; learning both keeps small imports from inflating
    the per-page figure that large ones are estimated by.
    """

    duration_s: float
    page_s: float
    alpha: float = 0.3
    overhead_s: float = 0.0
    samples: int = 0

    def observe(self, duration_s: float, pages: int, first_page_s: float | None = None) -> None:
        a = self.alpha
        self.duration_s += a * (duration_s - self.duration_s)
        if pages >= 2 and first_page_s is not None:
            per_page = max(duration_s - first_page_s, 0.0) / (pages - 1)
            self.page_s += a * (per_page - self.page_s)
            self.overhead_s += a * (max(first_page_s - per_page, 0.0) - self.overhead_s)
        elif pages > 0:
            self.page_s += a * (max(duration_s - self.overhead_s, 0.0) / pages - self.page_s)
        self.samples += 1

    def expected(self, pages: int | None) -> float:
        """Whole-import time: start plus pages when the size is known, else the mean."""
        if pages is not None and pages > 0:
            return self.overhead_s + pages * self.page_s
        return self.duration_s


def remaining(
    ewma: Ewma,
    elapsed_s: float,
    pages_done: int,
    pages_total: int | None,
    size: int | None,
    first_page_s: float | None = None,
) -> float:
    """Time a running import still needs.

    The first page carries the start-up work, so an import's own pace is
    measured from its first page on, and it outweighs the learned pace as
    pages come in. Never zero: an import that is late is still running.
    """
    total = pages_total if pages_total is not None else size
    if total is None or pages_done == 0 or total < pages_done:
        return max(ewma.expected(total) - elapsed_s, 0.1)
    if first_page_s is not None:
        if pages_done == 1:
            return max(ewma.page_s * (total - 1), 0.1)
        own = (elapsed_s - first_page_s) / (pages_done - 1)
        weight = (pages_done - 1) / (pages_done + 1)
    else:  # when the first page's time is not known (a line read back from the database)
        own = elapsed_s / pages_done
        weight = pages_done / (pages_done + 2)
    pace = weight * own + (1 - weight) * ewma.page_s
    return max(pace * (total - pages_done), 0.1)


class Schedule(NamedTuple):
    """The simulated start of each waiter, and the slots' ends when the last one started."""

    starts: list[float]
    clock: float  # when the last waiter starts
    ends: list[tuple[float, str]]  # (end, source) of what holds a slot at `clock`


def simulate(
    slots: int,
    lanes: Mapping[str, int],
    running: Sequence[tuple[str, float]],
    waiting: Sequence[tuple[str, float]],
    blocked: Collection[str] = (),
) -> Schedule:
    """Start time, from now, of each waiting import in line order.

    `running` holds (source, seconds left); `waiting` holds (source, expected
    seconds) in arrival order. The rule is the slot manager's own: when a slot
    frees, the oldest waiting import whose lane has room starts; a `blocked`
    (paused) source starts nothing. The heap holds at most `slots` end events
    and each source's queue is consumed in order, so one pass costs
    O(len(waiting) * log(slots)).
    """
    ends: list[tuple[float, str]] = [(left, source) for source, left in running]
    heapq.heapify(ends)
    in_lane: dict[str, int] = {}
    for source, _ in running:
        in_lane[source] = in_lane.get(source, 0) + 1
    queues: dict[str, list[int]] = {}
    for index, (source, _) in enumerate(waiting):
        queues.setdefault(source, []).append(index)
    heads = dict.fromkeys(queues, 0)
    starts = [0.0] * len(waiting)
    for source in blocked:
        for index in queues.pop(source, []):
            starts[index] = float("inf")
    now = 0.0
    left_to_place = sum(len(q) for q in queues.values())
    while left_to_place:
        best: int | None = None
        if len(ends) < slots:
            for source, queue in queues.items():
                head = heads[source]
                if (
                    head < len(queue)
                    and in_lane.get(source, 0) < lanes.get(source, slots)
                    and (best is None or queue[head] < best)
                ):
                    best = queue[head]
        if best is not None:
            source, duration = waiting[best]
            heads[source] += 1
            in_lane[source] = in_lane.get(source, 0) + 1
            starts[best] = now
            heapq.heappush(ends, (now + duration, source))
            left_to_place -= 1
            continue
        if not ends:  # a lane of size 0: nothing will ever start
            for source, queue in queues.items():
                for index in queue[heads[source] :]:
                    starts[index] = float("inf")
            break
        now, source = heapq.heappop(ends)
        in_lane[source] -= 1
    return Schedule(starts, now, ends)
