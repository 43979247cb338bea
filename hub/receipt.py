"""The receipt: what the hub holds for a player, against the site's own count, and the gaps."""

from __future__ import annotations

import msgspec

from hub.fetch.base import Source, expected_stored
from hub.store.base import Comparable, Ledger, Store, Unit


class Count(msgspec.Struct, frozen=True):
    count: int | None
    what: str


class UnitView(msgspec.Struct, frozen=True, kw_only=True):
    unit: str
    state: str
    status: int | None
    games_seen: int
    games_new: int
    games_known: int
    skipped: dict[str, int]
    fetched_at: float


class Gap(msgspec.Struct, frozen=True):
    unit: str
    reason: str


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /api/players/{source}/{username}/receipt`."""

    source: str
    username: str
    complete: bool  # no gap (a unit failed, pending, unparseable or short) and the counts agree
    site: Count
    stored: Count
    stored_total: int
    ongoing: int  # games the hub knows to be in progress: not missing
    units: list[UnitView]
    gaps: list[Gap]


def gap_of(unit: Unit, stored: int | None = None) -> Gap | None:
    """Why a unit leaves a hole, or None when it holds everything it listed.

    `stored` is how many games the store holds in the unit's range, when it has one.
    More than it listed is no hole: a game in progress then may have finished since.
    """
    if unit.state == "failed":
        return Gap(unit.unit, f"could not be read: {unit.error or f'HTTP {unit.status}'}")
    if unit.state == "pending":
        return Gap(unit.unit, "not read yet: the import stopped before it")
    if unit.unreadable:
        n = len(unit.unreadable)
        names = ", ".join(unit.unreadable[:10]) + (", …" if n > 10 else "")
        return Gap(unit.unit, f"{n} game{'s' if n > 1 else ''} could not be parsed: {names}")
    expected = expected_stored(unit)
    if stored is not None and unit.first_ms is not None and stored < expected:
        return Gap(unit.unit, f"the store holds {stored} of its {expected} games")
    return None


def build(
    source: str,
    comparable: Comparable,
    username: str,
    ledger: Ledger,
    stored_comparable: int,
    stored_total: int,
    ongoing: int,
) -> Receipt:
    """The receipt from the ledger and the store's counts; no I/O."""
    units = sorted(ledger.units.values(), key=lambda u: u.unit)
    found = (gap_of(u, ledger.stored.get(u.unit)) for u in units)
    gaps = [gap for gap in found if gap is not None]
    agree = ledger.site_count is not None and ledger.site_count == stored_comparable
    return Receipt(
        source=source,
        username=username,
        complete=agree and not gaps,
        site=Count(ledger.site_count, comparable.site_what),
        stored=Count(stored_comparable, comparable.stored_what),
        stored_total=stored_total,
        ongoing=ongoing,
        units=[
            UnitView(
                unit=u.unit,
                state=u.state,
                status=u.status,
                games_seen=u.games_seen,
                games_new=u.games_new,
                games_known=u.games_known,
                skipped=u.skipped,
                fetched_at=u.fetched_at,
            )
            for u in units
        ],
        gaps=gaps,
    )


async def load(store: Store, source: Source, username: str) -> Receipt | None:
    """The player's receipt, or None when the hub never recorded anything for them."""
    ledger = await store.read_ledger(source.name, username, with_stored=True)
    if not ledger.known:
        return None
    comparable = await store.count_comparable(source.name, username, source.comparable)
    total = await store.count_games(source.name, username)
    ongoing = await store.count_ongoing(source.name, username)
    return build(source.name, source.comparable, username, ledger, comparable, total, ongoing)
