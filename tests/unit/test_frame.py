"""Estimates at one instant: one waiter or the whole line, exact at the head, fluid beyond."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.queue.core import Slots
from hub.queue.eta import Ewma, simulate
from hub.queue.frame import Frame

INF = float("inf")
SOURCES = ("chesscom", "lichess")


def priors() -> dict[str, Ewma]:
    return {
        "chesscom": Ewma(12.0, 1.5, overhead_s=2.0),
        "lichess": Ewma(30.0, 4.0, overhead_s=1.0),
    }


def line(
    slots: int,
    caps: dict[str, int],
    horizon: int,
    running: list[tuple[str, int, int]],
    waiting: list[tuple[str, int | None]],
    paused: tuple[str, ...] = (),
) -> Slots:
    """A line at t=10: `running` as (source, pages done, pages in all), then `waiting`.

    Running imports join first, while the caps let them in; the rest wait.
    """
    s = Slots(slots, caps, priors(), horizon=horizon)
    n = 0
    for source, done, total in running:
        n += 1
        s.join(f"t{n}", f"r{n}", source, f"runner{n}", 0.0, f"a{n}")
        assert f"r{n}" in s.running, "the test meant this one to run"
        for page in range(1, done + 1):
            s.progress(f"r{n}", page, total, page * 10, 1.0 + page)
    for source in paused:
        s.pause(source, "test", 5.0)
    for k, (source, size) in enumerate(waiting):
        n += 1
        s.join(f"t{n}", f"w{k}", source, f"waiter{k}", 6.0, f"a{n}")
        assert f"w{k}" in s.entries and f"w{k}" not in s.running, "the test meant this one to wait"
        if size is not None:
            s.sized(f"w{k}", size)
    return s


def exact(s: Slots, frame: Frame, now: float) -> list[float]:
    """The admission rule simulated over the whole line, with the frame's costs."""
    running = [(e.source, s.remaining(e, now)) for e in s.running.values()]
    costs = []
    for e in s.line.values():
        fixed, per_page, unsized = frame.unit[e.source]
        costs.append((e.source, unsized if e.size is None else fixed + per_page * e.size))
    return simulate(s.slots, s.lanes, running, costs, frozenset(s.paused)).starts


@st.composite
def lines(draw: st.DrawFn) -> Slots:
    slots = draw(st.integers(1, 4))
    caps = {src: draw(st.integers(1, slots)) for src in SOURCES}
    # Fill every slot a lane lets in, so that every one of `waiting` waits.
    running: list[tuple[str, int, int]] = []
    room = dict(caps)
    while len(running) < slots and any(room.values()):
        source = draw(st.sampled_from([src for src in SOURCES if room[src]]))
        room[source] -= 1
        total = draw(st.integers(1, 30))
        running.append((source, draw(st.integers(0, total)), total))
    waiting = draw(
        st.lists(
            st.tuples(st.sampled_from(SOURCES), st.none() | st.integers(0, 40)),
            max_size=25,
        )
    )
    horizon = draw(st.integers(1, 12))
    paused = draw(st.sampled_from([(), ("lichess",), ("chesscom",)]))
    return line(slots, caps, horizon, running, waiting, paused)


@settings(deadline=None, max_examples=200)
@given(lines(), st.floats(0.0, 5.0))
def test_one_waiter_equals_the_walk_and_the_head_is_exact(s: Slots, later: float) -> None:
    now = 10.0
    frame = s.frame(now)
    walked = list(frame.walk(s, 0, now))
    assert [e for e, _, _ in walked] == list(s.line.values())
    assert [position for _, position, _ in walked] == list(range(1, len(s.line) + 1))
    starts = exact(s, frame, now)
    for k, (entry, _, raw) in enumerate(walked):
        assert frame.wait(entry, now) == pytest.approx(raw, rel=1e-9, abs=1e-9)
        if k < s.horizon:
            assert raw == pytest.approx(starts[k], rel=1e-9, abs=1e-9)
        if entry.source in s.paused:
            assert raw == INF
        # Time counts down between passes, never below zero.
        assert frame.wait(entry, now + later) == pytest.approx(max(raw - later, 0.0), abs=1e-9)
    # A walk from any arrival on yields the rest of the same walk.
    for k, (entry, _, _) in enumerate(walked):
        rest = list(frame.walk(s, entry.seq, now))
        assert [(e, pos) for e, pos, _ in rest] == [(e, pos) for e, pos, _ in walked[k + 1 :]]
        assert [raw for *_, raw in rest] == pytest.approx([raw for *_, raw in walked[k + 1 :]])


