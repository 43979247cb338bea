"""Fan-out: who hears a `queued`, when, and what the board shows, with time in the test's hands.

The hub's dispatcher is thin: for each decision it calls one fan-out method.
`Line` below makes the same calls in the same order (`ImportHub.request_import`
and `ImportHub.dispatch`), so that these tests need no store and no import task.
The loop's clock is replaced by a fake one: the rate limit's timers fire only
when a test moves time on, and every wait is a bounded number of loop turns.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import protocol as p
from hub.fanout import Client, Fanout
from hub.mailbox import Mailbox, Outbox
from hub.queue.core import Admit, Decision, Drop, Entry, Left, LineChanged, Release, Slots
from hub.queue.eta import Ewma

Message = dict[str, Any]


class FakeTime:
    """The loop's clock and the core's, both moved by the test."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def turns(self, n: int = 5) -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time on and let every timer that fell due run, and the outbox after it."""
        self.now += seconds
        await self.turns()


@pytest.fixture
async def clock() -> AsyncIterator[FakeTime]:
    loop = asyncio.get_running_loop()
    fake = FakeTime(loop)
    loop.time = fake  # type: ignore[method-assign]
    try:
        yield fake
    finally:
        del loop.time  # the class's own clock again


class Line:
    """A core, a fan-out and sockets, wired as the hub wires them."""

    def __init__(
        self,
        clock: FakeTime,
        slots: int = 1,
        lanes: dict[str, int] | None = None,
        queued_hz: float = 2.0,
        horizon: int = 500,
    ) -> None:
        self.clock = clock
        priors = {"chesscom": Ewma(60.0, 2.0), "lichess": Ewma(60.0, 2.0)}
        self.slots = Slots(
            slots, lanes or {"chesscom": slots, "lichess": slots}, priors, horizon=horizon
        )
        self.fanout = Fanout(self.slots, clock, board_hz=4.0, queued_hz=queued_hz)
        self.outbox = Outbox()
        self.texts: dict[Client, list[tuple[float, str]]] = {}
        self.clients: dict[str, Client] = {}  # player -> the socket that asked for it
        self.positions_at_start: dict[str, int] = {}  # import_id -> where it stood
        self.waited: set[tuple[Client, str]] = set()  # followed while it waited

    def socket(self, name: str = "") -> Client:
        got: list[tuple[float, str]] = []
        clock = self.clock

        async def send(text: str) -> None:
            got.append((clock.now, text))

        client = Client(Mailbox(send, self.outbox), address=name or f"s{len(self.texts)}")
        self.fanout.connect(client)
        self.texts[client] = got
        return client

    def messages(self, client: Client, kind: str | None = None) -> list[Message]:
        decoded = [msgspec.json.decode(text) for _, text in self.texts[client]]
        return [m for m in decoded if kind is None or m["type"] == kind]

    def clear(self) -> None:
        for got in self.texts.values():
            got.clear()

    def join(
        self, player: str, source: str = "chesscom", watch: bool = False, ticket: str = ""
    ) -> Client:
        """`import` from a new socket, as `ImportHub.request_import` answers it.

        Imports are named by player here, so a player whose import is stopping (which
        takes no new followers: test_slots covers the new import that starts) is left out.
        """
        stopping = self.slots.entries.get(f"i-{player}")
        if stopping is not None and stopping.stopping:
            return self.clients[player]
        client = self.socket(ticket or player)
        if watch:
            self.fanout.watch(client)
        ticket = ticket or f"t-{player}"
        entry, joined, decisions = self.slots.join(
            ticket, f"i-{player}", source, player, self.clock.now, client.address
        )
        self.fanout.follow(client, ticket, entry.import_id)
        client.put(p.TicketMsg(ticket, entry.import_id, source, entry.username, joined))
        if entry.state == "waiting":
            self.waited.add((client, entry.import_id))
            self.fanout.greet(client, entry)
        elif joined:
            waited = (entry.started_at or self.clock.now) - entry.joined_at
            client.put(p.Started(entry.import_id, round(waited, 3)))
        self.dispatch(decisions)
        self.clients.setdefault(player, client)
        return client

    def dispatch(self, decisions: Iterable[Decision]) -> None:
        """`ImportHub.dispatch`, for the decisions that reach sockets."""
        for d in decisions:
            if isinstance(d, Admit):
                entry = self.slots.entries[d.import_id]
                # Where it stood just before it left: the waiters still ahead of it, plus one.
                ahead = sum(1 for e in self.slots.line.values() if e.seq < entry.seq)
                self.positions_at_start[d.import_id] = ahead + 1
                position = self.slots.index.rank(entry.seq) + 1  # as the hub computes it
                assert position == ahead + 1
                self.fanout.started(entry, position, self.clock.now - entry.joined_at)
            elif isinstance(d, Left):
                self.fanout.to_ticket(d.ticket, p.Failed(d.import_id, "cancelled", "You left."))
            elif isinstance(d, Drop):
                self.fanout.to_import(d.import_id, p.Failed(d.import_id, d.reason, "Dropped."))
            elif isinstance(d, Release):
                self.fanout.release(d.ticket)
            elif isinstance(d, LineChanged):
                self.fanout.line_changed()

    def finish(self, player: str) -> None:
        self.dispatch(self.slots.finished(f"i-{player}", self.clock.now))

    def cancel(self, player: str) -> None:
        self.dispatch(self.slots.cancel(f"t-{player}", self.clock.now))

    def entry(self, player: str) -> Entry:
        return self.slots.entries[f"i-{player}"]

    async def settle(self) -> None:
        """Every mailbox written out; a bounded number of loop turns."""
        for _ in range(100):
            if not any(len(c.mailbox) or c.mailbox.scheduled for c in self.texts):
                return
            await asyncio.sleep(0)
        raise AssertionError("the outbox did not drain")

    async def publish(self) -> None:
        """One pass now, whatever the rate limit, and its messages written."""
        assert self.fanout._pass_timer is None, "a pass is already due: let its timer run"
        self.fanout.publish_positions()
        await self.settle()

    def queued(self, player: str) -> list[int]:
        return [m["position"] for m in self.messages(self.clients[player], "queued")]


