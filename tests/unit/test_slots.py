"""The sans-I/O slot manager: FIFO, caps, lanes, joining, release, estimates."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hub.queue.core import Admit, Drop, Left, LineChanged, Release, Slots, Stop, UnknownTicket
from hub.queue.eta import Ewma
from hub.queue.holds import BREAKER, Pause


def make(slots: int = 2, chesscom: int = 2, lichess: int = 1, grace: float = 60.0) -> Slots:
    priors = {"chesscom": Ewma(10.0, 1.0), "lichess": Ewma(10.0, 1.0)}
    return Slots(slots, {"chesscom": chesscom, "lichess": lichess}, priors, grace)


def admitted(decisions: Sequence[object]) -> list[str]:
    return [d.import_id for d in decisions if isinstance(d, Admit)]


def join(s: Slots, n: int, source: str = "chesscom", now: float = 0.0) -> Sequence[object]:
    _, joined, decisions = s.join(f"t{n}", f"i{n}", source, f"player{n}", now, f"a{n}")
    assert not joined
    return decisions


def test_fifo_order_and_cap() -> None:
    s = make(slots=2, chesscom=5)
    order = []
    for n in range(10):
        order += admitted(join(s, n))
    assert order == ["i0", "i1"]
    assert len(s.running) == 2
    for n in range(10):
        order += admitted(s.finished(f"i{n}", float(n + 1)))
        assert len(s.running) <= 2
    assert order == [f"i{n}" for n in range(10)]


def test_positions_are_arrival_order() -> None:
    s = make(slots=1, chesscom=1)
    for n in range(4):
        join(s, n)
    est = s.estimates(0.0)
    assert [est[f"i{n}"].position for n in (1, 2, 3)] == [1, 2, 3]


def test_lane_cap_with_work_conservation() -> None:
    s = make(slots=3, chesscom=2, lichess=1)
    assert admitted(join(s, 0, "lichess")) == ["i0"]
    assert admitted(join(s, 1, "lichess")) == []  # lichess lane full
    assert admitted(join(s, 2, "chesscom")) == ["i2"]  # overtakes i1: other upstream, lane full
    assert admitted(join(s, 3, "chesscom")) == ["i3"]
    assert admitted(join(s, 4, "chesscom")) == []  # global cap
    # A chesscom slot frees: i1 is older than i4 but its lane is still full.
    assert admitted(s.finished("i2", 1.0)) == ["i4"]
    # The lichess import ends: i1 is next and now fits.
    assert admitted(s.finished("i0", 2.0)) == ["i1"]


def test_joining_an_existing_import() -> None:
    s = make(slots=1)
    join(s, 0)
    entry, joined, decisions = s.join("t-other", "ignored", "chesscom", "PLAYER0", 1.0)
    assert joined and entry.import_id == "i0" and decisions == []
    assert entry.tickets == {"t0", "t-other"}
    # A joiner's cancel only lets go of the joiner.
    assert s.cancel("t-other", 2.0) == [
        Left("t-other", "i0", "chesscom", "player0"),
        Release("t-other"),
    ]
    assert "i0" in s.running


def test_same_name_on_another_source_is_another_import() -> None:
    s = make()
    s.join("a", "i-a", "chesscom", "bob", 0.0)
    _, joined, _ = s.join("b", "i-b", "lichess", "bob", 0.0)
    assert not joined


@pytest.mark.parametrize("ok", [True, False], ids=["success", "failure"])
def test_release_on_finish(ok: bool) -> None:
    s = make(slots=1)
    join(s, 0)
    join(s, 1)
    decisions = s.finished("i0", 5.0, ok=ok)
    assert Release("t0") in decisions and admitted(decisions) == ["i1"]
    assert "t0" not in s.tickets and "i0" not in s.entries


def test_release_on_cancel_of_running_import() -> None:
    s = make(slots=1)
    join(s, 0)
    join(s, 1)
    assert s.cancel("t0", 1.0) == [
        Left("t0", "i0", "chesscom", "player0"),
        Release("t0"),
        Stop("i0"),
    ]
    assert "i0" in s.running  # the slot is held until the import reaches a page boundary
    assert admitted(s.finished("i0", 2.0, ok=False)) == ["i1"]


def test_release_on_cancel_while_waiting() -> None:
    s = make(slots=1)
    join(s, 0)
    join(s, 1)
    decisions = s.cancel("t1", 1.0)
    assert any(isinstance(d, Drop) and d.reason == "cancelled" for d in decisions)
    assert not s.line and "t1" not in s.tickets


def test_release_on_crash_path_is_the_same_event() -> None:
    # A crash inside an import ends in `finished(ok=False)` from the driver's finally.
    s = make(slots=1)
    join(s, 0)
    s.finished("i0", 1.0, ok=False)
    assert s.free == 1 and not s.entries
    assert s.ewma["chesscom"].samples == 0  # a crash does not teach the estimate


def test_unknown_ticket() -> None:
    s = make()
    with pytest.raises(UnknownTicket):
        s.cancel("nope", 0.0)
    with pytest.raises(UnknownTicket):
        s.attach("nope")


def test_grace_keeps_place_then_abandons() -> None:
    s = make(slots=1, grace=60.0)
    join(s, 0)
    join(s, 1)
    join(s, 2)
    s.detach("t1", 10.0)
    assert s.tick(69.0) == []
    s.attach("t1")  # resumed in time: same place
    assert s.estimates(70.0)["i1"].position == 1
    s.detach("t1", 80.0)
    decisions = s.tick(140.0)
    assert any(isinstance(d, Drop) and d.reason == "abandoned" for d in decisions)
    assert s.estimates(140.0)["i2"].position == 1


def test_running_import_survives_its_watchers() -> None:
    s = make(slots=1, grace=1.0)
    join(s, 0)
    s.detach("t0", 0.0)
    s.tick(5.0)
    assert "i0" in s.running


def test_eta_for_a_known_schedule() -> None:
    # Two slots, every import takes 10 s by the prior; two running since t=0.
    s = make(slots=2, chesscom=2)
    for n in range(6):
        join(s, n, now=0.0)
    est = s.estimates(4.0)
    # Running ones end at 10 s from t=0, so 6 s from now; then pairs every 10 s.
    assert [round(est[f"i{n}"].eta_s, 6) for n in range(2, 6)] == [6.0, 6.0, 16.0, 16.0]


def test_eta_uses_progress_of_running_imports() -> None:
    s = make(slots=1, chesscom=1)
    join(s, 0, now=0.0)
    join(s, 1, now=0.0)
    s.progress("i0", 1, 10, 0, 2.0)  # the first page carries the start-up
    s.progress("i0", 2, 10, 0, 4.0)  # then 2 s a page; the learned pace is 1 s a page
    # Own pace (2 s) weighs (2-1)/(2+1): 4/3 s a page for the 8 pages left.
    assert s.estimates(4.0)["i1"].eta_s == pytest.approx(8 * 4 / 3)


def test_estimates_use_known_sizes() -> None:
    s = make(slots=1, chesscom=1)
    join(s, 0)
    join(s, 1)
    join(s, 2)
    s.sized("i0", 5)  # the running one
    s.sized("i1", 3)
    est = s.estimates(0.0)
    assert est["i2"].eta_s == pytest.approx(5 + 3)


def test_eta_uses_probed_size_and_learns() -> None:
    s = make(slots=1, chesscom=1)
    join(s, 0, now=0.0)
    join(s, 1, now=0.0)
    join(s, 2, now=0.0)
    s.sized("i1", 30)  # 30 pages at the prior 1 s a page
    est = s.estimates(0.0)
    assert est["i2"].eta_s == pytest.approx(10.0 + 30.0)
    s.finished("i0", 20.0)  # took 20 s, not the 10 s prior
    assert s.ewma["chesscom"].duration_s > 10.0


def test_lichess_lane_estimate_waits_for_its_lane() -> None:
    s = make(slots=3, chesscom=2, lichess=1)
    join(s, 0, "lichess")
    join(s, 1, "lichess")
    assert s.estimates(0.0)["i1"].eta_s == pytest.approx(10.0)


def test_a_stopping_import_takes_no_new_followers() -> None:
    s = make(slots=1)
    join(s, 0)
    assert Stop("i0") in s.cancel("t0", 1.0)  # its only follower left: it stops
    entry, joined, _ = s.join("t-late", "i-late", "chesscom", "player0", 2.0, "a-late")
    assert not joined and entry.import_id == "i-late" and "i-late" in s.line
    # The stopped import's end frees the slot for the new one, and the key stays the new one's.
    assert admitted(s.finished("i0", 3.0, ok=False)) == ["i-late"]
    assert s.by_key[("chesscom", "player0")] == "i-late"


def test_each_holder_holds_its_own_pause() -> None:
    s = make(slots=2)
    s.pause("chesscom", "maintenance", 1.0)
    s.pause("chesscom", "chess.com is not answering", 2.0, by=BREAKER)
    assert admitted(join(s, 0)) == []
    assert s.paused["chesscom"].reason == "maintenance"  # the oldest hold is shown
    assert admitted(s.resume("chesscom", 3.0)) == []  # the breaker still holds it
    assert s.paused["chesscom"].reason == "chess.com is not answering"
    assert admitted(s.resume("chesscom", 4.0, by=BREAKER)) == ["i0"]
    assert s.paused == {}


def test_pausing_again_renews_and_keeps_since() -> None:
    s = make()
    s.pause(None, "first", 1.0, since=1000.0)
    s.pause("lichess", "second", 5.0, since=2000.0)
    assert s.paused["chesscom"] == Pause("first", 1000.0)
    assert s.paused["lichess"] == Pause("second", 1000.0)
    s.resume(None, 6.0)
    assert s.paused == {} and list(s.holds) == []


def test_a_pause_with_a_deadline_lapses_unless_renewed() -> None:
    s = make(slots=1)
    s.pause("chesscom", "down", 0.0, by=BREAKER, until=10.0)
    join(s, 0)
    assert s.tick(9.0) == []
    s.pause("chesscom", "down", 9.0, by=BREAKER, until=20.0)  # a failed probe renews it
    assert admitted(s.tick(15.0)) == []
    assert admitted(s.tick(20.0)) == ["i0"]
    assert s.paused == {}


def test_draining_admits_nothing_and_tells_nobody() -> None:
    s = make(slots=1)
    join(s, 0)
    s.drain(1.0)
    assert admitted(join(s, 1)) == []
    assert admitted(s.finished("i0", 2.0)) == []  # the slot frees, nothing starts here
    assert s.paused == {} and s.free == 1
    assert s.estimates(2.0)["i1"].position == 1
    assert admitted(s.undrain(3.0)) == ["i1"]


def test_requeue_sends_an_import_back_to_the_head_of_its_lane() -> None:
    s = make(slots=2, chesscom=2, lichess=1)
    join(s, 0)
    join(s, 1)
    join(s, 2)
    join(s, 3, "lichess")
    assert set(s.running) == {"i0", "i1"}
    s.progress("i0", 3, 10, 30, 1.0)
    s.pause("chesscom", "chess.com is not answering", 2.0, by=BREAKER)
    decisions = s.requeue("i0", 2.0)
    # Its slot goes to the other upstream at once.
    assert admitted(decisions) == ["i3"] and LineChanged() in decisions
    entry = s.entries["i0"]
    assert entry.state == "waiting" and entry.size == 7  # the pages left
    est = s.estimates(2.0)
    assert est["i0"].position == 1 and est["i2"].position == 2  # i2 moved back one place
    assert s.take_moved() == entry.seq - 1  # the pass republishes from i0 on
    s.resume("chesscom", 3.0, by=BREAKER)
    assert admitted(s.finished("i1", 4.0)) == ["i0"]  # first admitted again
    assert entry.tickets == {"t0"}


def test_requeue_of_an_import_everyone_cancelled_ends_it() -> None:
    s = make(slots=1)
    join(s, 0)
    join(s, 1)
    s.cancel("t0", 1.0)
    decisions = s.requeue("i0", 2.0)
    assert admitted(decisions) == ["i1"] and "i0" not in s.entries
    assert s.requeue("i0", 3.0) == [] and s.requeue("nope", 3.0) == []


def test_controls_are_saved_and_restored() -> None:
    s = make(slots=2)
    s.pause("lichess", "maintenance", 1.0, since=1000.0)
    assert s.controls().slots is None  # never resized: the configured caps hold
    s.resize(4, {"lichess": 2}, 0.0)
    saved = s.controls()
    other = make(slots=2)
    other.restore(saved)
    assert other.slots == 4 and other.lanes == {"chesscom": 2, "lichess": 2}
    assert other.paused == {"lichess": Pause("maintenance", 1000.0)}
    assert admitted(join(other, 0, "lichess")) == []
