"""The breaker's states: failures in a row open it, one probe an interval, an answer closes it."""

from __future__ import annotations

from hub.fetch.breaker import Breaker, Closed, Opened, Turn


def breaker() -> Breaker:
    return Breaker(["chesscom", "lichess"], failures=3, probe_s=30.0)


def test_failures_in_a_row_open_it() -> None:
    b = breaker()
    assert b.failed("chesscom", 0.0, Turn.GO) == []
    assert b.failed("chesscom", 1.0, Turn.GO) == []
    assert b.answered("chesscom") == []  # an answer, a 404 as much as a 200, resets the count
    assert b.failed("chesscom", 2.0, Turn.GO) == []
    assert b.failed("chesscom", 3.0, Turn.GO) == []
    assert b.failed("chesscom", 4.0, Turn.GO) == [Opened("chesscom")]
    assert b.is_open("chesscom") and not b.is_open("lichess")
    assert b.openings("chesscom") == 1
    assert b.attempt("lichess", 5.0) is Turn.GO  # one upstream's breaker is its own


def test_a_429_neither_counts_nor_resets() -> None:
    b = breaker()
    b.failed("lichess", 0.0, Turn.GO)
    b.failed("lichess", 0.0, Turn.GO)
    b.settled("lichess", Turn.GO)  # a 429
    assert b.failed("lichess", 0.0, Turn.GO) == [Opened("lichess")]


def test_one_probe_an_interval_while_open() -> None:
    b = breaker()
    for _ in range(3):
        b.failed("chesscom", 10.0, Turn.GO)
    assert b.next_probe("chesscom") == 40.0
    assert b.attempt("chesscom", 39.9) is Turn.REFUSE
    assert b.attempt("chesscom", 40.0) is Turn.PROBE
    assert b.attempt("chesscom", 40.0) is Turn.REFUSE  # one at a time
    # A request sent before the breaker opened fails late: nothing new.
    assert b.failed("chesscom", 41.0, Turn.GO) == []
    assert b.failed("chesscom", 41.0, Turn.PROBE) == [Opened("chesscom", again=True)]
    assert b.attempt("chesscom", 69.0) is Turn.REFUSE
    assert b.attempt("chesscom", 70.0) is Turn.PROBE
    assert b.answered("chesscom") == [Closed("chesscom")]
    assert b.attempt("chesscom", 70.0) is Turn.GO and b.next_probe("chesscom") is None
    assert b.openings("chesscom") == 1


def test_a_probe_that_ends_without_a_verdict_frees_its_turn() -> None:
    b = breaker()
    for _ in range(3):
        b.failed("chesscom", 0.0, Turn.GO)
    assert b.attempt("chesscom", 30.0) is Turn.PROBE
    b.settled("chesscom", Turn.PROBE)  # cancelled, or answered 429
    assert b.is_open("chesscom")
    assert b.attempt("chesscom", 59.0) is Turn.REFUSE  # the interval still holds
    assert b.attempt("chesscom", 60.0) is Turn.PROBE


def test_it_opens_again_after_closing() -> None:
    b = breaker()
    for _ in range(3):
        b.failed("chesscom", 0.0, Turn.GO)
    b.answered("chesscom")
    assert b.failed("chesscom", 1.0, Turn.GO) == []  # the count starts over
    b.failed("chesscom", 1.0, Turn.GO)
    assert b.failed("chesscom", 1.0, Turn.GO) == [Opened("chesscom")]
    assert b.openings("chesscom") == 2
