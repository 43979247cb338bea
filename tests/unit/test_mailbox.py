"""The per-socket mailbox: order, latest-state replacement, slow readers."""

from __future__ import annotations

import asyncio

from hub.mailbox import Mailbox, MailboxStats


async def test_order_and_replacement() -> None:
    sent: list[str] = []
    gate = asyncio.Event()

    async def send(text: str) -> None:
        await gate.wait()
        sent.append(text)

    box = Mailbox(send)
    box.offer("queued:a", "q1")
    box.put("p1")
    box.offer("queued:a", "q2")  # replaces q1 in place, before p1
    box.offer("queue", "b1")
    box.offer("queue", "b2")
    box.put("p2")
    task = asyncio.create_task(box.run())
    gate.set()
    for _ in range(20):  # a few loop turns drain four messages
        await asyncio.sleep(0)
    assert sent == ["q2", "p1", "b2", "p2"]
    assert box.stats.coalesced == 2 and box.stats.sent == 4
    box.close()
    await task


async def test_slow_reader_does_not_hold_up_others() -> None:
    stats = MailboxStats()
    stuck = asyncio.Event()
    fast_got: list[str] = []

    async def never(text: str) -> None:
        await stuck.wait()

    async def fast(text: str) -> None:
        fast_got.append(text)

    slow_box, fast_box = Mailbox(never, stats), Mailbox(fast, stats)
    tasks = [asyncio.create_task(slow_box.run()), asyncio.create_task(fast_box.run())]
    for n in range(2000):
        for box in (slow_box, fast_box):
            box.offer("queue", f"board {n}")
        if n % 100 == 0:
            await asyncio.sleep(0)  # let the writers run between bursts
    await asyncio.sleep(0.01)
    assert fast_got[-1] == "board 1999"
    # The stuck reader holds one message in flight and one latest state, not a backlog.
    assert len(slow_box) == 1
    for box in (slow_box, fast_box):
        box.close()
    stuck.set()
    await asyncio.gather(*tasks)


async def test_discard_and_closed_mailbox() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    box = Mailbox(send)
    box.offer("queued:x", "stale")
    box.discard("queued:x")
    box.put("started")
    task = asyncio.create_task(box.run())
    await asyncio.sleep(0)
    box.close()
    box.put("after close")
    await task
    assert sent == ["started"]
