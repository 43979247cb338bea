"""New imports' rows, written together: one transaction for every join of a few milliseconds."""

from __future__ import annotations

import asyncio
import contextlib

from hub.store.base import ImportRecord


class NewRows:
    """A group commit of `imports` rows.

    A join never waits for its own row: the hub answers at once and the row
    follows with the next batch. An import that starts, or ends, before its
    row is written waits for that batch first (`written`).
    """

    def __init__(self, gather_s: float = 0.002, batch: int = 1000) -> None:
        self.gather_s = gather_s
        self.batch = batch
        self._waiting: list[ImportRecord] = []
        self._unwritten: dict[str, asyncio.Future[None]] = {}
        self._lost: dict[str, BaseException] = {}  # failed rows of imports already admitted
        self._wake = asyncio.Event()

    def add(self, record: ImportRecord) -> None:
        self._waiting.append(record)
        self._unwritten[record.id] = asyncio.get_running_loop().create_future()
        self._wake.set()

    async def take(self) -> list[ImportRecord]:
        """The next batch: every row added until a few milliseconds after the first."""
        while not self._waiting:
            self._wake.clear()
            await self._wake.wait()
        await asyncio.sleep(self.gather_s)
        batch, self._waiting = self._waiting[: self.batch], self._waiting[self.batch :]
        return batch

    def done(self, batch: list[ImportRecord], error: BaseException | None = None) -> None:
        for record in batch:
            future = self._unwritten.pop(record.id, None)
            if future is None or future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
                future.exception()  # retrieved here; `written` re-raises it for whoever waits
                self._lost[record.id] = error

    async def written(self, import_id: str) -> None:
        """Wait until this import's row is written; raise if its batch failed."""
        future = self._unwritten.get(import_id)
        if future is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
        lost = self._lost.pop(import_id, None)
        if lost is not None:
            raise lost

    def forget(self, import_id: str) -> None:
        """The import is over; nobody will ask whether its row was written."""
        self._lost.pop(import_id, None)

    def pending(self) -> int:
        return len(self._unwritten)
