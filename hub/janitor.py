"""The periodic job that deletes the rows of imports that ended long ago."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from hub.importer import describe
from hub.store.base import Store
from hub.tasks import cancel_and_wait

log = logging.getLogger("hub.janitor")

EVERY_S = 300.0
# Rows per delete: short write transactions, so pages and joins wait little behind them.
BATCH = 500


class Janitor:
    """Every `every_s`, delete the imports that ended more than `keep_days` ago.

    Games, players and cursors stay; only the history of imports goes. The first
    sweep runs at start, so a hub restarted often still prunes.
    """

    def __init__(
        self,
        store: Store,
        keep_days: float,
        clock: Callable[[], float],
        *,
        every_s: float = EVERY_S,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.keep_s = keep_days * 86400.0
        self.clock = clock  # unix seconds, as `finished_at` is
        self.every_s = every_s
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Delete, batch after batch, every import that ended before the cut; how many."""
        before = self.clock() - self.keep_s
        total = 0
        while True:
            deleted = await self.store.delete_ended_imports(before, self.batch)
            total += deleted
            if deleted < self.batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                deleted = await self.sweep()
            except Exception as exc:
                # A store that is away now may be back at the next sweep.
                log.warning("deleting old imports failed", extra={"error": describe(exc)})
            else:
                if deleted:
                    log.info("deleted old imports", extra={"imports": deleted})
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="janitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def __aenter__(self) -> Janitor:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
