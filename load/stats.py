"""Pure statistics over recorded events: percentiles, FIFO inversions, concurrency, ETA error.

Standard library only, so the unit tests run without the load tool's plotting extras.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of values sorted ascending, interpolating linearly.

    The same definition as numpy's default ("linear"); None for no values.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    n = len(ordered)
    if n == 0:
        return None
    rank = (n - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    frac = rank - low
    return float(ordered[low]) + (float(ordered[high]) - float(ordered[low])) * frac


def summary(
    values: Iterable[float], scale: float = 1.0, digits: int = 4
) -> dict[str, float | None]:
    """Count, mean, p50, p90, p99 and max of `values`, each multiplied by `scale`."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}

    def fmt(x: float | None) -> float | None:
        return None if x is None else round(x * scale, digits)

    return {
        "n": len(ordered),
        "mean": fmt(math.fsum(ordered) / len(ordered)),
        "p50": fmt(percentile(ordered, 50)),
        "p90": fmt(percentile(ordered, 90)),
        "p99": fmt(percentile(ordered, 99)),
        "max": fmt(ordered[-1]),
    }


def count_inversions(seq: Sequence[float]) -> int:
    """Pairs i < j with seq[i] > seq[j] (ties are not inversions), in O(n log n)."""
    items = list(seq)
    buffer = items[:]
    inversions = 0
    width = 1
    n = len(items)
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if items[j] < items[i]:
                    buffer[k] = items[j]
                    inversions += mid - i
                    j += 1
                else:
                    buffer[k] = items[i]
                    i += 1
                k += 1
            buffer[k : k + mid - i] = items[i:mid]
            k += mid - i
            buffer[k : k + hi - j] = items[j:hi]
        items, buffer = buffer, items
        width *= 2
    return inversions


def fifo_inversions(requests_and_starts: Iterable[tuple[float, float]]) -> int:
    """Admission-order inversions: pairs asked in one order and admitted in the other.

    Each item is (request key, start key) of one import in one FIFO line. Requests
    are ordered by their key (ties keep input order); the count is the number of
    pairs whose starts are strictly in the opposite order.
    """
    ordered = sorted(requests_and_starts, key=lambda pair: pair[0])
    return count_inversions([start for _, start in ordered])


def max_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals open at once; an interval ending when another starts does not overlap it."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        if end < start:
            raise ValueError(f"interval ends before it starts: {start} > {end}")
        events.append((start, 1))
        events.append((end, -1))
    events.sort()  # at equal times -1 sorts before +1: ends first
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def over_limit(intervals: Iterable[tuple[float, float]], limit: int) -> tuple[float, float, int]:
    """How long more than `limit` intervals were open: (total s, longest episode s, episodes).

    Tells a real breach (as long as an import) from event-delivery jitter (microseconds).
    """
    total = longest = 0.0
    episodes = 0
    since: float | None = None
    for t, count in step_series(intervals):
        if count > limit and since is None:
            since = t
            episodes += 1
        elif count <= limit and since is not None:
            total += t - since
            longest = max(longest, t - since)
            since = None
    return total, longest, episodes


def step_series(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, int]]:
    """(time, count open just after time) at every change, for plotting a step line."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end, -1))
    events.sort()
    series: list[tuple[float, int]] = []
    running = 0
    for t, step in events:
        running += step
        if series and series[-1][0] == t:
            series[-1] = (t, running)
        else:
            series.append((t, running))
    return series


def eta_errors(pairs: Iterable[tuple[float, float]], floor_s: float = 1.0) -> list[float]:
    """Absolute error of each first estimate, in percent of the real wait.

    Each pair is (estimated wait, real wait) in seconds. The denominator is at
    least `floor_s`, so an import admitted almost at once does not turn a few
    hundred milliseconds of error into thousands of percent.
    """
    if floor_s <= 0:
        raise ValueError("floor_s must be positive")
    return [abs(eta - real) / max(real, floor_s) * 100.0 for eta, real in pairs]


def rate(count: int, seconds: float) -> float | None:
    """Events per second, None when no time passed."""
    return None if seconds <= 0 else count / seconds


def ratio(value: float | None, reference: float | None, digits: int = 3) -> float | None:
    """value / reference, None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, digits)
