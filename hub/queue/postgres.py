"""The fleet driver: one line for every replica, kept in PostgreSQL and ruled by the core.

Every event runs one short transaction under a fleet-wide advisory lock: load
the line into the sans-I/O core, apply the event, let the core admit what
fits, write back what changed and NOTIFY. The rules therefore live only in
the core; SQL only stores its state. A NOTIFY says "something changed" and
nothing more: every replica re-reads the line (and polls every `poll_s` as
a fallback, since NOTIFY is never replayed after a lost connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from hub.queue import controls
from hub.queue.core import (
    RUNNING,
    WAITING,
    Admit,
    Decision,
    Entry,
    LineChanged,
    Slots,
    Stop,
    Ticket,
)
from hub.queue.driver import Event, RemoteEnded, RemoteProgress, RemoteStarted
from hub.queue.holds import OPERATOR
from hub.tasks import cancel_and_wait

log = logging.getLogger("hub.fleet")

CHANNEL = "hub_queue"
ADMISSION_LOCK = 0x6875625F71756575  # "hub_queu"; the same on every replica

_ENTRY_COLUMNS = (
    "import_id, source, username, seq, state, joined_at, started_at, owner, pages, "
    "pages_total, games, size, stopping, lease_owner, lease_until"
)

Snapshot = dict[str, tuple[Any, ...]]


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants plain postgresql:// and none of our pool options."""
    scheme, _, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    return "postgresql://" + rest if scheme.startswith("postgres") else url


