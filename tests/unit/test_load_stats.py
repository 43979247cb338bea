"""Pure statistics of the load tool: percentiles, FIFO, concurrency, ETA error, latency."""

from __future__ import annotations

import itertools
import random

import pytest

from load.latency import Waiter, position_latencies
from load.stats import (
    count_inversions,
    eta_errors,
    fifo_inversions,
    max_concurrency,
    over_limit,
    percentile,
    ratio,
    step_series,
    summary,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summary_scales_and_handles_empty() -> None:
    s = summary([0.001, 0.002, 0.003], scale=1000)
    assert s["n"] == 3 and s["p50"] == 2.0 and s["max"] == 3.0 and s["mean"] == 2.0
    assert summary([])["p99"] is None


def test_count_inversions_matches_brute_force() -> None:
    rng = random.Random(7)
    for n in (0, 1, 2, 5, 17, 64):
        seq = [rng.randint(0, 10) for _ in range(n)]
        brute = sum(1 for i, j in itertools.combinations(range(n), 2) if seq[i] > seq[j])
        assert count_inversions(seq) == brute


def test_fifo_inversions() -> None:
    # (request, start): in order, then one swap, then fully reversed
    assert fifo_inversions([(1, 10), (2, 11), (3, 12)]) == 0
    assert fifo_inversions([(1, 10), (2, 12), (3, 11)]) == 1
    assert fifo_inversions([(1, 13), (2, 12), (3, 11), (4, 10)]) == 6
    # equal starts are not inversions; input order does not matter
    assert fifo_inversions([(3, 5), (1, 5), (2, 5)]) == 0


def test_max_concurrency_sweep() -> None:
    assert max_concurrency([]) == 0
    assert max_concurrency([(0, 1), (1, 2), (2, 3)]) == 1  # touching ends do not overlap
    assert max_concurrency([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3
    with pytest.raises(ValueError):
        max_concurrency([(2, 1)])
    assert step_series([(0, 2), (1, 3)]) == [(0, 1), (1, 2), (2, 1), (3, 0)]
    # above 1 from 1 to 2 and from 5 to 5.5: two episodes, 1.5 s in all
    assert over_limit([(0, 2), (1, 3), (4, 6), (5, 5.5)], 1) == (1.5, 1.0, 2)
    assert over_limit([(0, 1), (1, 2)], 1) == (0.0, 0.0, 0)


def test_eta_errors_use_a_floor() -> None:
    assert eta_errors([(12.0, 10.0), (5.0, 10.0)]) == [20.0, 50.0]
    # a 0.2 s real wait is measured against 1 s, not 0.2 s
    assert eta_errors([(0.7, 0.2)]) == [pytest.approx(50.0)]
    with pytest.raises(ValueError):
        eta_errors([(1, 1)], floor_s=0)
    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None


def _line(delays: dict[tuple[int, int], float], starts: list[float]) -> list[Waiter]:
    """Waiters 0..n-1 all queued at t=0; each start of an earlier rank moves the later ones."""
    n = len(starts)
    waiters = []
    for y in range(n):
        positions = [(0.0, y + 1)]
        for x in range(y):
            positions.append((starts[x] + delays.get((x, y), 0.01), y - x))
        positions.sort()
        waiters.append(Waiter(y, 0.0, positions, starts[y]))
    return waiters


def test_position_latency_every_pair_once() -> None:
    starts = [1.0, 2.0, 3.0, 4.0]
    got = position_latencies(_line({(0, 3): 0.5}, starts))
    # pairs: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert len(got.samples) == 6
    assert sorted(got.samples) == pytest.approx([0.01] * 5 + [0.5])
    assert got.early == 0 and got.unresolved == 0 and got.mismatched == 0
    first = got.departures[0]
    assert first.waiters == 3 and first.worst_s == pytest.approx(0.5)


def test_position_latency_coalesced_update_and_own_start() -> None:
    # waiter 2 never gets position 2: its one update (position 1) covers two departures,
    # and waiter 1 learns nothing before it starts itself
    waiters = [
        Waiter(0, 0.0, [(0.0, 1)], 1.0),
        Waiter(1, 0.0, [(0.0, 2)], 2.0),
        Waiter(2, 0.0, [(0.0, 3), (2.3, 1)], 5.0),
    ]
    got = position_latencies(waiters)
    assert sorted(got.samples) == pytest.approx([0.3, 1.0, 1.3])


def test_position_latency_early_gap_and_unresolved() -> None:
    waiters = [
        Waiter(0, 0.0, [(0.0, 1)], 1.0),
        # its update arrived before the departure was read: counted as 0
        Waiter(1, 0.0, [(0.0, 2), (0.99, 1)], 3.0),
        # no socket open at t=1: skipped; later failed without a new position: unresolved
        Waiter(2, 0.0, [(0.0, 3)], 4.0, started=False, gaps=[(0.5, 1.5)]),
    ]
    got = position_latencies(waiters)
    assert list(got.samples) == [0.0]
    assert got.early == 1 and got.skipped_gap == 1 and got.unresolved == 1
    # the socket closed after the departure but before the update: the user left, skipped
    late = [
        Waiter(0, 0.0, [(0.0, 1)], 1.0),
        Waiter(1, 0.0, [(0.0, 2), (4.0, 1)], 5.0, gaps=[(1.01, 3.9)]),
    ]
    got = position_latencies(late)
    assert got.skipped_gap == 1 and len(got.samples) == 0


def test_position_latency_counts_order_mismatch() -> None:
    # waiter 1 says it is first: the request order disagrees with the hub's
    waiters = [Waiter(0, 0.0, [(0.0, 1)], 1.0), Waiter(1, 0.0, [(0.0, 1)], 2.0)]
    assert position_latencies(waiters).mismatched == 1
    with pytest.raises(ValueError):
        position_latencies([Waiter(0, 0.0, [(0.0, 1)], 1.0)] * 2)


def test_position_latency_skips_departures_of_unknown_time() -> None:
    # rank 0 ended while its socket was away, some time in 0.5..3: departures inside that
    # window cannot be judged; after it, rank 0 counts as gone
    waiters = [
        Waiter(0, 0.0, [(0.0, 1)], 3.0, left_since=0.5),
        Waiter(1, 0.0, [(0.0, 2)], 2.0),
        Waiter(2, 0.0, [(0.0, 3), (2.05, 1)], 4.0),
        Waiter(3, 0.0, [(0.0, 4), (2.05, 2), (4.2, 1)], 6.0),
    ]
    got = position_latencies(waiters)
    assert got.skipped_unknown == 4  # ranks 1 and 0 leaving, seen by ranks 2 and 3
    assert list(got.samples) == pytest.approx([0.2])