async def line_of(clock: FakeTime, players: int, **kwargs: Any) -> Line:
    """`runner` holds the slot; `w0`...`w{players-1}` wait, each has heard where it stands."""
    line = Line(clock, **kwargs)
    line.join("runner")
    for n in range(players):
        line.join(f"w{n}")
    await clock.advance(0.0)  # the pass these joins asked for
    await clock.advance(10.0)  # the passes' rate limit is behind us
    line.clear()
    return line


async def test_a_join_sends_one_queued_to_the_newcomer_and_otherwise_the_board(
    clock: FakeTime,
) -> None:
    line = Line(clock)
    line.join("runner", watch=True)
    for n in range(3):
        line.join(f"w{n}", watch=True)
    await clock.advance(0.0)
    await clock.advance(10.0)
    line.clear()

    newcomer = line.join("late", watch=True)
    await clock.advance(0.0)  # the leading edge: the pass and the board go out at once
    await line.settle()
    assert [m["type"] for m in line.messages(newcomer)] == ["queue", "ticket", "queued", "queue"]
    assert line.queued("late") == [4]
    for player in ("runner", "w0", "w1", "w2"):
        assert [m["type"] for m in line.messages(line.clients[player])] == ["queue"]
    # Further passes find nothing to say: no position moved, no estimate drifted.
    for _ in range(3):
        await clock.advance(1.0)
        await line.publish()
    for client in line.texts:
        assert not line.messages(client, "queued")[1:]


async def test_after_the_head_is_admitted_everyone_behind_moves_up_once(clock: FakeTime) -> None:
    line = await line_of(clock, 6)
    line.finish("runner")  # w0 takes the slot
    await clock.advance(0.0)
    await line.settle()
    assert [m["type"] for m in line.messages(line.clients["w0"])] == ["started"]
    for n in range(1, 6):
        assert line.queued(f"w{n}") == [n], f"w{n}"
    await clock.advance(1.0)
    await line.publish()
    for n in range(1, 6):
        assert line.queued(f"w{n}") == [n], "a second pass repeats nothing"


async def test_a_cancel_in_the_middle_moves_only_those_behind(clock: FakeTime) -> None:
    line = await line_of(clock, 6)
    line.cancel("w2")
    await clock.advance(0.0)
    await line.settle()
    failed = line.messages(line.clients["w2"])
    assert [(m["type"], m.get("code")) for m in failed] == [("failed", "cancelled")]
    for n in (0, 1):
        assert line.messages(line.clients[f"w{n}"]) == []
    for n in (3, 4, 5):
        assert line.queued(f"w{n}") == [n]  # was n + 1
    assert line.messages(line.clients["runner"]) == []