class PostgresQueue:
    """The QueueDriver of a fleet; see the module docstring."""

    durable = True

    def __init__(
        self,
        slots: Slots,
        url: str,
        attached: Callable[[], Sequence[str]],
        lease_s: float = 15.0,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.slots = slots
        self.dsn = asyncpg_dsn(url)
        self.attached = attached  # ticket keys with a socket on this replica
        self.here: set[str] = set()  # imports whose task runs on this replica
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.clock = clock  # wall time: replicas share it, not a monotonic clock
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._out: asyncio.Queue[list[Event]] = asyncio.Queue()  # what happened on its own
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one load-apply-save at a time on this replica
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Imports that ended here while the database was away: import_id -> ok.
        # Written by the next transaction that gets through (the poll tries every poll_s).
        self._unrecorded: dict[str, bool] = {}
        self._sent_back: set[str] = set()  # requeued here, likewise until written
        self._owners: dict[str, str | None] = {}  # running import -> its lease holder
        self._controls = ""  # the operator's settings as last read

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        # Take over what a stopped fleet left; the hub hears of it with its first events().
        self._out.put_nowait(await self._mutate(lambda now: []))
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="fleet-listen"),
            asyncio.create_task(self._refresh_forever(), name="fleet-refresh"),
            asyncio.create_task(self._poll_forever(), name="fleet-poll"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        if self._pool is not None:
            await self._pool.close()

    def ready(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def running_on(self, import_id: str) -> str | None:
        """The replica that holds the import's lease, as of the last read."""
        if import_id in self.here:
            return self.replica
        return self._owners.get(import_id)

    # -- events -----------------------------------------------------------

    async def events(self) -> list[Event]:
        return await self._out.get()

    async def join(
        self, ticket: str, import_id: str, source: str, username: str, address: str
    ) -> tuple[Entry, bool, list[Event]]:
        result: list[tuple[Entry, bool]] = []

        def event(now: float) -> list[Decision]:
            entry, joined, decisions = self.slots.join(
                ticket, import_id, source, username, now, address
            )
            result.append((entry, joined))
            return decisions

        decisions = await self._mutate(event)
        return result[0][0], result[0][1], decisions

    async def attach(self, ticket: str) -> Entry:
        found: list[Entry] = []

        def event(now: float) -> list[Decision]:
            found.append(self.slots.attach(ticket))
            return []

        await self._mutate(event)  # UnknownTicket propagates to the caller
        return found[0]

    async def detach(self, ticket: str) -> None:
        # Nothing to write: the ticket stops being refreshed, and its grace runs from then.
        return None

    async def cancel(self, ticket: str) -> list[Event]:
        return await self._mutate(lambda now: self.slots.cancel(ticket, now))

    async def abort(self, import_id: str, reason: str) -> list[Event]:
        return await self._mutate(lambda now: self.slots.abort(import_id, reason, now))

    # The operator's settings are saved with the line, so they hold for every replica
    # and outlive restarts; draining is this replica's own and is not saved.

    async def resize(self, slots: int, lanes: Mapping[str, int]) -> list[Event]:
        return await self._mutate(lambda now: self.slots.resize(slots, lanes, now))

    async def pause(
        self, source: str | None, reason: str, by: str = OPERATOR, lapse_s: float | None = None
    ) -> list[Event]:
        def event(now: float) -> list[Decision]:
            until = None if lapse_s is None else now + lapse_s
            return self.slots.pause(source, reason, now, by=by, until=until)

        return await self._mutate(event)

    async def resume(self, source: str | None, by: str = OPERATOR) -> list[Event]:
        return await self._mutate(lambda now: self.slots.resume(source, now, by=by))

    async def drain(self) -> list[Event]:
        return await self._mutate(self.slots.drain)

    async def undrain(self) -> list[Event]:
        return await self._mutate(self.slots.undrain)

    async def requeue(self, import_id: str) -> list[Event]:
        """Back to the head of its line for whichever replica admits it next."""
        self._sent_back.add(import_id)
        self.here.discard(import_id)
        return await self._mutate(lambda now: [])

    async def finished(self, import_id: str, ok: bool) -> list[Event]:
        self._unrecorded[import_id] = ok
        self.here.discard(import_id)
        try:
            return await self._mutate(lambda now: [])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The slot stays taken in the shared line until then; the lease is still ours.
            log.warning(
                "could not record the end of an import in the line; retrying: %s",
                exc,
                extra={"import_id": import_id},
            )
            return []

    async def interrupted(self, import_id: str) -> list[Event]:
        """Give the lease up at once, so a replica that comes up next resumes the import."""
        self.here.discard(import_id)
        await self._execute(
            "UPDATE queue_entries SET lease_until = 0 WHERE import_id = $1 AND lease_owner = $2",
            import_id,
            self.replica,
        )
        return []

    async def progress(
        self, import_id: str, pages: int, pages_total: int | None, games: int
    ) -> list[Event]:
        """Share a page's progress; this replica's core already has it."""
        assert self._pool is not None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE queue_entries SET pages = $2, pages_total = $3, games = $4"
                    " WHERE import_id = $1",
                    import_id,
                    pages,
                    pages_total,
                    games,
                )
                await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Only the other replicas' view of the progress lags; the next page updates it.
            log.warning("could not share progress: %s", exc, extra={"import_id": import_id})
        return []

    async def sized(self, import_id: str, pages: int) -> list[Event]:
        decisions = self.slots.sized(import_id, pages)
        await self._execute(
            "UPDATE queue_entries SET size = $2 WHERE import_id = $1", import_id, pages
        )
        return list(decisions)

    # -- the one transaction ---------------------------------------------

    async def _mutate(self, event: Callable[[float], list[Decision]]) -> list[Event]:
        """Load, apply one event, admit by the rules, take over dead leases, save, notify."""
        assert self._pool is not None
        async with self._lock, self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADMISSION_LOCK)
            before, leases, seen = await self._load(conn)
            now = self.clock()
            unrecorded = dict(self._unrecorded)
            sent_back = set(self._sent_back)
            try:
                decisions: list[Event] = list(seen)
                for import_id, ok in unrecorded.items():
                    decisions += self.slots.finished(import_id, now, ok)
                for import_id in sent_back:
                    decisions += self.slots.requeue(import_id, now)
                decisions += event(now)
            except Exception:
                self._out.put_nowait(seen)  # what the read showed still happened
                raise
            decisions += self.slots.tick(now)
            decisions += self.slots.admit(now)
            mine = {d.import_id for d in decisions if isinstance(d, Admit)}
            # A draining replica takes nothing over either.
            for import_id in () if self.slots.draining else self.slots.running:
                owner, until = leases.get(import_id, (None, None))
                if owner is None or until is None or until < now:
                    if import_id not in mine:
                        log.info("taking over an import", extra={"import_id": import_id})
                        decisions.append(Admit(import_id))
                    mine.add(import_id)
            await self._save(conn, before, mine, now)
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        for import_id in unrecorded:
            self._unrecorded.pop(import_id, None)
        self._sent_back -= sent_back
        self.here |= mine
        return decisions

    async def _load(
        self, conn: asyncpg.Connection
    ) -> tuple[Snapshot, dict[str, tuple[str | None, float | None]], list[Event]]:
        previous = self._capture()
        rows = await conn.fetch(f"SELECT {_ENTRY_COLUMNS} FROM queue_entries")
        tickets = await conn.fetch("SELECT ticket, import_id, seen_at, address FROM queue_tickets")
        saved = await conn.fetchval("SELECT controls FROM queue_controls WHERE id = 1")
        local = set(self.attached())
        entries = [
            Entry(
                import_id=r["import_id"],
                source=r["source"],
                username=r["username"],
                seq=r["seq"],
                joined_at=r["joined_at"],
                state=r["state"],
                started_at=r["started_at"],
                pages=r["pages"],
                pages_total=r["pages_total"],
                games=r["games"],
                size=r["size"],
                stopping=r["stopping"],
            )
            for r in rows
        ]
        held = [
            Ticket(
                t["ticket"],
                t["import_id"],
                address=t["address"],
                detached_at=None if t["ticket"] in local else t["seen_at"],
            )
            for t in tickets
        ]
        self.slots.load(entries, held)
        restored = None if saved is None else controls.decode(saved)
        if restored is not None:  # before the event: the operator's caps and pauses
            self.slots.restore(restored)
        self._controls = controls.encode(self.slots.controls())
        leases = {r["import_id"]: (r["lease_owner"], r["lease_until"]) for r in rows}
        self._owners = {i: owner for i, (owner, _) in leases.items()}
        return self._snapshot(), leases, self._observe(previous)

    def _snapshot(self) -> Snapshot:
        state: Snapshot = {
            e.import_id: (e.state, e.started_at, e.stopping, e.pages, e.games)
            for e in self.slots.entries.values()
        }
        for ticket in self.slots.tickets.values():
            state["t:" + ticket.ticket] = (ticket.import_id,)
        return state

    async def _save(
        self, conn: asyncpg.Connection, before: Snapshot, mine: set[str], now: float
    ) -> None:
        after = self._snapshot()
        gone_entries = [k for k in before if not k.startswith("t:") and k not in after]
        gone_tickets = [k[2:] for k in before if k.startswith("t:") and k not in after]
        if gone_tickets:
            await conn.execute("DELETE FROM queue_tickets WHERE ticket = ANY($1)", gone_tickets)
        if gone_entries:
            await conn.execute("DELETE FROM queue_entries WHERE import_id = ANY($1)", gone_entries)
        for import_id, entry in self.slots.entries.items():
            if import_id not in before:
                await conn.execute(
                    f"INSERT INTO queue_entries ({_ENTRY_COLUMNS}) VALUES"
                    " ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, 0, NULL, FALSE, NULL, NULL)",
                    import_id,
                    entry.source,
                    entry.username,
                    entry.seq,
                    entry.state,
                    entry.joined_at,
                    entry.started_at,
                    min(entry.tickets, default=""),  # the column predates shared cancels
                )
            elif before[import_id] != after[import_id]:
                await conn.execute(
                    "UPDATE queue_entries SET state = $2, started_at = $3, stopping = $4"
                    " WHERE import_id = $1",
                    import_id,
                    entry.state,
                    entry.started_at,
                    entry.stopping,
                )
        text = controls.encode(self.slots.controls())
        if text != self._controls:
            await conn.execute(
                "INSERT INTO queue_controls (id, controls, updated_at) VALUES (1, $1, $2)"
                " ON CONFLICT (id) DO UPDATE SET controls = excluded.controls,"
                " updated_at = excluded.updated_at",
                text,
                now,
            )
        if mine:
            await conn.execute(
                "UPDATE queue_entries SET lease_owner = $2, lease_until = $3"
                " WHERE import_id = ANY($1)",
                list(mine),
                self.replica,
                now + self.lease_s,
            )
        new_tickets = [
            (t.ticket, t.import_id, now, t.address)
            for t in self.slots.tickets.values()
            if "t:" + t.ticket not in before
        ]
        if new_tickets:
            await conn.executemany(
                "INSERT INTO queue_tickets (ticket, import_id, seen_at, address)"
                " VALUES ($1, $2, $3, $4)",
                new_tickets,
            )

    # -- watching the others ----------------------------------------------

    async def refresh(self) -> None:
        """Re-read the line and tell the hub what other replicas changed."""
        assert self._pool is not None
        async with self._lock, self._pool.acquire() as conn:
            _, _, events = await self._load(conn)
        self._out.put_nowait([*events, LineChanged()])

    def _capture(self) -> dict[str, tuple[Any, ...]]:
        return {
            i: (e.state, e.pages, e.stopping, frozenset(e.tickets))
            for i, e in self.slots.entries.items()
        }

    def _observe(self, previous: dict[str, tuple[Any, ...]]) -> list[Event]:
        """What changed in the line between two reads, as events for local followers.

        Both the poll and every event re-read the line, so both must report
        what they saw change: a change seen by one is not seen again by the other.
        """
        here = self.here
        events: list[Event] = []
        for import_id, entry in self.slots.entries.items():
            was = previous.get(import_id)
            if entry.state != RUNNING:
                continue
            if import_id in here:
                if entry.stopping and (was is None or not was[2]):
                    events.append(Stop(import_id))
                continue
            if was is None or was[0] == WAITING:
                waited = (entry.started_at or entry.joined_at) - entry.joined_at
                events.append(RemoteStarted(import_id, waited))
            if (was is None or entry.pages != was[1]) and entry.pages:
                pages = max(entry.pages_total or 0, entry.pages)
                events.append(RemoteProgress(import_id, entry.pages, pages, entry.games))
        for import_id, was in previous.items():
            if import_id not in self.slots.entries and import_id not in here:
                events.append(RemoteEnded(import_id, was[3]))
        return events

    async def _refresh_forever(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.refresh()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not re-read the line: %s", exc)
                await asyncio.sleep(self.poll_s)
            except Exception:
                # A bug here must not stop this replica from ever reading the line again.
                log.exception("re-reading the line failed")
                await asyncio.sleep(self.poll_s)
            await asyncio.sleep(0.01)  # coalesce a burst of notifications into one read

    async def _poll_forever(self) -> None:
        """Renew leases, keep attached tickets alive, expire the rest, catch missed NOTIFYs."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                now = self.clock()
                await self._execute(
                    "UPDATE queue_entries SET lease_until = $2 WHERE lease_owner = $1"
                    " AND state = 'running'",
                    self.replica,
                    now + self.lease_s,
                )
                keys = list(self.attached())
                if keys:
                    await self._execute(
                        "UPDATE queue_tickets SET seen_at = $2 WHERE ticket = ANY($1)", keys, now
                    )
                self._out.put_nowait(await self._mutate(lambda now: []))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("fleet poll failed: %s", exc)
            except Exception:
                log.exception("fleet poll failed")
            self._changed.set()

    async def _listen_forever(self) -> None:
        """Keep one LISTEN connection; after any loss, reconnect and re-read everything."""
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda *_args: self._changed.set())
                self._listener = conn
                self._changed.set()  # anything may have happened while we were away
                delay = 0.1
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.poll_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost: %s; reconnecting", exc)
            finally:
                self._listener = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _execute(self, query: str, *args: Any) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            await conn.execute(query, *args)
