"""The position index against naive lists: ranks, per-lane work and a window that re-bases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.queue.index import Fenwick, LineIndex

LANES = ("chesscom", "lichess")
SIZES = st.none() | st.integers(0, 60)


@given(st.lists(st.integers(-50, 50), max_size=80), st.data())
def test_fenwick_prefix_sums_and_points(values: list[int], data: st.DataObject) -> None:
    capacity = len(values) + data.draw(st.integers(0, 5))
    added = Fenwick(capacity)
    for i, v in enumerate(values):
        added.add(i, v)
    built = Fenwick.build(values, capacity)
    padded = values + [0] * (capacity - len(values))
    for tree in (added, built):
        assert tree.points() == padded
        assert tree.prefix(-1) == 0
        for i in range(capacity):
            assert tree.prefix(i) == sum(padded[: i + 1])
        # Past the end, a prefix is the whole sum: the tree clamps, it does not fail.
        assert tree.prefix(capacity + 7) == sum(padded)


class Naive:
    """The index's answers, computed from a plain dict of who waits."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[str, int | None]] = {}

    def rank(self, seq: int) -> int:
        return sum(1 for s in self.waiting if s <= seq)

    def between(self, lane: str, after: int, upto: int) -> tuple[int, int, int]:
        rows = [size for s, (ln, size) in self.waiting.items() if ln == lane and after < s <= upto]
        sized = [size for size in rows if size is not None]
        return len(rows), len(sized), sum(sized)

    def totals(self, lane: str) -> tuple[int, int, int]:
        return self.between(lane, -(10**12), 10**12)


class IndexMachine(RuleBasedStateMachine):
    """Arrival numbers only grow, sometimes by far more than the window holds."""

    def __init__(self) -> None:
        super().__init__()
        self.index = LineIndex(LANES, capacity=16)  # small, so that re-bases are frequent
        self.naive = Naive()
        self.seq = 0

    @rule(gap=st.integers(1, 3) | st.integers(100, 1500), lane=st.sampled_from(LANES), size=SIZES)
    def add(self, gap: int, lane: str, size: int | None) -> None:
        self.seq += gap
        self.index.add(self.seq, lane, size)
        self.naive.waiting[self.seq] = (lane, size)

    @precondition(lambda self: self.naive.waiting)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.naive.waiting)))
        lane, size = self.naive.waiting.pop(seq)
        self.index.remove(seq, lane, size)

    @precondition(lambda self: self.naive.waiting)
    @rule(data=st.data(), size=SIZES)
    def resize(self, data: st.DataObject, size: int | None) -> None:
        seq = data.draw(st.sampled_from(sorted(self.naive.waiting)))
        lane, old = self.naive.waiting[seq]
        self.index.resize(seq, lane, old, size)
        self.naive.waiting[seq] = (lane, size)

    @rule(data=st.data())
    def between(self, data: st.DataObject) -> None:
        after = data.draw(st.integers(-5, self.seq + 5))
        upto = data.draw(st.integers(after, self.seq + 5))
        for lane in LANES:
            assert self.index.between(lane, after, upto) == self.naive.between(lane, after, upto)

    @invariant()
    def ranks_are_naive(self) -> None:
        assert len(self.index) == len(self.naive.waiting)
        for rank, seq in enumerate(sorted(self.naive.waiting), start=1):
            assert self.index.rank(seq) == rank
            assert self.index.rank(seq - 1) == rank - 1  # an arrival that left, or never was
        assert self.index.rank(self.seq + 10**6) == len(self.naive.waiting)

    @invariant()
    def totals_are_naive(self) -> None:
        for lane in LANES:
            assert self.index.totals(lane) == self.naive.totals(lane)

    @invariant()
    def window_holds_every_waiter(self) -> None:
        index = self.index
        for seq in self.naive.waiting:
            assert 0 <= seq - index.base < index.capacity


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_an_old_waiter_keeps_the_window_wide_then_lets_it_shrink() -> None:
    index = LineIndex(LANES)
    index.add(1, "lichess", 7)  # waits throughout: a paused source, say
    live = {1}
    # Arrivals run far past the first window; each leaves soon after it came.
    for seq in range(2, 60_000, 97):
        index.add(seq, "chesscom", seq % 5 or None)
        live.add(seq)
        if len(live) > 3:
            oldest_young = min(live - {1})
            index.remove(oldest_young, "chesscom", oldest_young % 5 or None)
            live.discard(oldest_young)
        assert index.base <= 1 and seq - index.base < index.capacity
        # Room to grow, but not without bound: at most four times the span it must cover.
        assert index.capacity <= max(1024, 4 * seq)
        assert [index.rank(s) for s in sorted(live)] == list(range(1, len(live) + 1))
    assert index.between("lichess", 0, 1) == (1, 1, 7)
    assert index.totals("lichess") == (1, 1, 7)
    young = sorted(live - {1})
    expected_pages = sum(s % 5 for s in young)
    expected_sized = sum(1 for s in young if s % 5)
    assert index.totals("chesscom") == (len(young), expected_sized, expected_pages)
    wide = index.capacity
    assert wide >= 60_000

    # The old waiter leaves; the next re-base fits the window to the young ones only.
    index.remove(1, "lichess", 7)
    seq = index.base + wide  # just outside the window
    index.add(seq, "chesscom", None)
    assert index.base == young[0] and index.capacity < wide
    assert [index.rank(s) for s in [*young, seq]] == list(range(1, len(young) + 2))
    assert index.totals("lichess") == (0, 0, 0)
    assert index.totals("chesscom") == (len(young) + 1, expected_sized, expected_pages)


def test_rebase_with_an_empty_line_starts_at_the_newcomer() -> None:
    index = LineIndex(LANES, capacity=4)
    for seq in range(1, 4):
        index.add(seq, "chesscom", 2)
    for seq in range(1, 4):
        index.remove(seq, "chesscom", 2)
    index.add(10_000_000, "lichess", None)
    assert index.base == 10_000_000 and index.capacity == 1024
    assert index.rank(10_000_000) == 1 and index.rank(9_999_999) == 0
    assert index.between("lichess", 9_999_999, 10_000_000) == (1, 0, 0)
    assert index.totals("chesscom") == (0, 0, 0)