async def test_drift_rule(clock: FakeTime) -> None:
    # The runner started at t0 with a learned duration of 60 s and no size: w0 was told
    # 60 s at t0. Ten seconds on, the countdown says 50 s, and so does the estimate.
    line = await line_of(clock, 1)
    waiter = line.clients["w0"]
    learned = line.slots.ewma["chesscom"]  # as other imports end, this moves

    async def told_after(duration_s: float, wait_s: float = 0.0) -> list[Message]:
        learned.duration_s = duration_s
        await clock.advance(wait_s)
        await line.publish()
        return line.messages(waiter, "queued")

    assert await told_after(60.0 - 0.5) == []  # off by half a second: not worth a message
    assert await told_after(60.0 - 4.0) == []  # 4 s on 50 s is under 10 %
    sent = await told_after(60.0 - 20.0)  # 20 s off: past both
    assert [(m["position"], m["eta_s"]) for m in sent] == [(1, 30.0)]
    # Back up by 20 s a quarter of a second later: held, the last `queued` is too recent...
    assert len(await told_after(60.0, 0.25)) == 1
    # ...but at the first pass after that.
    sent = await told_after(60.0, 0.25)
    assert [(m["position"], m["eta_s"]) for m in sent] == [(1, 30.0), (1, 49.5)]
    assert line.messages(waiter, "queued")[-1]["eta_low_s"] == 24.8  # before 20 samples: half
    assert line.messages(waiter, "queued")[-1]["eta_high_s"] == 99.0  # and double


async def test_a_paused_source_keeps_places_and_says_so(clock: FakeTime) -> None:
    line = Line(clock, slots=1)
    line.join("runner", "chesscom")
    line.join("lich", "lichess", watch=True)
    line.join("ches", "chesscom")
    await clock.advance(0.0)
    await clock.advance(10.0)
    line.clear()
    since = clock.now
    line.dispatch(line.slots.pause("lichess", "upstream_unavailable", since))
    await clock.advance(0.0)
    await line.settle()
    [paused] = line.messages(line.clients["lich"], "queued")
    assert paused["position"] == 1 and paused["eta_s"] == paused["eta_high_s"] == 1e9
    assert paused["paused"] == {"reason": "upstream_unavailable", "since": since}
    # Behind it, the chesscom waiter keeps its place, and no longer waits for lich's import.
    [sooner] = line.messages(line.clients["ches"], "queued")
    assert sooner["position"] == 2 and sooner["eta_s"] == 50.0 and "paused" not in sooner
    [board] = line.messages(line.clients["lich"], "queue")
    assert board["paused"] == [
        {"source": "lichess", "reason": "upstream_unavailable", "since": since}
    ]
    # The runner ends: the chesscom waiter behind overtakes the paused one.
    line.finish("runner")
    await clock.advance(1.0)
    await line.settle()
    assert [m["type"] for m in line.messages(line.clients["ches"])] == ["queued", "started"]
    assert line.queued("ches") == [2]  # it left from second place: nothing more to say
    line.dispatch(line.slots.resume("lichess", clock.now))
    await clock.advance(1.0)
    await line.settle()
    resumed = line.messages(line.clients["lich"], "queued")[-1]
    assert "paused" not in resumed and resumed["position"] == 1 and resumed["eta_s"] < 1e9


async def test_overtaking_import_hears_its_true_position_before_started(
    clock: FakeTime,
) -> None:
    line = Line(clock, slots=2, lanes={"chesscom": 1, "lichess": 1})
    line.join("lrun", "lichess")
    line.join("crun", "chesscom")
    line.join("front", "chesscom")
    line.join("l1", "lichess")
    line.join("c1", "chesscom")  # position 3 behind front and l1
    line.join("c2", "chesscom")
    await clock.advance(0.0)
    await clock.advance(10.0)
    assert line.queued("c1") == [3]
    line.clear()
    line.cancel("front")  # no pass yet: c1 still thinks it is third
    line.finish("crun")  # c1 overtakes l1, whose lane is full: it left from second place
    await line.settle()
    assert [(m["type"], m.get("position")) for m in line.messages(line.clients["c1"])] == [
        ("queued", 2),
        ("started", None),
    ]
    await clock.advance(0.0)
    await line.settle()
    assert line.queued("l1") == [1]  # was 2, behind front
    assert line.queued("c2") == [2]  # was 4: front and c1 left before it
    assert [m["type"] for m in line.messages(line.clients["c1"])] == ["queued", "started"]


