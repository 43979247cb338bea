"""Admitted imports: pages into the store, progress to their followers, and the last word."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from hub import protocol as p
from hub.errors import HubError, StorageUnavailable, UpstreamPaused
from hub.fanout import Fanout
from hub.fetch.base import Source
from hub.importer import Outcome, run_import
from hub.metrics import Metrics
from hub.queue.core import Entry
from hub.queue.driver import QueueDriver
from hub.rows import NewRows
from hub.store.base import Store

log = logging.getLogger("hub")

INTERRUPTED = "The hub restarted during the import; import again to continue."
CUT_SHORT = (
    "The import was cancelled while the site made it wait; the games stored so far are kept."
)


@dataclass(slots=True)
class Running:
    """One import holding a slot in this process."""

    entry: Entry
    started: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    last_progress: str | None = None
    waiting: bool = False  # asleep on the upstream (a 429 pause, a back-off)
    cut_short: bool = False  # its task was cancelled out of such a sleep by a stop
    page: int = 0
    pages: int = 0
    games: int = 0


class Runner:
    """Runs one admitted import to its end and tells its followers how it went.

    The caller owns the task and hands the end to the queue; the runner only
    fetches, stores and reports, so every path out of an import is one return.
    """

    def __init__(
        self,
        store: Store,
        sources: dict[str, Source],
        queue: QueueDriver,
        fanout: Fanout,
        rows: NewRows,
        clock: Callable[[], float],
        wall: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.sources = sources
        self.queue = queue
        self.slots = queue.slots
        self.fanout = fanout
        self.rows = rows
        self.clock = clock
        self.wall = wall
        self.metrics = metrics
        self.running: dict[str, Running] = {}
        self._sharing: set[asyncio.Task[object]] = set()

    def stop(self, import_id: str) -> bool:
        """Ask the import to stop; True when it sleeps on the upstream and must be woken.

        A stop takes effect at the next page boundary, which a 429 pause or a back-off
        may put minutes away: the caller then cancels the task, and the import ends as
        cancelled, with what it stored kept.
        """
        run = self.running.get(import_id)
        if run is None:
            return False
        run.stop.set()
        run.cut_short = run.waiting
        return run.waiting

    def last_progress(self, import_id: str) -> str | None:
        run = self.running.get(import_id)
        return None if run is None else run.last_progress

    async def run(self, entry: Entry, repair: bool = False) -> tuple[Outcome, p.ServerMessage]:
        """The import's outcome and the final message its followers were sent."""
        run = self.running[entry.import_id] = Running(entry, self.clock())
        # Replaced by the real outcome unless the task is cancelled at shutdown; the pages
        # stored so far are counted either way.
        outcome = Outcome(state="failed", code="interrupted", message=INTERRUPTED)
        unwritten = False
        try:
            try:
                await self.rows.written(entry.import_id)
            except asyncio.CancelledError:  # stopped before it began: still say so
                await asyncio.shield(
                    self.record_end(entry.import_id, "failed", "interrupted", INTERRUPTED)
                )
                raise
            outcome = await run_import(
                entry.import_id,
                self.sources[entry.source],
                entry.username,
                self.store,
                run.stop,
                lambda page, pages, games: self._page(run, page, pages, games),
                lambda reason, retry_in_s: self._wait(run, reason, retry_in_s),
                self.wall,
                repair,
            )
        except asyncio.CancelledError:
            if not run.cut_short:
                raise  # the hub is shutting down
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            outcome = Outcome(state="cancelled", code="cancelled", message=CUT_SHORT)
            await self.record_end(entry.import_id, "cancelled", "cancelled", CUT_SHORT)
        except HubError as exc:  # the row never reached the database
            outcome = Outcome(state="failed", code=exc.code, message=exc.message)
            unwritten = True
        except Exception as exc:
            if not self.store.is_unavailable(exc):
                raise
            unavailable = StorageUnavailable()
            outcome = Outcome(state="failed", code=unavailable.code, message=unavailable.message)
        finally:
            del self.running[entry.import_id]
            outcome.pages = max(outcome.pages, run.page)
            outcome.games_new = max(outcome.games_new, run.games)
            final = self._final(entry, run, outcome, unwritten)
        return outcome, final

    async def record_end(self, import_id: str, state: str, code: str, message: str) -> None:
        """Write how an import ended, once its row is; a failure costs only the history row."""
        try:
            await self.rows.written(import_id)
            await self.store.finish_import(import_id, state, self.wall(), code, message)
        except Exception as exc:
            log.warning("could not record the end of an import", extra={"error": str(exc)})

    def _page(self, run: Running, page: int, pages: int, games: int) -> None:
        entry, now = run.entry, self.clock()
        run.waiting = False
        self.slots.progress(entry.import_id, page, pages, games, now)  # this process's view
        if self.queue.durable:  # and the other replicas'
            task = asyncio.create_task(self.queue.progress(entry.import_id, page, pages, games))
            self._sharing.add(task)
            task.add_done_callback(self._sharing.discard)
        eta = self.slots.remaining(entry, now) if page < pages else 0.0
        msg = p.Progress(entry.import_id, page, pages, games, round(eta, 1))
        run.last_progress = p.encode(msg)
        run.games, run.page, run.pages = games, page, pages
        self.fanout.to_import_text(entry.import_id, run.last_progress)
        # Positions did not move; the estimates behind it drift, which the drift tick sends.

    def _wait(self, run: Running, reason: str, retry_in_s: float) -> None:
        run.waiting = True
        msg = p.Progress(
            run.entry.import_id,
            run.page,
            max(run.pages, run.page),
            run.games,
            None,
            p.Waiting(reason, round(retry_in_s, 1)),
        )
        self.fanout.to_import(run.entry.import_id, msg)

    def _final(
        self, entry: Entry, run: Running, outcome: Outcome, unwritten: bool = False
    ) -> p.ServerMessage:
        duration = self.clock() - run.started
        final: p.ServerMessage
        if outcome.code == UpstreamPaused.code:  # not an end: back to the line (hub.outages)
            return p.Failed(entry.import_id, outcome.code, outcome.message or "")
        if unwritten:
            # Its batch of rows failed: the same `error` as the imports of that batch
            # still in line, though this one was admitted before the batch came back.
            final = p.Error(
                outcome.code or "internal", outcome.message or "Import failed.", entry.import_id
            )
        elif outcome.state == "done":
            final = p.Done(
                entry.import_id,
                outcome.games_new,
                outcome.games_total,
                outcome.pages,
                round(duration, 3),
                outcome.complete,
                outcome.gaps,
            )
        else:
            final = p.Failed(
                entry.import_id, outcome.code or "internal", outcome.message or "Import failed."
            )
        log.info(
            "import finished" if outcome.state == "done" else "import failed",
            extra={
                "import_id": entry.import_id,
                "source": entry.source,
                "player": entry.username,
                "state": outcome.state,
                "code": outcome.code,
                "duration_s": round(duration, 3),
                "pages": outcome.pages,
                "games_new": outcome.games_new,
            },
        )
        self.metrics.duration.labels(entry.source, outcome.state).observe(duration)
        return final
