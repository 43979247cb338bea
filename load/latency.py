"""Position-update delivery latency: how long after an import leaves the line each waiter behind
it learns its new position. Pure Python (standard library only).

Model. The imports of one line are ranked by request order (rank 0 first). At time `t`, a waiter
of rank r should hold position 1 + (number of imports ranked before it that have not left the
line by `t`). When import X leaves (its `started` arrives, or a `failed` before it started), every
waiter behind X that was already in line and has not left should receive a `queued` whose
position is at most that expected value. The latency of the pair (X, Y) is the arrival of the
first such `queued` at Y minus the arrival of X's departure; Y's own `started` also settles it
(it then holds no position any more). A `queued` that arrived before X's `started` was read
counts as 0 (`early`).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Waiter:
    """One import as its sockets saw it."""

    rank: int  # 0-based request order within its line
    first_queued: float | None  # arrival of the first `queued`; None if never queued
    positions: Sequence[tuple[float, int]]  # (arrival, position) of every `queued`, by arrival
    departure: float | None  # arrival of `started`, or of `failed` before starting; None: never
    started: bool = True  # False when the departure was a failure
    gaps: Sequence[tuple[float, float]] = ()  # intervals with no socket open (churn)
    # It left at an unknown moment between this and `departure` (it ended while away).
    left_since: float | None = None


@dataclass
class Departure:
    """What one departure did to the waiters behind it."""

    time: float
    rank: int
    waiters: int = 0
    worst_s: float = 0.0  # until the last waiter behind it knew
    total_s: float = 0.0

    @property
    def mean_s(self) -> float | None:
        return self.total_s / self.waiters if self.waiters else None


@dataclass
class Latencies:
    samples: array[float] = field(default_factory=lambda: array("d"))
    early: int = 0  # the waiter's update arrived before the departure was read
    unresolved: int = 0  # the waiter ended (failed, lost) without an update
    skipped_gap: int = 0  # the waiter had no socket open between the departure and its update
    skipped_unknown: int = 0  # an import ahead left at an unknown moment around then
    mismatched: int = 0  # waiters whose first position disagreed with the request order
    departures: list[Departure] = field(default_factory=list)


def _in_gap(gaps: Sequence[tuple[float, float]], t: float) -> bool:
    return any(a <= t <= b for a, b in gaps)


def position_latencies(waiters: Sequence[Waiter]) -> Latencies:
    """Every (departure, waiter behind it) latency of one line, in seconds."""
    by_rank = sorted(waiters, key=lambda w: w.rank)
    ranks = [w.rank for w in by_rank]
    if len(set(ranks)) != len(ranks):
        raise ValueError("ranks must be unique within a line")
    out = Latencies()
    # Departures in arrival order; `dep_index[rank]` finds a waiter's own entry.
    deps = sorted(
        (w.departure, w.rank)
        for w in by_rank
        if w.departure is not None and w.departure == w.departure
    )
    out.departures = [Departure(t, r) for t, r in deps]
    dep_times = [t for t, _ in deps]
    unknown = [
        (w.rank, w.left_since, w.departure)
        for w in by_rank
        if w.left_since is not None and w.departure is not None
    ]
    for y in by_rank:
        blind = [(a, b) for r, a, b in unknown if r < y.rank]
        if y.first_queued is None or not y.positions:
            continue
        end = y.departure if y.departure is not None else math.inf
        times = [t for t, _ in y.positions]
        lowest: list[int] = []  # running minimum of the positions, by arrival
        low = math.inf
        for _, pos in y.positions:
            low = min(low, pos)
            lowest.append(int(low))
        neg_lowest = [-p for p in lowest]  # non-decreasing, for bisect
        ahead_gone = 0  # imports ranked before y that left by the current time
        checked_first = False
        start = bisect.bisect_right(dep_times, y.first_queued)
        for k in range(len(deps)):
            t_x, r_x = deps[k]
            if k >= start and not checked_first:
                checked_first = True
                if y.positions[0][1] != 1 + y.rank - ahead_gone:
                    out.mismatched += 1
            if r_x >= y.rank:
                if t_x >= end:
                    break
                continue
            ahead_gone += 1
            if k < start:
                continue
            if t_x >= end:
                break
            if y.gaps and _in_gap(y.gaps, t_x):
                out.skipped_gap += 1
                continue
            if blind and _in_gap(blind, t_x):
                out.skipped_unknown += 1
                continue
            expected = 1 + y.rank - ahead_gone
            i = bisect.bisect_left(neg_lowest, -expected)
            if i < len(times):
                seen = times[i]
            elif y.departure is not None and y.started:
                seen = y.departure
            else:
                out.unresolved += 1
                continue
            if y.gaps and any(a <= seen and t_x <= b for a, b in y.gaps):
                # The socket closed before the update reached it: the user left, not the hub.
                out.skipped_gap += 1
                continue
            latency = seen - t_x
            if latency < 0:
                out.early += 1
                latency = 0.0
            out.samples.append(latency)
            d = out.departures[k]
            d.waiters += 1
            d.total_s += latency
            d.worst_s = max(d.worst_s, latency)
        if not checked_first and y.positions[0][1] != 1 + y.rank - ahead_gone:
            out.mismatched += 1
    return out