async def test_board_is_one_text_for_every_watcher_and_masks_every_player(
    clock: FakeTime,
) -> None:
    line = Line(clock, slots=1)
    watchers = [line.join(f"player{n}", watch=True) for n in range(4)]
    bystander = line.socket("bystander")
    line.fanout.watch(bystander)
    watchers.append(bystander)
    await clock.advance(1.0)
    await line.settle()
    last = [[text for _, text in line.texts[c] if '"type":"queue"' in text][-1] for c in watchers]
    assert all(text is last[0] for text in last)  # encoded once, the same object for all
    board = msgspec.json.decode(last[0])
    assert board["waiting_total"] == 3 and board["slots_free"] == 0
    rows = board["running"] + board["waiting"]
    assert [r["import_id"] for r in rows] == [f"i-player{n}" for n in range(4)]
    for row in rows:
        assert row["player"] == "pl…"
    for n in range(4):  # a name appears only inside its import id
        assert last[0].count(f"player{n}") == last[0].count(f"i-player{n}") == 1
    assert [r["position"] for r in board["waiting"]] == [1, 2, 3]
    assert board["eta_accuracy"] == {
        "samples": 0,
        "median_error_pct": None,
        "p90_error_pct": None,
        "interval_hit_pct": None,
    }
    assert board["paused"] == []


async def test_passes_are_rate_bounded(clock: FakeTime) -> None:
    hz = 2.0
    line = await line_of(clock, 40, queued_hz=hz)
    start = clock.now
    # 20 admissions in one second, each followed by whatever the loop does next.
    line.finish("runner")
    for n in range(19):
        await clock.turns()
        await clock.advance(0.05)
        line.finish(f"w{n}")
    await clock.turns()
    assert clock.now - start < 1.0
    await line.settle()
    bound = math.ceil(hz) + 1
    for n in range(20, 40):
        sends = [t for t, text in line.texts[line.clients[f"w{n}"]] if '"queued"' in text]
        assert 1 <= len(sends) <= bound, (n, sends)
        positions = line.queued(f"w{n}")
        assert positions == sorted(positions, reverse=True)
    # The trailing pass tells everyone where they ended up.
    await clock.advance(1.0)
    await line.settle()
    for n in range(20, 40):
        assert line.queued(f"w{n}")[-1] == n - 19


async def test_a_pass_after_a_quiet_spell_goes_out_at_once(clock: FakeTime) -> None:
    line = await line_of(clock, 3)
    line.finish("runner")
    await clock.turns()  # no time passes
    await line.settle()
    assert line.queued("w1") == [1] and line.queued("w2") == [2]
    line.finish("w0")  # within the period: held until it is over
    await clock.turns()
    await line.settle()
    assert line.queued("w2") == [2]
    await clock.advance(0.5)
    await line.settle()
    assert line.queued("w2") == [2, 1]


Op = tuple[Any, ...]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(["chesscom", "lichess"]), st.booleans()),
        st.tuples(st.just("join"), st.sampled_from(["chesscom", "lichess"]), st.booleans()),
        st.tuples(st.just("follow"), st.integers(0, 50)),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.tuples(st.just("finish"), st.integers(0, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("sized"), st.integers(0, 50), st.integers(1, 40)),
        st.tuples(st.just("pause"), st.booleans()),
        st.tuples(st.just("resize"), st.integers(1, 3)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.1, 0.3, 0.6, 2.0])),
    ),
    min_size=15,
    max_size=60,
)


def run_with_fake_time(scenario: Callable[[FakeTime], Coroutine[Any, Any, None]]) -> None:
    loop = asyncio.new_event_loop()
    fake = FakeTime(loop)
    loop.time = fake  # type: ignore[method-assign]
    try:
        loop.run_until_complete(scenario(fake))
    finally:
        del loop.time
        loop.close()


def pick(items: Iterable[str], n: int) -> str | None:
    ordered = sorted(items)
    return ordered[n % len(ordered)] if ordered else None


