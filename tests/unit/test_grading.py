"""Grading: which estimate a waiter is held to, and what its admission records."""

from __future__ import annotations

import pytest

from hub.queue.core import Admit, Slots
from hub.queue.eta import Ewma


def make() -> Slots:
    priors = {"chesscom": Ewma(10.0, 1.0, overhead_s=2.0), "lichess": Ewma(10.0, 1.0)}
    s = Slots(1, {"chesscom": 1, "lichess": 1}, priors)
    s.join("t-run", "run", "chesscom", "runner", 0.0, "a-run")  # holds the one slot
    return s


def join(s: Slots, name: str, now: float) -> None:
    s.join(f"t-{name}", name, "chesscom", name, now, f"a-{name}")


def publish(s: Slots, now: float) -> float:
    """One publishing pass; returns the raw estimate of the first waiter at that moment."""
    frame = s.frame(now)
    s.grade(frame, now)
    first = next(iter(s.line.values()), None)
    return -1.0 if first is None else frame.wait(first, now)


def test_graded_one_second_after_the_ticket_with_that_moments_estimate() -> None:
    s = make()
    join(s, "w", 0.2)
    publish(s, 0.5)
    publish(s, 1.1)
    assert s.entries["w"].graded is None  # 0.9 s after its ticket, not yet
    raw = publish(s, 1.3)
    graded = s.entries["w"].graded
    assert graded is not None
    low, shown, high = s.accuracy.correct(raw)
    assert graded == (1.3, raw, shown, low, high)
    assert raw == pytest.approx(10.0 - 1.3)  # the running import's prior, counted down
    publish(s, 2.0)
    assert s.entries["w"].graded == graded  # once


def test_graded_when_sized_if_that_comes_first() -> None:
    s = make()
    join(s, "w", 0.0)
    publish(s, 0.1)
    s.sized("run", 4)  # the running one's size moves the waiter's estimate
    s.sized("w", 7)
    raw = publish(s, 0.4)
    graded = s.entries["w"].graded
    assert graded is not None and graded[:2] == (0.4, raw)
    assert raw == pytest.approx(2.0 + 4 * 1.0 - 0.4)
    s.sized("w", 30)  # a later size does not grade it again
    publish(s, 0.6)
    publish(s, 1.5)
    assert s.entries["w"].graded == graded


def test_admission_records_the_real_wait_against_the_graded_estimate() -> None:
    s = make()
    join(s, "w", 0.0)
    raw = publish(s, 1.0)
    graded = s.entries["w"].graded
    assert graded is not None
    assert not s.accuracy.samples
    decisions = s.finished("run", 7.5)
    assert Admit("w") in decisions
    _, _, shown, low, high = graded
    # The real wait is counted from the moment of grading, as the estimate was.
    assert list(s.accuracy.samples) == [(raw, shown, low, high, 6.5)]


def test_admitted_before_graded_records_nothing() -> None:
    s = make()
    join(s, "w", 0.0)
    join(s, "x", 0.0)
    w, x = s.entries["w"], s.entries["x"]
    publish(s, 0.3)
    s.sized("x", 3)  # due for grading at the next pass...
    assert Admit("w") in s.finished("run", 0.5)  # w goes in before its second is up,
    assert Admit("x") in s.finished("w", 0.6)  # and x before that next pass
    publish(s, 2.0)
    assert w.graded is None and x.graded is None
    s.finished("x", 3.0)
    assert not s.accuracy.samples


def test_a_waiter_that_leaves_before_grading_is_skipped() -> None:
    s = make()
    join(s, "w", 0.0)
    s.sized("w", 2)
    s.cancel("t-w", 0.1)
    join(s, "v", 0.2)
    publish(s, 1.5)  # w is due twice over (sized, and a second old) but gone
    assert "w" not in s.entries and s.entries["v"].graded is not None


def test_twenty_graded_admissions_switch_on_the_correction() -> None:
    s = make()
    now = 0.0
    for n in range(25):
        join(s, f"w{n}", now)
    now = 1.0
    publish(s, now)
    graded = {n: s.entries[f"w{n}"].graded for n in range(25)}
    assert all(g is not None for g in graded.values())
    # Every import takes twice the prior: the waiters waited about twice as long as told.
    running = "run"
    for n in range(25):
        now += 20.0
        s.finished(running, now)
        running = f"w{n}"
        assert len(s.accuracy.samples) == n + 1
    assert s.accuracy.summary()["samples"] == 25
    low, mid, high = s.accuracy.factors()
    assert 1.5 < low <= mid <= high < 2.5