@settings(deadline=None, max_examples=200)
@given(
    st.integers(1, 3),
    st.integers(1, 8),
    st.lists(st.integers(0, 20), min_size=0, max_size=3),
    st.lists(st.none() | st.integers(0, 40), min_size=1, max_size=30),
)
def test_beyond_the_horizon_one_lane(
    slots: int, horizon: int, progress: list[int], sizes: list[int | None]
) -> None:
    running = [("chesscom", min(done, 20), 20) for done in progress[:slots]]
    running += [("chesscom", 0, 20)] * (slots - len(running))
    s = line(slots, {"chesscom": slots, "lichess": 1}, horizon, running, [
        ("chesscom", size) for size in sizes
    ])  # fmt: skip
    now = 10.0
    frame = s.frame(now)
    raws = [raw for _, _, raw in frame.walk(s, 0, now)]
    # Along one lane, a later arrival never starts sooner, across the horizon's edge too.
    assert raws == sorted(raws)
    starts = exact(s, frame, now)
    costs = [frame._cost(e) for e in s.line.values()]
    slack = max([*costs, *(s.remaining(e, now) for e in s.running.values())])
    for k in range(horizon, len(raws)):
        # Greedy list scheduling starts a job no later than the average load, and that
        # average overshoots the least loaded slot by at most one job: the fluid estimate
        # is never early and late by less than the longest import.
        assert starts[k] - 1e-9 <= raws[k] <= starts[k] + slack + 1e-9
    if slots == 1:
        assert raws == pytest.approx(starts)  # one slot: the fluid bound is exact


def test_paused_source_waits_forever_and_takes_nothing_from_others() -> None:
    waiting: list[tuple[str, int | None]] = [
        ("lichess", 5),
        ("chesscom", 3),
        ("lichess", None),
        ("chesscom", None),
        ("chesscom", 10),
        ("lichess", 2),
        ("chesscom", 1),
        ("chesscom", None),
    ]
    running = [("chesscom", 1, 8), ("lichess", 2, 4)]
    caps = {"chesscom": 2, "lichess": 1}
    for horizon in range(1, len(waiting) + 2):
        paused = line(2, caps, horizon, running, waiting, paused=("lichess",))
        # The same line without the paused waiters, simulated as far as the same ones: the
        # horizon counts paused waiters, and the head is exact where the rest is fluid.
        exact_ones = sum(1 for source, _ in waiting[:horizon] if source == "chesscom")
        alone = line(2, caps, exact_ones, running, [w for w in waiting if w[0] == "chesscom"])
        now = 10.0
        with_lichess = {e.username: raw for e, _, raw in paused.frame(now).walk(paused, 0, now)}
        without = {e.username: raw for e, _, raw in alone.frame(now).walk(alone, 0, now)}
        for k, (source, _) in enumerate(waiting):
            if source == "lichess":
                assert with_lichess[f"waiter{k}"] == INF
        # Renumbered: waiterN of the chesscom-only line is the Nth chesscom waiter.
        chesscom = [k for k, (source, _) in enumerate(waiting) if source == "chesscom"]
        for n, k in enumerate(chesscom):
            assert with_lichess[f"waiter{k}"] == pytest.approx(without[f"waiter{n}"])
        estimates = paused.estimates(now)
        for k, (source, _) in enumerate(waiting):
            if source == "lichess":
                est = estimates[f"w{k}"]
                assert est.eta_s == est.low_s == est.high_s == INF


def test_unsized_waiters_count_as_the_average_sized_one() -> None:
    s = line(1, {"chesscom": 1, "lichess": 1}, 1, [("chesscom", 0, 4)], [
        ("chesscom", 4), ("chesscom", 8), ("chesscom", None), ("chesscom", None),
    ])  # fmt: skip
    frame = s.frame(10.0)
    fixed, per_page, unsized = frame.unit["chesscom"]
    assert unsized == pytest.approx(fixed + per_page * 6)  # (4 + 8) / 2 pages
