"""An import sent back to the line: its followers and the waiters behind it hear their places."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from hub.fanout import Client, Fanout
from hub.mailbox import Mailbox, Outbox
from hub.queue.core import Slots
from hub.queue.eta import Ewma
from hub.queue.holds import BREAKER


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def follower(fanout: Fanout, outbox: Outbox, core: Slots, ticket: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        got.append(msgspec.json.decode(text))

    client = Client(Mailbox(send, outbox))
    entry = core.entry_for(ticket)
    fanout.follow(client, ticket, entry.import_id)
    if entry.state == "waiting":
        fanout.greet(client, entry)
    return got


async def test_waiters_behind_a_requeued_import_hear_their_new_place() -> None:
    clock = Clock()
    core = Slots(
        2, {"chesscom": 1, "lichess": 1}, {s: Ewma(10.0, 1.0) for s in ("chesscom", "lichess")}
    )
    fanout, outbox = Fanout(core, clock, queued_hz=1000.0), Outbox()
    for n, source in enumerate(["chesscom", "lichess", "lichess"]):
        core.join(f"t{n}", f"i{n}", source, f"player{n}", clock.now)
    assert set(core.running) == {"i0", "i1"}
    sent_back = follower(fanout, outbox, core, "t0")
    behind = follower(fanout, outbox, core, "t2")
    await asyncio.sleep(0)
    assert behind[-1]["position"] == 1

    clock.now += 5
    core.pause("chesscom", "chess.com is not answering", clock.now, by=BREAKER, since=1e9)
    core.requeue("i0", clock.now)
    fanout.publish_positions()
    await asyncio.sleep(0)
    # The lichess waiter's estimate did not move (the paused import takes no slot of its
    # lane), but its place did: it is told at once.
    assert behind[-1]["type"] == "queued" and behind[-1]["position"] == 2
    assert "paused" not in behind[-1]
    assert sent_back[-1]["type"] == "queued" and sent_back[-1]["position"] == 1
    assert sent_back[-1]["paused"] == {"reason": "chess.com is not answering", "since": 1e9}
