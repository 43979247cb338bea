"""Estimated waits: running-time learning and one simulation pass over the line."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class Ewma:
    """Exponentially weighted means of import duration and of seconds per page."""

    duration_s: float
    page_s: float
    alpha: float = 0.3
    samples: int = 0

    def observe(self, duration_s: float, pages: int) -> None:
        a = self.alpha
        self.duration_s += a * (duration_s - self.duration_s)
        if pages > 0:
            self.page_s += a * (duration_s / pages - self.page_s)
        self.samples += 1

    def expected(self, pages: int | None) -> float:
        """Whole-import time: per page when the size is known, else the mean."""
        if pages is not None and pages > 0:
            return pages * self.page_s
        return self.duration_s


def remaining(
    ewma: Ewma, elapsed_s: float, pages_done: int, pages_total: int | None, size: int | None
) -> float:
    """Time a running import still needs.

    Its own pace is the best evidence once it has stored a page; before that the
    learned pace applies. Never zero: an import that is late is still running.
    """
    total = pages_total if pages_total is not None else size
    if pages_done > 0 and total is not None and total >= pages_done:
        left = elapsed_s / pages_done * (total - pages_done)
    else:
        left = ewma.expected(total) - elapsed_s
    return max(left, 0.5)


def simulate(
    slots: int,
    lanes: Mapping[str, int],
    running: Sequence[tuple[str, float]],
    waiting: Sequence[tuple[str, float]],
) -> list[float]:
    """Start time, from now, of each waiting import in line order.

    `running` holds (source, seconds left); `waiting` holds (source, expected
    seconds) in arrival order. The rule is the slot manager's own: when a slot
    frees, the oldest waiting import whose lane has room starts. The heap holds
    at most `slots` end events and each source's queue is consumed in order,
    so one pass costs O(len(waiting) * log(slots)).
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
    now = 0.0
    left_to_place = len(waiting)
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
    return starts
