"""The accuracy window: a fixed interval until 20 samples, then median correction and p10/p90."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.queue.accuracy import Accuracy

INF = float("inf")
WAITS = st.floats(0.0, 10_000.0, allow_nan=False)


def filled(ratios: list[float], raw: float = 9.0) -> Accuracy:
    """One sample per ratio (real + 1) / (raw + 1), all with the same raw estimate."""
    accuracy = Accuracy(window=200)
    for r in ratios:
        real = r * (raw + 1.0) - 1.0
        accuracy.record(raw, raw, raw * 0.5, raw * 2.0, real)
    return accuracy


@given(st.integers(0, 19), WAITS, st.lists(st.tuples(WAITS, WAITS), min_size=19, max_size=19))
def test_before_twenty_samples_the_interval_is_half_to_double(
    n: int, raw: float, samples: list[tuple[float, float]]
) -> None:
    accuracy = Accuracy()
    for estimate, real in samples[:n]:
        accuracy.record(estimate, estimate, estimate / 2, estimate * 2, real)
    assert accuracy.correct(raw) == (raw * 0.5, raw, raw * 2.0)  # eta stays the raw estimate
    assert accuracy.factors() == (0.5, 1.0, 2.0)


def test_after_twenty_samples_median_correction_and_p10_p90() -> None:
    ratios = [0.5 + 0.1 * k for k in range(20)]  # 0.5, 0.6, ... 2.4
    accuracy = filled(ratios)
    # Linear interpolation between closest ranks over 20 sorted ratios:
    # p10 at 1.9 -> 0.6 + 0.9 * 0.1; p50 at 9.5 -> (1.4 + 1.5) / 2; p90 at 17.1 -> 2.2 + 0.1 * 0.1.
    low, mid, high = accuracy.factors()
    assert (low, mid, high) == pytest.approx((0.69, 1.45, 2.21))
    # The factors scale (raw + 1 s), so that a sub-second wait does not dominate.
    assert accuracy.correct(19.0) == pytest.approx((20 * 0.69 - 1, 20 * 1.45 - 1, 20 * 2.21 - 1))
    # Never below zero, however well the hub did last time.
    fast = filled([0.1] * 20)
    assert fast.correct(0.5) == (0.0, 0.0, 0.0)
    assert fast.correct(INF) == (INF, INF, INF)


def test_a_hub_that_ran_high_estimates_lower() -> None:
    accuracy = filled([0.5] * 20, raw=19.0)  # every wait was half the estimate
    low, eta, high = accuracy.correct(39.0)
    assert eta == pytest.approx(19.0) and low == pytest.approx(19.0) and high == pytest.approx(19.0)


@given(
    st.lists(st.tuples(WAITS, WAITS), min_size=0, max_size=60),
    WAITS | st.just(INF),
)
def test_low_le_eta_le_high_always(samples: list[tuple[float, float]], raw: float) -> None:
    accuracy = Accuracy(window=40)
    for estimate, real in samples:
        accuracy.record(estimate, estimate, estimate, estimate, real)
    low, eta, high = accuracy.correct(raw)
    assert 0.0 <= low <= eta <= high


def test_the_window_keeps_the_last_n() -> None:
    accuracy = Accuracy(window=20)
    for _ in range(5):
        accuracy.record(9.0, 9.0, 4.5, 18.0, 99.0)  # ratio 10: pushed out below
    assert accuracy.correct(9.0) == (4.5, 9.0, 18.0)
    for _ in range(20):
        accuracy.record(9.0, 9.0, 4.5, 18.0, 19.0)  # ratio 2
    assert len(accuracy.samples) == 20
    assert all(real == 19.0 for *_, real in accuracy.samples)
    assert accuracy.factors() == pytest.approx((2.0, 2.0, 2.0))
    assert accuracy.correct(4.0) == pytest.approx((9.0, 9.0, 9.0))
    assert accuracy.summary()["samples"] == 20


def test_summary_is_null_below_twenty() -> None:
    accuracy = Accuracy()
    for _ in range(19):
        accuracy.record(10.0, 10.0, 5.0, 20.0, 10.0)
    assert accuracy.summary() == {
        "samples": 19,
        "median_error_pct": None,
        "p90_error_pct": None,
        "interval_hit_pct": None,
    }


def test_summary_by_hand() -> None:
    accuracy = Accuracy()
    # Real wait 10 s each time; published 10 + k s, so the errors are k/10 for k = 0..19.
    # The interval held the real wait when it was 5..15, for k even; it missed for k odd.
    for k in range(20):
        low, high = (5.0, 15.0) if k % 2 == 0 else (11.0, 30.0)
        accuracy.record(10.0, 10.0 + k, low, high, 10.0)
    # Median of 0.0..1.9 at rank 9.5: 0.95; p90 at rank 17.1: 1.71.
    assert accuracy.summary() == {
        "samples": 20,
        "median_error_pct": 95.0,
        "p90_error_pct": 171.0,
        "interval_hit_pct": 50.0,
    }


def test_summary_of_short_waits_measures_against_one_second() -> None:
    accuracy = Accuracy()
    # A 0.2 s wait told as 0.7 s is half a second off: 50 %, not 250 %.
    for _ in range(10):
        accuracy.record(0.7, 0.7, 0.0, 1.0, 0.2)
    for _ in range(10):
        accuracy.record(4.0, 4.0, 2.0, 3.0, 4.0)  # exact, but outside its interval
    summary = accuracy.summary()
    # Errors: ten 0.0 and ten 0.5; median at rank 9.5 -> 0.25, p90 at rank 17.1 -> 0.5.
    assert summary == {
        "samples": 20,
        "median_error_pct": 25.0,
        "p90_error_pct": 50.0,
        "interval_hit_pct": 50.0,
    }
