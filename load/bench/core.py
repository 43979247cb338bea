"""`python -m load.bench.core`: events a second in the sans-I/O slot manager, deep line vs short.

The core (`hub.queue.core.Slots`) is driven with no I/O and a fake clock: a line of W waiting
imports (two sources, alternating) behind 2 slots, kept at W while, in each cycle, two imports
join at the tail, a running import finishes (which admits the oldest waiting import that fits)
and a waiting import chosen at random leaves (cancel). Events a second at W = 50,000 against
W = 1,000 is the figure; the rounds alternate between the two sizes so drift hits both.

Beside it, the time of one estimates pass over the whole line at each size, and the event rate
when a pass follows every event (what a driver that republishes after each event pays).

The core's API is touched only by the small functions under "the core's API" below.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from pathlib import Path
from typing import Any

from hub.queue.core import Admit, Decision, Limits, Slots
from hub.queue.eta import Ewma
from load.bench.common import RESULTS, show, write
from load.stats import ratio

SOURCES = ("chesscom", "lichess")
SLOTS, LANES = 2, {"chesscom": 2, "lichess": 1}
TARGET = 0.5

# -- the core's API -------------------------------------------------------------------


def make_core() -> Slots:
    priors = {"chesscom": Ewma(20.0, 1.0), "lichess": Ewma(60.0, 5.0)}
    # Every join from its own address and no cap on the line: the rules' cost, not their caps.
    return Slots(SLOTS, LANES, priors, limits=Limits(tickets_per_address=1, queue=10**9))


def join(core: Slots, n: int, now: float) -> list[Decision]:
    _, _, decisions = core.join(
        f"t{n}", f"i{n}", SOURCES[n % 2], f"player{n}", now, address=f"a{n}"
    )
    return decisions


def leave(core: Slots, n: int, now: float) -> list[Decision]:
    return core.cancel(f"t{n}", now)


def finish(core: Slots, n: int, now: float) -> list[Decision]:
    return core.finished(f"i{n}", now)


def estimates_pass(core: Slots, now: float) -> int:
    """What every publishing pass computes whatever the line's length: the frame."""
    frame = core.frame(now)
    core.grade(frame, now)
    return len(frame.starts)


def admitted(decisions: list[Decision]) -> list[int]:
    """Numbers of the imports these decisions start."""
    return [int(d.import_id[1:]) for d in decisions if isinstance(d, Admit)]


# -- the driver -----------------------------------------------------------------------


class Line:
    """The benchmark's own view of who waits and who runs, to pick events that are valid."""

    def __init__(self, waiting: int, seed: int) -> None:
        self.core = make_core()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.next = 0
        self.waiting: list[int] = []  # numbers; `where` indexes them for O(1) removal
        self.where: dict[int, int] = {}
        self.running: list[int] = []
        for _ in range(waiting + SLOTS):
            self._apply(join(self.core, self._number(), self._tick()), joined=self.next - 1)

    def _tick(self) -> float:
        self.now += 0.001
        return self.now

    def _number(self) -> int:
        self.next += 1
        return self.next - 1

    def _apply(self, decisions: list[Decision], joined: int | None = None) -> None:
        if joined is not None:
            self.where[joined] = len(self.waiting)
            self.waiting.append(joined)
        for n in admitted(decisions):
            self._unwait(n)
            self.running.append(n)

    def _unwait(self, n: int) -> None:
        i = self.where.pop(n)
        last = self.waiting.pop()
        if last != n:
            self.waiting[i] = last
            self.where[last] = i

    def cycle(self, with_pass: bool) -> int:
        """Two joins, one finish (and the admission it makes), one leave: 4 events."""
        for _ in range(2):
            n = self._number()
            self._apply(join(self.core, n, self._tick()), joined=n)
            if with_pass:
                estimates_pass(self.core, self.now)
        done = self.running.pop(0)
        self._apply(finish(self.core, done, self._tick()))
        if with_pass:
            estimates_pass(self.core, self.now)
        gone = self.waiting[self.rng.randrange(len(self.waiting))]
        self._unwait(gone)
        self._apply(leave(self.core, gone, self._tick()))
        if with_pass:
            estimates_pass(self.core, self.now)
        return 4


