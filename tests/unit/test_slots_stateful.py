"""Under any sequence of events the slot rules hold and positions equal naive ranks."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.queue.core import Admit, Decision, Limits, Slots, UnknownTicket
from hub.queue.eta import Ewma
from hub.queue.holds import BREAKER, OPERATOR

SOURCES = ("chesscom", "lichess")
PLAYERS = st.sampled_from(["a", "b", "c", "d", "e", "f", "A", "B"])
ADDRESSES = st.sampled_from(["1.1.1.1", "2.2.2.2", "3.3.3.3"])


class SlotMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.n = 0
        self.slots = Slots(
            3,
            {"chesscom": 2, "lichess": 1},
            {s: Ewma(10.0, 1.0) for s in SOURCES},
            grace_s=5.0,
            limits=Limits(tickets_per_address=4, queue=6),
            horizon=3,  # small, so that passes go beyond it
        )
        self.last_position: dict[str, int] = {}
        self.sent_back: int | None = None  # lowest arrival requeued since the last pass
        self.addresses: dict[str, str] = {}  # live ticket -> address

    def _apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Admit):
                entry = self.slots.entries[d.import_id]
                # Nothing of the same upstream that arrived earlier may still wait.
                for other in self.slots.line.values():
                    assert not (other.source == entry.source and other.seq < entry.seq)
                assert entry.source not in self.slots.paused
                assert not self.slots.draining
                assert len(self.slots.running) <= self.slots.slots
        for ticket in list(self.addresses):
            if ticket not in self.slots.tickets:
                del self.addresses[ticket]

    @rule(source=st.sampled_from(SOURCES), player=PLAYERS, address=ADDRESSES, dt=st.floats(0, 3))
    def join(self, source: str, player: str, address: str, dt: float) -> None:
        self.now += dt
        self.n += 1
        held = sum(1 for a in self.addresses.values() if a == address)
        waiting = len(self.slots.line)
        known = (source, player.lower()) in self.slots.by_key
        try:
            _, _, decisions = self.slots.join(
                f"t{self.n}", f"i{self.n}", source, player, self.now, address
            )
        except Exception as exc:
            assert getattr(exc, "code", None) in ("too_many_imports", "queue_full")
            assert held >= 4 or (not known and waiting >= 6)
            return
        assert held < 4 and (known or waiting < 6)
        self.addresses[f"t{self.n}"] = address
        self._apply(decisions)

    @precondition(lambda self: self.slots.running)
    @rule(data=st.data(), ok=st.booleans())
    def finish(self, data: st.DataObject, ok: bool) -> None:
        import_id = data.draw(st.sampled_from(sorted(self.slots.running)))
        self.now += 1
        self._apply(self.slots.finished(import_id, self.now, ok))

    @precondition(lambda self: self.slots.tickets)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.slots.tickets)))
        self._apply(self.slots.cancel(ticket, self.now))

    @precondition(lambda self: self.slots.tickets)
    @rule(data=st.data(), dt=st.floats(0, 10), again=st.booleans())
    def leave(self, data: st.DataObject, dt: float, again: bool) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.slots.tickets)))
        self.slots.detach(ticket, self.now)
        if again:  # a second close or a late resume changes nothing about the grace
            self.slots.detach(ticket, self.now + dt / 2)
        self.now += dt
        self._apply(self.slots.tick(self.now))

    @precondition(lambda self: self.slots.tickets)
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.slots.tickets)))
        self.slots.attach(ticket)
        self.slots.attach(ticket)

    @precondition(lambda self: self.slots.line)
    @rule(data=st.data(), pages=st.integers(1, 50))
    def sized(self, data: st.DataObject, pages: int) -> None:
        import_id = data.draw(st.sampled_from(sorted(self.slots.line)))
        self._apply(self.slots.sized(import_id, pages))

    @rule(
        source=st.sampled_from([*SOURCES, None]),
        on=st.booleans(),
        by=st.sampled_from([OPERATOR, BREAKER]),
        lapse=st.none() | st.floats(0, 10),
    )
    def pause(self, source: str | None, on: bool, by: str, lapse: float | None) -> None:
        if on:
            until = None if lapse is None else self.now + lapse
            self._apply(self.slots.pause(source, "test", self.now, by=by, until=until))
        else:
            self._apply(self.slots.resume(source, self.now, by=by))

    @rule(on=st.booleans())
    def drain(self, on: bool) -> None:
        self._apply(self.slots.drain(self.now) if on else self.slots.undrain(self.now))

    @precondition(lambda self: self.slots.running)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        import_id = data.draw(st.sampled_from(sorted(self.slots.running)))
        entry = self.slots.entries[import_id]
        if not entry.stopping:
            seq = entry.seq
            self.sent_back = seq if self.sent_back is None else min(self.sent_back, seq)
        self._apply(self.slots.requeue(import_id, self.now))
        if import_id in self.slots.line:
            # Ahead of every waiter of its upstream that arrived after it.
            lane = [e for e in self.slots.lines[entry.source] if e.import_id in self.slots.line]
            assert all(e.seq < entry.seq for e in lane[: lane.index(entry)])
            assert all(e.seq > entry.seq for e in lane[lane.index(entry) + 1 :])

    @rule(slots=st.integers(1, 4), chesscom=st.integers(1, 3), lichess=st.integers(1, 2))
    def resize(self, slots: int, chesscom: int, lichess: int) -> None:
        self._apply(self.slots.resize(slots, {"chesscom": chesscom, "lichess": lichess}, self.now))

    @rule()
    def publishing_pass(self) -> None:
        s = self.slots
        frame = s.frame(self.now)
        s.grade(frame, self.now)
        moved = s.take_moved()
        walked = list(frame.walk(s, 0, self.now))
        for entry, position, raw in walked:
            before = self.last_position.get(entry.import_id)
            # Only waiters behind the first that left may have moved.
            if before is not None and position != before:
                assert moved is not None and entry.seq > moved
            assert raw >= 0.0
            self.last_position[entry.import_id] = position
        self.sent_back = None

    @rule(ticket=st.text(max_size=3))
    def cancel_unknown(self, ticket: str) -> None:
        try:
            self.slots.cancel("x" + ticket, self.now)
        except UnknownTicket:
            pass
        else:
            raise AssertionError("an unknown ticket was accepted")

    @invariant()
    def lanes_counted(self) -> None:
        s = self.slots
        for source in SOURCES:
            in_lane = sum(1 for e in s.running.values() if e.source == source)
            assert in_lane == s.in_lane[source]

    @invariant()
    def work_conserving(self) -> None:
        s = self.slots
        if len(s.running) < s.slots and not s.draining:
            for source in SOURCES:
                if s.waiting_in(source) and source not in s.paused:
                    assert s.in_lane[source] >= s.lanes[source]

    @invariant()
    def positions_are_naive_ranks(self) -> None:
        s = self.slots
        in_order = list(s.waiting())
        assert {e.import_id for e in in_order} == set(s.line)
        assert [e.seq for e in in_order] == sorted(e.seq for e in in_order)
        for rank, entry in enumerate(in_order, start=1):
            assert s.position(entry) == rank
        assert len(s.index) == len(s.line)
        for lane in s.lines.values():
            live = [e.seq for e in lane if e.import_id in s.line]
            assert live == sorted(live)
        assert [e.seq for e in s.line.values()] == sorted(e.seq for e in s.line.values())

    @invariant()
    def positions_rise_only_behind_a_requeue(self) -> None:
        s = self.slots
        for import_id, e in s.estimates(self.now).items():
            before = self.last_position.get(import_id)
            if before is not None and e.position > before:
                assert self.sent_back is not None and s.entries[import_id].seq >= self.sent_back
            assert e.low_s <= e.eta_s <= e.high_s

    @invariant()
    def oldest_hold_shown(self) -> None:
        s = self.slots
        for source in SOURCES:
            holds = [p for name, p in s.holds if name == source]
            if holds:
                assert s.paused[source].since == min(p.since for p in holds)
            else:
                assert source not in s.paused

    @invariant()
    def addresses_counted(self) -> None:
        counts: dict[str, int] = {}
        for ticket in self.slots.tickets.values():
            counts[ticket.address] = counts.get(ticket.address, 0) + 1
        assert counts == self.slots.per_address

    @invariant()
    def one_import_per_player(self) -> None:
        # Besides one that is stopping because all its followers cancelled.
        keys = [(e.source, e.username) for e in self.slots.entries.values() if not e.stopping]
        assert len(keys) == len(set(keys))
        for key, import_id in self.slots.by_key.items():
            assert not self.slots.entries[import_id].stopping and key[1] == key[1].lower()


TestSlotMachine = SlotMachine.TestCase
TestSlotMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
