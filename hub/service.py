"""The hub: client requests into queue events, and the queue's decisions into actions."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from hub import protocol as p
from hub.errors import StorageUnavailable, UpstreamPaused
from hub.fanout import Client, Fanout
from hub.fetch.base import Source
from hub.fetch.http import Breakers
from hub.guard import ticket_key
from hub.importer import summary
from hub.metrics import Metrics
from hub.outages import Outages
from hub.probes import Probes
from hub.queue.core import (
    Admit,
    Drop,
    Entry,
    Left,
    LineChanged,
    Refused,
    Release,
    Stop,
    UnknownTicket,
)
from hub.queue.driver import Event, QueueDriver, RemoteEnded, RemoteProgress, RemoteStarted
from hub.rows import NewRows
from hub.runner import Runner
from hub.settings import Settings
from hub.store.base import ImportRecord, Store
from hub.tasks import cancel_and_wait
from hub.tickets import Tickets

log = logging.getLogger("hub")

UNKNOWN_TICKET = "That ticket is not known here, or its import ended a while ago."
DROPPED = {
    "cancelled": "You left the line.",
    "abandoned": "Nobody was waiting for this import any more.",
    "player_not_found": "That player does not exist on this site.",
    "storage_unavailable": StorageUnavailable.default_message,
}


class ImportHub:
    """A thin dispatcher between sockets, the queue driver and the parts that act."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        sources: dict[str, Source],
        queue: QueueDriver,
        fanout: Fanout,
        wall: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.queue = queue
        self.fanout = fanout
        self.clock = queue.clock  # the core's own time base, which a fleet shares
        self.wall = wall
        self.metrics = metrics or Metrics()
        self.tickets = Tickets(settings.resume_grace_s)
        self.rows = NewRows()
        self.runner = Runner(
            store, sources, queue, fanout, self.rows, self.clock, wall, self.metrics
        )
        self.probes = Probes(sources, store, settings.probes_queued, queue, self.dispatch)
        self.repairs: set[str] = set()  # waiting imports asked for as repairs
        self.outages = (
            None if breakers is None else Outages(breakers, sources, queue, self.dispatch)
        )
        self.stopping = False
        self.imports: dict[str, asyncio.Task[None]] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []

    @property
    def slots(self) -> int:
        return self.queue.slots.slots

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        await self.queue.start()
        await self.fanout.start()
        self._loops = [
            asyncio.create_task(self._events_forever(), name="queue-events"),
            asyncio.create_task(self._rows_forever(), name="new-rows"),
        ]
        if self.outages is not None:
            self._loops.append(asyncio.create_task(self.outages.run(), name="breakers"))

    async def stop(self) -> None:
        # Imports first, while the queue can still record their interruption; nothing
        # is admitted from here on.
        self.stopping = True
        await cancel_and_wait(list(self.imports.values()))
        await cancel_and_wait(self.probes.tasks())
        await cancel_and_wait(list(self.background))
        await cancel_and_wait(self._loops)
        if self.outages is not None:
            await self.outages.stop()
        await self.fanout.stop()
        await self.queue.stop()

    async def _events_forever(self) -> None:
        """What happens on its own: grace periods, other replicas, the ended-ticket cache."""
        while True:
            try:
                events = await self.queue.events()
                self.tickets.prune(self.clock())
                self.dispatch(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("queue events failed")
                await asyncio.sleep(1.0)

    async def _rows_forever(self) -> None:
        """Write new imports' rows in batches; a batch that fails ends its imports."""
        while True:
            batch = await self.rows.take()
            try:
                await self.store.create_imports(batch)
            except Exception as exc:
                log.warning(
                    "could not record new imports", extra={"imports": len(batch), "error": str(exc)}
                )
                self.rows.done(batch, StorageUnavailable())
                for record in batch:
                    self.dispatch(await self.queue.abort(record.id, "storage_unavailable"))
                    if record.id not in self.runner.running and record.id not in self.imports:
                        self.rows.forget(record.id)
            else:
                self.rows.done(batch)

    # -- client requests --------------------------------------------------

    def hello(self) -> p.Hello:
        s = self.queue.slots
        return p.Hello(p.PROTOCOL, s.slots, s.free, len(s.line))

    async def request_import(
        self, client: Client, source: str, username: str, repair: bool = False
    ) -> None:
        secret, key = Tickets.mint()
        import_id = secrets.token_hex(8)
        try:
            entry, joined, events = await self.queue.join(
                key, import_id, source, username.lower(), client.address
            )
        except Refused as exc:
            raise p.ProtocolError(exc.code, self._refusal(exc)) from None
        # A waiting import joined becomes a repair, and so does a new one admitted at once
        # (its task starts with the next loop turn); a running one joined does not.
        if repair and (entry.state == "waiting" or not joined):
            self.repairs.add(entry.import_id)
        if not joined:
            self.rows.add(
                ImportRecord(
                    id=entry.import_id,
                    source=source,
                    username=entry.username,
                    state="queued",
                    created_at=self.wall(),
                )
            )
        self.fanout.follow(client, key, entry.import_id)
        client.put(p.TicketMsg(secret, entry.import_id, source, entry.username, joined=joined))
        if joined:
            self._greet(client, entry)
        elif entry.state == "waiting":
            self.fanout.greet(client, entry)
            self.probes.start(entry)
        self.dispatch(events)

    def _refusal(self, exc: Refused) -> str:
        if exc.code != "queue_full" or not self.queue.slots.line:
            return exc.message
        slots = self.queue.slots
        last = slots.order.last()
        if last is None:
            return exc.message
        now = self.clock()
        frame = self.fanout.frame or slots.frame(now)
        wait = slots.estimate(last, frame, now).eta_s
        return f"{exc.message} The last place would wait about {round(wait)} s."

    async def resume(self, client: Client, ticket: str) -> None:
        key = ticket_key(ticket)
        try:
            entry = await self.queue.attach(key)  # any number of attaches is one
        except UnknownTicket:
            ended = self.tickets.lookup(key, self.clock())
            if ended is None:
                raise p.ProtocolError("unknown_ticket", UNKNOWN_TICKET) from None
            client.put(p.TicketMsg(ticket, ended.import_id, ended.source, ended.username, False))
            client.put_text(ended.final)
            return
        self.fanout.follow(client, key, entry.import_id)
        client.put(p.TicketMsg(ticket, entry.import_id, entry.source, entry.username, False))
        self._greet(client, entry)

    async def cancel(self, client: Client, ticket: str) -> None:
        try:
            events = await self.queue.cancel(ticket_key(ticket))
        except UnknownTicket:
            raise p.ProtocolError("unknown_ticket", UNKNOWN_TICKET) from None
        self.dispatch(events)

    async def disconnected(self, client: Client) -> None:
        for ticket in self.fanout.drop_client(client):
            await self.queue.detach(ticket)

    def _greet(self, client: Client, entry: Entry) -> None:
        """Tell a new follower where the import stands right now."""
        if entry.state == "waiting":
            self.fanout.greet(client, entry)
            return
        waited = (entry.started_at or self.clock()) - entry.joined_at
        client.put(p.Started(entry.import_id, round(waited, 3)))
        last = self.runner.last_progress(entry.import_id)
        if last is not None:
            client.put_text(last)

    # -- decisions --------------------------------------------------------

    def dispatch(self, events: Iterable[Event]) -> None:
        for d in events:
            if isinstance(d, Admit):
                self._admit(d.import_id)
            elif isinstance(d, Drop):
                self._dropped(d)
            elif isinstance(d, Stop):
                task = self.imports.get(d.import_id)
                if self.runner.stop(d.import_id) and task is not None:
                    task.cancel()  # out of its sleep on the upstream, now
            elif isinstance(d, Left):
                final = p.Failed(d.import_id, "cancelled", DROPPED["cancelled"])
                self.fanout.to_ticket(d.ticket, final)
                self._remember([d.ticket], d.import_id, d.source, d.username, final)
            elif isinstance(d, Release):
                self.fanout.release(d.ticket)
            elif isinstance(d, LineChanged):
                self.fanout.line_changed()
            elif isinstance(d, RemoteStarted):
                self.fanout.to_import(d.import_id, p.Started(d.import_id, round(d.waited_s, 3)))
            elif isinstance(d, RemoteProgress):
                msg = p.Progress(d.import_id, d.page, d.pages, d.games, None)
                self.fanout.to_import(d.import_id, msg)
            elif isinstance(d, RemoteEnded):
                self._background(self._ended_elsewhere(d))

    def _admit(self, import_id: str) -> None:
        if self.stopping:
            if self.queue.durable:  # give the lease back for whichever replica comes next
                self._background(self._interrupted(import_id))
            return
        slots = self.queue.slots
        entry = slots.entries[import_id]
        now = self.clock()
        waited = now - entry.joined_at
        self.metrics.admitted.labels(entry.source).inc()
        self.metrics.wait.labels(entry.source).observe(waited)
        if entry.graded is not None:  # the core graded this estimate; publish the same
            when, _, shown, _, _ = entry.graded
            error = abs(shown - (now - when))
            self.metrics.eta_error.labels(entry.source).observe(error)
            self.metrics.eta_error_ratio.labels(entry.source).observe(error / max(now - when, 1.0))
        log.info(
            "slot acquired - starting import",
            extra={
                "import_id": import_id,
                "source": entry.source,
                "player": entry.username,
                "waited_s": round(waited, 3),
                "slots_in_use": len(slots.running),
            },
        )
        position = slots.index.rank(entry.seq) + 1  # where it stood, just before it left
        self.fanout.started(entry, position, waited)
        self.imports[import_id] = asyncio.create_task(
            self._import(entry), name=f"import-{import_id}"
        )

    async def _import(self, entry: Entry) -> None:
        repair = entry.import_id in self.repairs
        self.repairs.discard(entry.import_id)
        try:
            try:
                outcome, final = await self.runner.run(entry, repair)
            except asyncio.CancelledError:
                # Shutting down: the stored pages are the checkpoint, and the slot is freed
                # (or, in a fleet, its lease given back for the next replica).
                self.dispatch(await self.queue.interrupted(entry.import_id))
                raise
            if outcome.code == UpstreamPaused.code and self.outages is not None:
                await self._send_back(entry, self.outages)
                return
            if outcome.code == "interrupted" and self.queue.durable:
                # The line outlives this process: another replica, or this one
                # restarted, resumes the import from its checkpoint.
                self.dispatch(await self.queue.interrupted(entry.import_id))
                return
            current = self.queue.slots.entries.get(entry.import_id, entry)
            self._remember(current.tickets, entry.import_id, entry.source, entry.username, final)
            self.fanout.to_import(entry.import_id, final)
            if outcome.code == "interrupted":
                self.dispatch(await self.queue.interrupted(entry.import_id))
            else:
                self.dispatch(await self.queue.finished(entry.import_id, outcome.state == "done"))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("import task failed", extra={"import_id": entry.import_id})
        finally:
            # Sent back and admitted again at once, the import runs in a new task.
            if self.imports.get(entry.import_id) is asyncio.current_task():
                del self.imports[entry.import_id]
                self.rows.forget(entry.import_id)

    async def _send_back(self, entry: Entry, outages: Outages) -> None:
        """Its upstream stopped answering: the import waits at the head of its line."""
        try:
            await self.store.requeue_import(entry.import_id)
        except Exception as exc:
            log.warning("could not record a return to the line", extra={"error": str(exc)})
        await outages.send_back(entry)

    async def _interrupted(self, import_id: str) -> None:
        self.dispatch(await self.queue.interrupted(import_id))

    def _dropped(self, d: Drop) -> None:
        self.probes.cancel(d.import_id)
        self.repairs.discard(d.import_id)
        message = DROPPED.get(d.reason, d.reason)
        final: p.ServerMessage
        if d.reason == "storage_unavailable":
            # Its ticket was handed out before the row failed: name the import it ends.
            final = p.Error(d.reason, message, d.import_id)
        else:
            final = p.Failed(d.import_id, d.reason, message)
        log.info(
            "import left the line",
            extra={
                "import_id": d.import_id,
                "source": d.source,
                "player": d.username,
                "code": d.reason,
            },
        )
        self._remember(d.tickets, d.import_id, d.source, d.username, final)
        self.fanout.to_import(d.import_id, final)
        if d.reason != "storage_unavailable":
            state = "cancelled" if d.reason == "cancelled" else "failed"
            self._background(self.runner.record_end(d.import_id, state, d.reason, message))

    async def _ended_elsewhere(self, d: RemoteEnded) -> None:
        """Tell local followers how an import that ran on another replica ended."""
        record = None
        for _ in range(20):  # the other replica records the end just after it commits
            record = await self.store.get_import(d.import_id)
            if record is not None and record.state not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
        if record is None:
            return
        final: p.ServerMessage
        if record.state == "done":
            total = await self.store.count_games(record.source, record.username)
            took = (record.finished_at or 0.0) - (record.started_at or record.finished_at or 0.0)
            source = self.sources[record.source]
            complete, gaps = await summary(self.store, source, record.username)
            final = p.Done(
                d.import_id, record.games, total, record.pages, round(took, 3), complete, gaps
            )
        else:
            final = p.Failed(
                d.import_id, record.error or "internal", record.message or "Import failed."
            )
        self._remember(d.tickets, d.import_id, record.source, record.username, final)
        self.fanout.to_import(d.import_id, final)
        for key in d.tickets:
            self.fanout.release(key)

    def _remember(
        self,
        tickets: Iterable[str],
        import_id: str,
        source: str,
        username: str,
        final: p.ServerMessage,
    ) -> None:
        self.tickets.remember(
            list(tickets), import_id, source, username, p.encode(final), self.clock()
        )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
