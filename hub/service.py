"""The hub: tickets, admission decisions, imports and what each socket is told."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub import protocol as p
from hub.errors import HubError, StorageUnavailable
from hub.fanout import Client, Fanout
from hub.fetch.base import Source
from hub.guard import ticket_key
from hub.importer import Outcome, run_import, summary
from hub.metrics import Metrics
from hub.queue.core import Admit, Drop, Entry, LineChanged, Release, Stop, UnknownTicket
from hub.queue.driver import Event, QueueDriver, RemoteEnded, RemoteProgress, RemoteStarted
from hub.settings import Settings
from hub.store.base import ImportRecord, Store
from hub.tasks import cancel_and_wait

log = logging.getLogger("hub")

UNKNOWN_TICKET = "That ticket is not known here, or its import ended a while ago."


@dataclass
class Running:
    task: asyncio.Task[Outcome]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    last_progress: str | None = None
    page: int = 0
    pages: int = 0
    games: int = 0


class ImportHub:
    """Turns client requests into queue events and queue decisions into messages."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        sources: dict[str, Source],
        queue: QueueDriver,
        fanout: Fanout,
        wall: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sources = sources
        self.queue = queue
        self.fanout = fanout
        self.clock = queue.clock  # the core's own time base, which a fleet shares
        self.wall = wall
        self.metrics = metrics or Metrics()
        queue.apply = self.apply
        self.running: dict[str, Running] = {}
        self.stopping = False
        self.background: set[asyncio.Task[None]] = set()
        # Ended tickets, so a page that reloads right after the end still learns it:
        # key -> (expires, import_id, source, username, final message)
        self.recent: dict[str, tuple[float, str, str, str, str]] = {}
        # Live tickets per client address, for HUB_MAX_TICKETS_PER_IP.
        self.by_address: dict[str, set[str]] = {}
        self.key_address: dict[str, str] = {}
        self.repairs: set[str] = set()  # waiting imports asked for as repairs

    @property
    def slots(self) -> int:
        return self.queue.slots.slots

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        await self.queue.start()
        await self.fanout.start()

    async def stop(self) -> None:
        # Imports first, while the queue can still record their interruption; nothing
        # is admitted from here on.
        self.stopping = True
        await cancel_and_wait([r.task for r in self.running.values()])
        await cancel_and_wait(list(self.background))
        await self.fanout.stop()
        await self.queue.stop()

    # -- client requests --------------------------------------------------

    def hello(self) -> p.Hello:
        s = self.queue.slots
        return p.Hello(p.PROTOCOL, s.slots, s.free, len(s.line))

    async def request_import(
        self, client: Client, source: str, username: str, repair: bool = False
    ) -> None:
        username = username.lower()
        if len(self.by_address.get(client.address, ())) >= self.settings.max_tickets_per_ip:
            raise p.ProtocolError(
                "too_many_imports",
                f"At most {self.settings.max_tickets_per_ip} imports may wait or run "
                "for one visitor at a time.",
            )
        slots = self.queue.slots
        if (source, username) not in slots.by_key and len(slots.line) >= self.settings.max_queue:
            last = max((e.eta_s for e in slots.estimates(self.clock()).values()), default=0.0)
            raise p.ProtocolError(
                "queue_full",
                f"The line is full ({len(slots.line)} waiting); the last place would wait "
                f"about {round(last)} s. Try again later.",
            )
        secret = secrets.token_urlsafe(24)  # 192 bits
        key = ticket_key(secret)
        import_id = secrets.token_hex(8)
        if repair:  # before the join: an import admitted at once may start meanwhile
            self.repairs.add(import_id)
        try:
            entry, joined = await self.queue.join(key, import_id, source, username)
        except BaseException:
            self.repairs.discard(import_id)
            raise
        if repair and joined:  # a waiting import joined becomes a repair; a running one not
            self.repairs.discard(import_id)
            if entry.state == "waiting":
                self.repairs.add(entry.import_id)
        self.by_address.setdefault(client.address, set()).add(key)
        self.key_address[key] = client.address
        if not joined:
            record = ImportRecord(
                id=entry.import_id,
                source=source,
                username=entry.username,
                state="queued",
                created_at=self.wall(),
            )
            try:
                await self.store.create_import(record)
            except Exception:
                log.exception("could not record a new import", extra={"import_id": import_id})
                await self.queue.cancel(key)
                raise StorageUnavailable() from None
        self.fanout.follow(client, key, entry.import_id)
        client.put(p.TicketMsg(secret, entry.import_id, source, entry.username, joined=joined))
        self._greet(client, entry)
        if entry.state == "waiting" and not joined:
            self._probe(entry)

    async def resume(self, client: Client, ticket: str) -> None:
        key = ticket_key(ticket)
        try:
            entry = await self.queue.attach(key)
        except UnknownTicket:
            ended = self._recent(key)
            if ended is None:
                raise p.ProtocolError("unknown_ticket", UNKNOWN_TICKET) from None
            import_id, source, username, final = ended
            client.put(p.TicketMsg(ticket, import_id, source, username, joined=False))
            client.put_text(final)
            return
        self.fanout.follow(client, key, entry.import_id)
        client.put(
            p.TicketMsg(ticket, entry.import_id, entry.source, entry.username, key != entry.owner)
        )
        self._greet(client, entry)

    async def cancel(self, client: Client, ticket: str) -> None:
        try:
            await self.queue.cancel(ticket_key(ticket))
        except UnknownTicket:
            raise p.ProtocolError("unknown_ticket", UNKNOWN_TICKET) from None

    async def disconnected(self, client: Client) -> None:
        for ticket in self.fanout.drop_client(client):
            await self.queue.detach(ticket)

    def _greet(self, client: Client, entry: Entry) -> None:
        """Tell a new follower where the import stands right now."""
        if entry.state == "waiting":
            self.fanout.line_changed()  # its first `queued` goes out with the next pass
            return
        waited = (entry.started_at or self.clock()) - entry.joined_at
        client.put(p.Started(entry.import_id, round(waited, 3)))
        run = self.running.get(entry.import_id)
        if run is not None and run.last_progress is not None:
            client.put_text(run.last_progress)

    def _recent(self, key: str) -> tuple[str, str, str, str] | None:
        now = self.clock()
        for old in [k for k, v in self.recent.items() if v[0] < now]:
            del self.recent[old]
        hit = self.recent.get(key)
        return None if hit is None else hit[1:]

    # -- queue decisions --------------------------------------------------

    def apply(self, events: Sequence[Event]) -> None:
        admitted = any(isinstance(d, Admit) for d in events)
        for d in events:
            if isinstance(d, Admit):
                self._admit(d.import_id)
            elif isinstance(d, Drop):
                self._dropped(d)
            elif isinstance(d, Stop):
                run = self.running.get(d.import_id)
                if run is not None:
                    run.stop.set()
            elif isinstance(d, Release):
                self.fanout.release(d.ticket)
                address = self.key_address.pop(d.ticket, None)
                if address is not None:
                    held = self.by_address.get(address, set())
                    held.discard(d.ticket)
                    if not held:
                        self.by_address.pop(address, None)
            elif isinstance(d, LineChanged):
                self.fanout.line_changed(now=admitted)
            elif isinstance(d, RemoteStarted):
                self.fanout.to_import(d.import_id, p.Started(d.import_id, round(d.waited_s, 3)))
            elif isinstance(d, RemoteProgress):
                msg = p.Progress(d.import_id, d.page, d.pages, d.games, None)
                self.fanout.to_import(d.import_id, msg)
            elif isinstance(d, RemoteEnded):
                self._background(self._ended_elsewhere(d))

    async def _ended_elsewhere(self, d: RemoteEnded) -> None:
        """Tell local followers how an import that ran on another replica ended."""
        self.repairs.discard(d.import_id)  # the repair was not this replica's to run
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
            self.apply([Release(key)])

    def _admit(self, import_id: str) -> None:
        if self.stopping:
            if self.queue.durable:  # give the lease back for whichever replica comes next
                self._background(self.queue.interrupted(import_id))
            return
        entry = self.queue.slots.entries[import_id]
        now = self.clock()
        waited = now - entry.joined_at
        self._measure_admission(
            entry.source, waited, now, self.fanout.first_eta.pop(import_id, None)
        )
        log.info(
            "slot acquired - starting import",
            extra={
                "import_id": import_id,
                "source": entry.source,
                "player": entry.username,
                "waited_s": round(waited, 3),
                "slots_in_use": len(self.queue.slots.running),
            },
        )
        self.fanout.to_import(import_id, p.Started(import_id, round(waited, 3)))
        task = asyncio.create_task(self._run(entry), name=f"import-{import_id}")
        self.running[import_id] = Running(task)

    def _measure_admission(
        self, source: str, waited: float, now: float, first_eta: tuple[float, float] | None
    ) -> None:
        self.metrics.admitted.labels(source).inc()
        self.metrics.wait.labels(source).observe(waited)
        if first_eta is not None:
            # The hub grades its own estimates: the first wait it announced vs what happened.
            eta, announced_at = first_eta
            real = now - announced_at
            error = abs(eta - real)
            self.metrics.eta_error.labels(source).observe(error)
            self.metrics.eta_error_ratio.labels(source).observe(error / max(real, 1.0))

    def _dropped(self, d: Drop) -> None:
        messages = {
            "cancelled": "The import was cancelled before it started.",
            "abandoned": "Nobody was waiting for this import any more.",
            "player_not_found": "That player does not exist on this site.",
        }
        message = messages.get(d.reason, d.reason)
        final = p.Failed(d.import_id, d.reason, message)
        self.repairs.discard(d.import_id)
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
        state = "cancelled" if d.reason == "cancelled" else "failed"
        self._background(
            self.store.finish_import(d.import_id, state, self.wall(), d.reason, message)
        )

    def _remember(
        self,
        tickets: Iterable[str],
        import_id: str,
        source: str,
        username: str,
        final: p.ServerMessage,
    ) -> None:
        expires = self.clock() + self.settings.resume_grace_s
        final_text = p.encode(final)
        for key in tickets:
            self.recent[key] = (expires, import_id, source, username, final_text)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- imports ----------------------------------------------------------

    async def _run(self, entry: Entry) -> Outcome:
        run = self.running[entry.import_id]
        started = self.clock()
        # Replaced by the real outcome unless the task is cancelled at shutdown.
        outcome = Outcome(
            state="failed",
            code="interrupted",
            message="The hub restarted during the import; import again to continue.",
        )

        def on_page(page: int, pages: int, games: int) -> None:
            elapsed = self.clock() - started
            eta = elapsed / page * (pages - page) if page else None
            msg = p.Progress(
                entry.import_id, page, pages, games, None if eta is None else round(eta, 1)
            )
            run.last_progress = p.encode(msg)
            self.fanout.to_import_text(entry.import_id, run.last_progress)
            run.games, run.page, run.pages = games, page, pages
            self._background(self.queue.progress(entry.import_id, page, pages, games))

        def on_wait(reason: str, retry_in_s: float) -> None:
            msg = p.Progress(
                entry.import_id,
                run.page,
                max(run.pages, run.page),
                run.games,
                None,
                p.Waiting(reason, round(retry_in_s, 1)),
            )
            self.fanout.to_import(entry.import_id, msg)

        try:
            outcome = await run_import(
                entry.import_id,
                self.sources[entry.source],
                entry.username,
                self.store,
                run.stop,
                on_page,
                on_wait,
                self.wall,
                repair=entry.import_id in self.repairs,
            )
        finally:
            self.repairs.discard(entry.import_id)
            self.running.pop(entry.import_id, None)
            duration = self.clock() - started
            final: p.ServerMessage
            if outcome.state == "done":
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
                    "slots_in_use": len(self.queue.slots.running) - 1,
                },
            )
            self.metrics.duration.labels(entry.source, outcome.state).observe(duration)
            if outcome.code == "interrupted" and self.queue.durable:
                # The line outlives this process: another replica, or this one
                # restarted, resumes the import from its checkpoint.
                await self.queue.interrupted(entry.import_id)
            else:
                current = self.queue.slots.entries.get(entry.import_id, entry)
                self._remember(
                    current.tickets, entry.import_id, entry.source, entry.username, final
                )
                self.fanout.to_import(entry.import_id, final)
                if outcome.code == "interrupted":
                    await self.queue.interrupted(entry.import_id)
                else:
                    await self.queue.finished(entry.import_id, outcome.state == "done")
        return outcome

    def _probe(self, entry: Entry) -> None:
        async def probe() -> None:
            source = self.sources[entry.source]
            try:
                cursor = await self.store.get_cursor(entry.source, entry.username)
                pages = await source.probe(entry.username, cursor)
            except HubError as exc:
                if exc.code == "player_not_found":
                    await self.queue.abort(entry.import_id, "player_not_found")
                return  # the import itself will meet and report any other failure
            except Exception:
                log.exception("size probe failed", extra={"import_id": entry.import_id})
                return
            if pages is not None:
                await self.queue.sized(entry.import_id, pages)

        self._background(probe())
