"""Order statistics over the line: rank and expected work of waiting imports in O(log n)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_MIN_CAPACITY = 1024


class Fenwick:
    """Prefix sums over positions 0..capacity-1, with point updates, both in O(log n)."""

    __slots__ = ("tree",)

    def __init__(self, capacity: int) -> None:
        self.tree = [0] * (capacity + 1)

    def add(self, i: int, delta: int) -> None:
        tree = self.tree
        n = len(tree)
        i += 1
        while i < n:
            tree[i] += delta
            i += i & -i

    def prefix(self, i: int) -> int:
        """Sum of positions 0..i (inclusive); i may be -1."""
        tree = self.tree
        i = min(i + 1, len(tree) - 1)
        total = 0
        while i > 0:
            total += tree[i]
            i -= i & -i
        return total

    def points(self) -> list[int]:
        """The value at every position, in O(n)."""
        values = self.tree[:]
        n = len(values)
        for i in range(n - 1, 0, -1):
            j = i + (i & -i)
            if j < n:
                values[j] -= values[i]
        return values[1:]

    @classmethod
    def build(cls, values: list[int], capacity: int) -> Fenwick:
        """A tree holding `values` at positions 0..len(values)-1, in O(capacity)."""
        made = cls(capacity)
        tree = made.tree
        tree[1 : len(values) + 1] = values
        n = len(tree)
        for i in range(1, n):
            j = i + (i & -i)
            if j < n:
                tree[j] += tree[i]
        return made


class LineIndex:
    """Waiting imports keyed by arrival number (`seq`), per lane.

    Three columns per lane: how many wait, how many of them are sized, and
    their pages. A position is a count of the waiters that arrived no later;
    the expected work between two arrivals is a difference of prefix sums.
    Arrival numbers only grow, so the index keeps a window [base, base +
    capacity) and re-bases in O(capacity) when the newest falls outside it.
    """

    COLUMNS = ("count", "sized", "pages")

    def __init__(self, lanes: Iterable[str], capacity: int = _MIN_CAPACITY) -> None:
        self.lanes = list(lanes)
        self.base = 1
        self.capacity = capacity
        self.total = 0
        self._all = Fenwick(capacity)
        self._cols: dict[tuple[str, str], Fenwick] = {
            (lane, col): Fenwick(capacity) for lane in self.lanes for col in self.COLUMNS
        }

    def __len__(self) -> int:
        return self.total

    # -- updates ----------------------------------------------------------

    def add(self, seq: int, lane: str, pages: int | None) -> None:
        if not 0 <= seq - self.base < self.capacity:
            self._rebase(seq)
        i = seq - self.base
        self._all.add(i, 1)
        self._cols[lane, "count"].add(i, 1)
        if pages is not None:
            self._cols[lane, "sized"].add(i, 1)
            self._cols[lane, "pages"].add(i, pages)
        self.total += 1

    def remove(self, seq: int, lane: str, pages: int | None) -> None:
        i = seq - self.base
        self._all.add(i, -1)
        self._cols[lane, "count"].add(i, -1)
        if pages is not None:
            self._cols[lane, "sized"].add(i, -1)
            self._cols[lane, "pages"].add(i, -pages)
        self.total -= 1

    def resize(self, seq: int, lane: str, old: int | None, new: int | None) -> None:
        """A waiter's size became known or changed."""
        i = seq - self.base
        if old is not None:
            self._cols[lane, "sized"].add(i, -1)
            self._cols[lane, "pages"].add(i, -old)
        if new is not None:
            self._cols[lane, "sized"].add(i, 1)
            self._cols[lane, "pages"].add(i, new)

    # -- queries ----------------------------------------------------------

    def rank(self, seq: int) -> int:
        """How many waiters arrived no later than `seq` (its 1-based position if it waits)."""
        return self._all.prefix(seq - self.base)

    def between(self, lane: str, after: int, upto: int) -> tuple[int, int, int]:
        """(waiting, sized, pages) of `lane` among arrivals in (after, upto]."""
        lo, hi = after - self.base, upto - self.base
        return (
            self._cols[lane, "count"].prefix(hi) - self._cols[lane, "count"].prefix(lo),
            self._cols[lane, "sized"].prefix(hi) - self._cols[lane, "sized"].prefix(lo),
            self._cols[lane, "pages"].prefix(hi) - self._cols[lane, "pages"].prefix(lo),
        )

    def totals(self, lane: str) -> tuple[int, int, int]:
        """(waiting, sized, pages) of the whole lane."""
        last = self.capacity - 1
        return (
            self._cols[lane, "count"].prefix(last),
            self._cols[lane, "sized"].prefix(last),
            self._cols[lane, "pages"].prefix(last),
        )

    # -- growth -----------------------------------------------------------

    def _rebase(self, seq: int) -> None:
        """Move the window so that it holds every waiter and `seq`, with room to grow."""
        counts = self._all.points()
        live = [i for i in (_first(counts), _last(counts)) if i is not None]
        low = min([seq, *(self.base + i for i in live)])
        high = max([seq, *(self.base + i for i in live)])
        capacity = max(_MIN_CAPACITY, 1 << (2 * (high - low + 1) - 1).bit_length())
        shift = low - self.base

        def moved(tree: Fenwick) -> Fenwick:
            values = tree.points()
            values = values[shift:] if shift >= 0 else [0] * -shift + values
            return Fenwick.build(values[:capacity], capacity)

        self._all = moved(self._all)
        self._cols = {key: moved(tree) for key, tree in self._cols.items()}
        self.base, self.capacity = low, capacity


