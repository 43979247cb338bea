"""Mailboxes and the one outbox that writes them: order, replacement, slow readers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hub.mailbox import Mailbox, Outbox
from tests.poll import eventually


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll against a deadline, a loop turn at a time: the turns are what the outbox needs."""
    await eventually(condition, what, timeout=2.0, every=0)


async def settle(outbox: Outbox, *boxes: Mailbox) -> None:
    """Every mailbox written out, with no task of its own."""
    await until(
        lambda: not any(len(b) or b.writer is not None or b.scheduled for b in boxes),
        "every mailbox written out",
    )


async def test_order_and_replacement() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    outbox = Outbox()
    box = Mailbox(send, outbox)
    box.offer("queued:a", "q1")
    box.put("p1")
    box.offer("queued:a", "q2")  # replaces q1 in place, before p1
    box.offer("queue", "b1")
    box.offer("queue", "b2")
    box.put("p2")
    await settle(outbox, box)
    assert sent == ["q2", "p1", "b2", "p2"]
    assert outbox.stats.coalesced == 2 and outbox.stats.sent == 4


async def test_a_socket_that_accepts_costs_no_task() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    outbox = Outbox()
    boxes = [Mailbox(send, outbox) for _ in range(100)]
    before = len(asyncio.all_tasks())
    for n, box in enumerate(boxes):
        box.put(f"m{n}")
    assert len(asyncio.all_tasks()) == before  # one callback, scheduled once
    await settle(outbox, *boxes)
    assert sent == [f"m{n}" for n in range(100)]
    assert outbox.stats.pushed_back == 0


async def test_slow_reader_does_not_hold_up_others() -> None:
    stuck = asyncio.Event()
    fast_got: list[str] = []
    slow_got: list[str] = []

    async def slow(text: str) -> None:
        await stuck.wait()  # a transport that pushes back until it drains
        slow_got.append(text)

    async def fast(text: str) -> None:
        fast_got.append(text)

    outbox = Outbox()
    slow_box, fast_box = Mailbox(slow, outbox), Mailbox(fast, outbox)
    for n in range(2000):
        for box in (slow_box, fast_box):
            box.offer("queue", f"board {n}")
        if n % 100 == 0:
            await asyncio.sleep(0)  # let the outbox run between bursts
    await settle(outbox, fast_box)
    assert fast_got[-1] == "board 1999"
    # The stuck reader has one send in flight (its own task) and one latest state.
    assert slow_box.writer is not None and len(slow_box) == 1
    assert outbox.stats.pushed_back == 1
    stuck.set()
    await settle(outbox, slow_box)
    assert slow_got == ["board 0", "board 1999"]


async def test_discard_and_closed_mailbox() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    outbox = Outbox()
    box = Mailbox(send, outbox)
    box.offer("queued:x", "stale")
    box.discard("queued:x")
    box.put("started")
    await settle(outbox, box)
    box.close()
    box.put("after close")
    await asyncio.sleep(0)
    assert sent == ["started"] and len(box) == 0


async def test_a_failed_send_closes_the_mailbox() -> None:
    async def gone(text: str) -> None:
        raise ConnectionResetError

    outbox = Outbox()
    box = Mailbox(gone, outbox)
    box.put("hello")
    box.put("again")
    await until(lambda: box.closed, "the mailbox closed")
    assert len(box) == 0


async def test_close_while_pushed_back_cancels_the_send() -> None:
    stuck = asyncio.Event()
    finished: list[str] = []

    async def slow(text: str) -> None:
        try:
            await stuck.wait()
        finally:
            finished.append(text)

    outbox = Outbox()
    box = Mailbox(slow, outbox)
    box.put("one")
    box.put("two")
    await until(lambda: box.writer is not None, "a writer task")
    writer = box.writer
    assert writer is not None
    box.close()
    await until(writer.done, "the writer task done")
    assert finished == ["one"] and box.writer is None