async def play(line: Line, ops: list[Op]) -> None:
    clock, slots = line.clock, line.slots
    players = 0
    for op in ops:
        kind = op[0]
        if kind == "join":
            players += 1
            line.join(f"p{players}", op[1], watch=op[2])
        elif kind == "follow":
            import_id = pick(slots.entries, op[1])
            if import_id is not None:
                entry = slots.entries[import_id]
                players += 1
                line.join(entry.username, entry.source, ticket=f"t-extra{players}")
        elif kind == "finish":
            import_id = pick(slots.running, op[1])
            if import_id is not None:
                line.dispatch(slots.finished(import_id, clock.now))
        elif kind == "cancel":
            ticket = pick(slots.tickets, op[1])
            if ticket is not None:
                line.dispatch(slots.cancel(ticket, clock.now))
        elif kind == "sized":
            import_id = pick(slots.line, op[1])
            if import_id is not None:
                line.dispatch(slots.sized(import_id, op[2]))
        elif kind == "pause":
            if op[1]:
                line.dispatch(slots.pause("lichess", "upstream down", clock.now))
            else:
                line.dispatch(slots.resume("lichess", clock.now))
        elif kind == "resize":
            line.dispatch(slots.resize(op[1], {"chesscom": op[1], "lichess": 1}, clock.now))
        else:
            await clock.advance(op[1])
    await clock.advance(5.0)
    await line.settle()


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_positions_never_rise_and_every_waiter_sees_its_place_before_started(
    ops: list[Op],
) -> None:
    hz = 2.0
    passes: list[float] = []

    async def scenario(clock: FakeTime) -> None:
        line = Line(clock, slots=2, lanes={"chesscom": 2, "lichess": 1}, horizon=2)
        publish = line.fanout.publish_positions

        def recorded() -> None:
            passes.append(clock.now)
            publish()

        line.fanout.publish_positions = recorded  # type: ignore[method-assign]
        await play(line, ops)
        for client in line.texts:
            check_socket(line, client, hz)

    run_with_fake_time(scenario)
    # Passes are at least 1 / queued_hz apart (a timer may fire a clock tick early).
    assert all(b - a >= 1 / hz - 1e-6 for a, b in itertools.pairwise(passes))


def check_socket(line: Line, client: Client, hz: float) -> None:
    by_import: dict[str, list[tuple[float, Message]]] = {}
    for when, text in line.texts[client]:
        message = msgspec.json.decode(text)
        if "import_id" in message and message["type"] != "ticket":
            by_import.setdefault(message["import_id"], []).append((when, message))
    for import_id, got in by_import.items():
        kinds = [m["type"] for _, m in got]
        positions = [m["position"] for _, m in got if m["type"] == "queued"]
        assert positions == sorted(positions, reverse=True), (import_id, positions)
        if "started" in kinds:
            at = kinds.index("started")
            assert "queued" not in kinds[at:], kinds
            if positions:  # it waited while this socket followed it
                assert positions[-1] == line.positions_at_start[import_id], (import_id, got)
        # At most one per pass, plus the greeting and the last word before `started`.
        times = [when for when, m in got if m["type"] == "queued"]
        for k, first in enumerate(times):
            within = [t for t in times[k:] if t < first + 1.0]
            assert len(within) <= math.ceil(hz) + 1 + 2, (import_id, times)
    # Whoever followed a waiting import heard a position before it started. (One that
    # cancelled before its socket was written to may never hear it: that is fine.)
    for import_id, got in by_import.items():
        if (client, import_id) in line.waited and any(m["type"] == "started" for _, m in got):
            assert got[0][1]["type"] == "queued", got


async def test_a_slow_socket_still_hears_its_place_before_started(clock: FakeTime) -> None:
    """A socket whose transport pushes back through a whole short import.

    Its greeting `queued` is still unsent when the import starts and ends: the
    socket must read it before `started`, not lose it when the ticket is released.
    """
    line = Line(clock)
    line.join("runner")
    drained = asyncio.Event()
    got: list[str] = []

    async def slow(text: str) -> None:
        await drained.wait()
        got.append(msgspec.json.decode(text)["type"])

    client = Client(Mailbox(slow, line.outbox), address="slow")
    line.fanout.connect(client)
    client.put(p.Hello(1, 1, 0, 1))  # held up in the transport: the rest waits behind it
    await clock.turns()
    assert client.mailbox.writer is not None
    entry, _, decisions = line.slots.join("t-slow", "i-slow", "chesscom", "slow", clock.now, "a")
    line.fanout.follow(client, "t-slow", entry.import_id)
    client.put(p.TicketMsg("t-slow", entry.import_id, "chesscom", "slow", False))
    line.fanout.greet(client, entry)
    line.dispatch(decisions)
    await clock.advance(1.0)
    line.finish("runner")  # its turn: `started`
    await clock.advance(1.0)
    client.mailbox.put(p.encode(p.Done(entry.import_id, 1, 1, 1, 0.5, True, 0)))
    line.finish("slow")  # a one-page import, over before the socket caught up
    await clock.advance(1.0)
    drained.set()
    for _ in range(100):
        if got[-1:] == ["done"]:
            break
        await asyncio.sleep(0)
    assert got == ["hello", "ticket", "queued", "started", "done"]