def events_per_s(line: Line, seconds: float, with_pass: bool, most: int) -> float:
    gc.collect()
    events = 0
    began = time.perf_counter()
    for _ in range(most):
        events += line.cycle(with_pass)
        if time.perf_counter() - began >= seconds:
            break
    return events / (time.perf_counter() - began)


def pass_ms(line: Line, seconds: float) -> float:
    gc.collect()
    times = []
    began = time.perf_counter()
    for _ in range(1000):
        t = time.perf_counter()
        estimates_pass(line.core, line.now)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - began >= seconds and len(times) >= 3:
            break
    return statistics.median(times) * 1000


def bench(small: int, deep: int, rounds: int, seconds: float) -> dict[str, Any]:
    built: dict[int, float] = {}
    lines: dict[int, Line] = {}
    for size in (small, deep):
        began = time.perf_counter()
        lines[size] = Line(size, seed=size)
        built[size] = time.perf_counter() - began
    rates: dict[int, list[float]] = {small: [], deep: []}
    passes: dict[int, list[float]] = {small: [], deep: []}
    with_pass: dict[int, list[float]] = {small: [], deep: []}
    for _ in range(rounds):
        for size in (small, deep):
            line = lines[size]
            rates[size].append(events_per_s(line, seconds, False, 10**7))
            passes[size].append(pass_ms(line, seconds))
            with_pass[size].append(events_per_s(line, seconds, True, 10**6))
            assert len(line.waiting) == size, "the line must keep its length"
    measured = {"events": rates, "pass": passes, "with_pass": with_pass}
    med = {
        name: {size: statistics.median(v) for size, v in d.items()} for name, d in measured.items()
    }
    return {
        "waiting": {"small": small, "deep": deep},
        "slots": SLOTS,
        "lanes": LANES,
        "rounds": rounds,
        "seconds_per_measure": seconds,
        "build_s": {str(k): round(v, 3) for k, v in built.items()},
        "events_per_s": {str(k): round(v) for k, v in med["events"].items()},
        "events_per_s_by_round": {str(k): [round(x) for x in v] for k, v in rates.items()},
        "pass_ms": {str(k): round(v, 3) for k, v in med["pass"].items()},
        "events_per_s_with_a_pass_each": {str(k): round(v, 1) for k, v in med["with_pass"].items()},
        "ratio_events": ratio(med["events"][deep], med["events"][small]),
        "ratio_pass_time": ratio(med["pass"][deep], med["pass"][small]),
        "ratio_events_with_a_pass_each": ratio(med["with_pass"][deep], med["with_pass"][small]),
        "target": f"ratio_events >= {TARGET}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.core", description=__doc__)
    parser.add_argument("--small", type=int, default=1000, help="short line (default 1000)")
    parser.add_argument("--deep", type=int, default=50_000, help="deep line (default 50000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="per measure (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if min(args.small, args.deep) < 10 or args.rounds < 1 or args.seconds <= 0:
        raise SystemExit("--small and --deep must be at least 10, --rounds and --seconds > 0")
    result = bench(args.small, args.deep, args.rounds, args.seconds)
    small, deep = str(args.small), str(args.deep)
    rows = [
        [args.small, result["events_per_s"][small], result["pass_ms"][small],
         result["events_per_s_with_a_pass_each"][small]],
        [args.deep, result["events_per_s"][deep], result["pass_ms"][deep],
         result["events_per_s_with_a_pass_each"][deep]],
        ["deep / short", result["ratio_events"], result["ratio_pass_time"],
         result["ratio_events_with_a_pass_each"]],
    ]  # fmt: skip
    show(
        f"sans-I/O core: join + admit + leave (target events deep / short >= {TARGET})",
        ["waiting", "events/s", "pass ms", "events/s, pass after each"],
        rows,
    )
    print(write("core", result, args.out))


if __name__ == "__main__":
    main()
