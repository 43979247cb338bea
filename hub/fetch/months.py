"""Which chess.com months an import reads, in what order, and how far its cursor may move."""

from __future__ import annotations

import msgspec

from hub.fetch.base import needs_repair
from hub.store.base import Ledger, Unit

READ = ("stored", "not_modified")


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The last month such that it and every month before it is stored, with its validators."""

    month: str  # "YYYY/MM"
    etag: str | None = None
    last_modified: str | None = None


class MonthPlan:
    """The months of one import, and the cursor they allow; no I/O, so it is unit-testable.

    A plain import reads the failed months first, then every month from the cursor
    month on (the cursor month may have grown). A repair reads only the months that
    failed, were never read, or whose stored count differs from what they held.
    The cursor is the last month such that it and every month before it were read:
    it never passes a failed month.
    """

    def __init__(
        self,
        listed: list[tuple[str, str]],
        start: Cursor | None,
        ledger: Ledger,
        repair: bool = False,
    ) -> None:
        self.listed = listed  # (month, url), ascending, as the archive list gives them
        self.units = dict(ledger.units)
        self.repair = repair
        self._cursor = start
        # A cursor written before the ledger existed vouches for the months up to it.
        self._vouched = start.month if start is not None else None
        names = {m for m, _ in listed}
        # A month no longer listed will never be read again: its failure is moot.
        self.dropped = [
            u for u, row in ledger.units.items() if u not in names and row.state not in READ
        ]
        if repair:
            self.months = [
                (m, url)
                for m, url in listed
                if needs_repair(self.units.get(m), ledger.stored.get(m, 0))
            ]
        else:
            failed = [(m, url) for m, url in listed if self._state(m) == "failed"]
            rest = [
                (m, url)
                for m, url in listed
                if (m, url) not in failed
                and (start is None or m >= start.month or self._state(m) == "pending")
            ]
            self.months = failed + rest
        # Planned months the ledger does not know yet: pending until read.
        self.unrecorded = [m for m, _ in self.months if m not in self.units]

    def _state(self, month: str) -> str | None:
        row = self.units.get(month)
        return None if row is None else row.state

    def validators(self, month: str) -> dict[str, str]:
        """Conditional headers for a month read before; a repair never takes the 304."""
        row = self.units.get(month)
        if self.repair or row is None or row.state not in READ:
            return {}
        headers: dict[str, str] = {}
        if row.etag:
            headers["If-None-Match"] = row.etag
        if row.last_modified:
            headers["If-Modified-Since"] = row.last_modified
        return headers

    def record(self, unit: Unit) -> Cursor | None:
        """Take a month's result; the new cursor when it moved forward, else None."""
        self.units[unit.unit] = unit
        cursor = self._prefix()
        old = self._cursor
        if cursor is None or cursor == old:
            return None
        if old is not None and cursor.month < old.month:
            return None  # the failed month is in the ledger; the cursor only moves forward
        self._cursor = cursor
        return cursor

    def _prefix(self) -> Cursor | None:
        last: str | None = None
        for month, _ in self.listed:
            row = self.units.get(month)
            if row is not None:
                read = row.state in READ
            else:
                read = self._vouched is not None and month <= self._vouched
            if not read:
                break
            last = month
        if last is None:
            return None
        row = self.units.get(last)
        if row is None:  # a month vouched for by the old cursor: keep its validators
            old = self._cursor
            if old is not None and old.month == last:
                return old
            return Cursor(month=last)
        return Cursor(month=last, etag=row.etag, last_modified=row.last_modified)
