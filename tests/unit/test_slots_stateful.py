"""Under any sequence of events the slot rules hold."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.queue.core import Admit, Decision, Slots, UnknownTicket
from hub.queue.eta import Ewma

SOURCES = ("chesscom", "lichess")
PLAYERS = st.sampled_from(["a", "b", "c", "d", "e", "f", "A", "B"])


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
        )
        self.admitted: list[str] = []
        self.last_position: dict[str, int] = {}

    def _apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if isinstance(d, Admit):
                entry = self.slots.entries[d.import_id]
                # Nothing of the same upstream that arrived earlier may still wait.
                for other in self.slots.line.values():
                    assert not (other.source == entry.source and other.seq < entry.seq)
                self.admitted.append(d.import_id)

    @rule(source=st.sampled_from(SOURCES), player=PLAYERS, dt=st.floats(0, 3))
    def join(self, source: str, player: str, dt: float) -> None:
        self.now += dt
        self.n += 1
        _, _, decisions = self.slots.join(f"t{self.n}", f"i{self.n}", source, player, self.now)
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
    @rule(data=st.data(), dt=st.floats(0, 10))
    def leave(self, data: st.DataObject, dt: float) -> None:
        ticket = data.draw(st.sampled_from(sorted(self.slots.tickets)))
        self.slots.detach(ticket, self.now)
        self.now += dt
        self._apply(self.slots.tick(self.now))

    @rule(ticket=st.text(max_size=3))
    def cancel_unknown(self, ticket: str) -> None:
        try:
            self.slots.cancel("x" + ticket, self.now)
        except UnknownTicket:
            pass
        else:
            raise AssertionError("an unknown ticket was accepted")

    @invariant()
    def caps_hold(self) -> None:
        s = self.slots
        assert len(s.running) <= s.slots
        for source in SOURCES:
            in_lane = sum(1 for e in s.running.values() if e.source == source)
            assert in_lane <= s.lanes[source]
            assert in_lane == s.in_lane[source]

    @invariant()
    def work_conserving(self) -> None:
        s = self.slots
        if len(s.running) < s.slots:
            for source in SOURCES:
                if s.lines[source]:
                    assert s.in_lane[source] >= s.lanes[source]

    @invariant()
    def positions_never_rise(self) -> None:
        est = self.slots.estimates(self.now)
        for import_id, e in est.items():
            before = self.last_position.get(import_id)
            assert before is None or e.position <= before
            self.last_position[import_id] = e.position
        assert sorted(e.position for e in est.values()) == list(range(1, len(est) + 1))

    @invariant()
    def one_import_per_player(self) -> None:
        keys = [(e.source, e.username) for e in self.slots.entries.values()]
        assert len(keys) == len(set(keys))


TestSlotMachine = SlotMachine.TestCase
TestSlotMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