def _first(values: list[int]) -> int | None:
    return next((i for i, n in enumerate(values) if n), None)


def _last(values: list[int]) -> int | None:
    return next((i for i in range(len(values) - 1, -1, -1) if values[i]), None)


class Arrivals(Generic[T]):
    """Waiting items by arrival number, in order: a list with holes, trimmed from the front.

    Arrival numbers are consecutive, so an item's place is its number minus the
    first one kept: adding, removing and starting a walk anywhere are O(1), and
    a line that only ever loses its head never shifts a list.
    """

    __slots__ = ("_base", "_head", "_items")

    def __init__(self) -> None:
        self._items: list[T | None] = []
        self._base = 0  # arrival number of _items[0]
        self._head = 0  # index of the first place that may hold an item

    def add(self, seq: int, item: T) -> None:
        if not self._items:
            self._base, self._head = seq, 0
        elif seq < self._base + self._head:
            # An arrival older than the head (a line read back, an import sent back).
            self._compact()
            self._items[:0] = [None] * (self._base - seq)
            self._base = seq
        i = seq - self._base
        if i >= len(self._items):
            self._items.extend([None] * (i - len(self._items) + 1))
        self._items[i] = item

    def remove(self, seq: int) -> None:
        items = self._items
        i = seq - self._base
        if 0 <= i < len(items):
            items[i] = None
        while self._head < len(items) and items[self._head] is None:
            self._head += 1
        if self._head == len(items):
            items.clear()
            self._head = 0
        elif self._head > 1024 and self._head * 2 > len(items):
            self._compact()

    def after(self, seq: int) -> Iterator[T]:
        """The items that arrived after `seq`, in order."""
        items = self._items
        for i in range(max(seq + 1 - self._base, self._head), len(items)):
            item = items[i]
            if item is not None:
                yield item

    def last(self) -> T | None:
        for i in range(len(self._items) - 1, self._head - 1, -1):
            if self._items[i] is not None:
                return self._items[i]
        return None

    def clear(self) -> None:
        self._items.clear()
        self._head = 0

    def _compact(self) -> None:
        del self._items[: self._head]
        self._base += self._head
        self._head = 0
