"""Size probes: one cheap request per waiting import, so its estimate knows its size."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from hub.errors import HubError
from hub.fetch.base import Source
from hub.queue.core import Entry
from hub.queue.driver import Event, QueueDriver
from hub.store.base import Store

log = logging.getLogger("hub")

Dispatch = Callable[[Iterable[Event]], None]


class Probes:
    """At most one probe per waiting import, and at most `limit` waiting per upstream.

    A probe is cancelled when its import leaves the line; beyond the limit an
    import simply waits unsized, so a visitor who imports and cancels in a
    loop cannot turn the hub into a stream of upstream requests.
    """

    def __init__(
        self,
        sources: dict[str, Source],
        store: Store,
        limit: int,
        queue: QueueDriver,
        dispatch: Dispatch,
    ) -> None:
        self.sources = sources
        self.store = store
        self.limit = limit
        self.queue = queue
        self.dispatch = dispatch
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._per_source: dict[str, int] = {}

    def start(self, entry: Entry) -> None:
        if entry.import_id in self._tasks or self._per_source.get(entry.source, 0) >= self.limit:
            return
        self._per_source[entry.source] = self._per_source.get(entry.source, 0) + 1
        task = asyncio.create_task(self._probe(entry), name="probe")
        self._tasks[entry.import_id] = task
        task.add_done_callback(lambda _t: self._done(entry))

    def cancel(self, import_id: str) -> None:
        task = self._tasks.get(import_id)
        if task is not None:
            task.cancel()

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    def _done(self, entry: Entry) -> None:
        self._tasks.pop(entry.import_id, None)
        self._per_source[entry.source] -= 1

    async def _probe(self, entry: Entry) -> None:
        source = self.sources[entry.source]
        try:
            cursor = await self.store.get_cursor(entry.source, entry.username)
            pages = await source.probe(entry.username, cursor)
        except HubError as exc:
            if exc.code == "player_not_found":
                self.dispatch(await self.queue.abort(entry.import_id, "player_not_found"))
            return  # the import itself will meet and report any other failure
        except Exception:
            log.exception("size probe failed", extra={"import_id": entry.import_id})
            return
        if pages is not None:
            self.dispatch(await self.queue.sized(entry.import_id, pages))
