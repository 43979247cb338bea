"""The janitor's sweeps, with a fake store and a fixed clock."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from hub.janitor import Janitor
from hub.store import Store
from tests.poll import eventually

DAY = 86400.0


class FakeStore:
    """Answers `delete_ended_imports` from a script: counts to return, or errors to raise."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.calls: list[tuple[float, int]] = []

    async def delete_ended_imports(self, before: float, batch: int) -> int:
        self.calls.append((before, batch))
        step = self.script.pop(0) if self.script else 0
        if isinstance(step, Exception):
            raise step
        return step


def janitor(store: FakeStore, every_s: float = 3600.0, batch: int = 500) -> Janitor:
    """Keeps 30 days, on day 100."""
    return Janitor(
        cast(Store, store), keep_days=30, clock=lambda: 100 * DAY, every_s=every_s, batch=batch
    )


async def test_a_sweep_deletes_batch_after_batch_until_one_falls_short() -> None:
    store = FakeStore(3, 3, 1, 3)
    assert await janitor(store, batch=3).sweep() == 7
    assert store.calls == [(70 * DAY, 3)] * 3


async def test_a_failed_sweep_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore(OSError("disk gone"), 2)
    job = janitor(store, batch=5, every_s=0.01)
    with caplog.at_level(logging.INFO, logger="hub.janitor"):
        async with job:
            await eventually(
                lambda: len(store.calls) >= 3, "three batches", timeout=5.0, every=0.001
            )
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == ["deleting old imports failed", "deleted old imports"]
    assert caplog.records[0].error == "OSError: disk gone"  # type: ignore[attr-defined]
    assert caplog.records[1].imports == 2  # type: ignore[attr-defined]


async def test_stop_ends_the_job_and_may_be_called_twice() -> None:
    store = FakeStore()
    job = janitor(store)
    job.start()
    job.start()  # already running: no second job
    await eventually(lambda: len(store.calls) == 1, "one sweep", timeout=5.0, every=0.001)
    await job.stop()
    await job.stop()
    assert len(store.calls) == 1
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "janitor"]
