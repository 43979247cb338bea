"""The month plan, the repair rule and the receipt, without I/O."""

from __future__ import annotations

from typing import Any

from hub.fetch import chesscom, lichess
from hub.fetch.base import expected_stored, needs_repair
from hub.fetch.months import Cursor, MonthPlan
from hub.receipt import build, gap_of
from hub.store.base import Ledger, Unit

ARCHIVE = "https://api.chess.com/pub/player/me/games/"
MONTHS = [(f"2026/0{m}", f"{ARCHIVE}2026/0{m}") for m in range(1, 6)]


def row(month: str, state: str = "stored", **changes: Any) -> Unit:
    values: dict[str, Any] = {"games_seen": 10, "first_ms": 1, "last_ms": 2, "etag": f'"{month}"'}
    values.update(changes)
    return Unit(unit=month, state=state, **values)


def names(plan: MonthPlan) -> list[str]:
    return [m for m, _ in plan.months]


def test_first_import_reads_every_month_and_moves_the_cursor_along() -> None:
    plan = MonthPlan(MONTHS, None, Ledger())
    assert names(plan) == [m for m, _ in MONTHS] and plan.unrecorded == names(plan)
    assert plan.validators("2026/01") == {}
    moved = [plan.record(row(m)) for m, _ in MONTHS]
    assert [c.month if c else None for c in moved] == [m for m, _ in MONTHS]


def test_the_cursor_never_passes_a_failed_month() -> None:
    plan = MonthPlan(MONTHS, None, Ledger())
    assert plan.record(row("2026/01")) == Cursor(month="2026/01", etag='"2026/01"')
    assert plan.record(Unit(unit="2026/02", state="failed")) is None
    assert plan.record(row("2026/03")) is None and plan.record(row("2026/04")) is None


def test_next_import_reads_failed_months_first_then_from_the_cursor_conditionally() -> None:
    ledger = Ledger(
        units={
            "2026/01": row("2026/01"),
            "2026/02": Unit(unit="2026/02", state="failed"),
            "2026/03": row("2026/03"),
            "2026/04": row("2026/04", state="pending", etag=None),
        }
    )
    plan = MonthPlan(MONTHS, Cursor(month="2026/01"), ledger)
    assert names(plan) == ["2026/02", "2026/01", "2026/03", "2026/04", "2026/05"]
    assert plan.unrecorded == ["2026/05"]
    assert plan.validators("2026/03") == {"If-None-Match": '"2026/03"'}
    assert plan.validators("2026/02") == {} and plan.validators("2026/04") == {}
    # once the hole is read, the cursor runs up to the first month not read
    moved = plan.record(row("2026/02"))
    assert moved is not None and moved.month == "2026/03"


def test_repair_reads_only_failed_pending_unknown_and_short_months() -> None:
    ledger = Ledger(
        units={
            "2026/01": row("2026/01"),
            "2026/02": Unit(unit="2026/02", state="failed"),
            "2026/03": row("2026/03"),  # the store holds fewer than it listed
            "2026/04": row("2026/04", state="not_modified"),
        },
        stored={"2026/01": 10, "2026/03": 7, "2026/04": 10},
    )
    plan = MonthPlan(MONTHS, Cursor(month="2026/01"), ledger, repair=True)
    assert names(plan) == ["2026/02", "2026/03", "2026/05"]
    assert plan.validators("2026/03") == {}  # no 304 shortcut


def test_a_month_no_longer_listed_is_dropped_and_a_legacy_cursor_vouches() -> None:
    ledger = Ledger(units={"2025/12": Unit(unit="2025/12", state="failed")})
    plan = MonthPlan(MONTHS, Cursor(month="2026/03", etag='"old"'), ledger)
    assert plan.dropped == ["2025/12"]
    assert names(plan) == ["2026/03", "2026/04", "2026/05"]
    moved = plan.record(row("2026/04"))
    assert moved is not None and moved.month == "2026/04"


def test_repair_rule() -> None:
    assert needs_repair(None, 0) and needs_repair(Unit(unit="u", state="pending"), 0)
    ongoing = row("w", skipped={"ongoing": 2, "not_the_player": 1})
    assert expected_stored(ongoing) == 7
    assert not needs_repair(ongoing, 7) and needs_repair(ongoing, 6) and needs_repair(ongoing, 8)
    assert needs_repair(row("w", skipped={"unparseable": 1}, unreadable=["x"]), 9)
    assert not needs_repair(row("ongoing", first_ms=None, last_ms=None), None)


def test_receipt_is_complete_only_without_gaps_and_with_equal_counts() -> None:
    source = ("chesscom", chesscom.COMPARABLE)
    units = {"2026/01": row("2026/01", status=200), "2026/02": row("2026/02", status=304)}
    whole = build(*source, "me", Ledger(units=units, site_count=12), 12, 20, 0)
    assert whole.complete and whole.gaps == [] and whole.site.count == 12
    assert whole.site.what == chesscom.COMPARABLE.site_what
    assert [u.unit for u in whole.units] == ["2026/01", "2026/02"]
    assert not build(*source, "me", Ledger(units=units, site_count=13), 12, 20, 0).complete
    assert not build(*source, "me", Ledger(units=units), 12, 20, 0).complete  # no site count
    failed = {**units, "2026/03": Unit(unit="2026/03", state="failed", status=500)}
    receipt = build(*source, "me", Ledger(units=failed, site_count=12), 12, 20, 0)
    assert not receipt.complete and [g.unit for g in receipt.gaps] == ["2026/03"]
    unreadable = {"2026/01": row("2026/01", unreadable=["a", "b"])}
    gap = gap_of(unreadable["2026/01"])
    assert gap is not None and gap.reason == "2 games could not be parsed: a, b"
    assert not build(*source, "me", Ledger(units=unreadable, site_count=12), 12, 20, 0).complete
    pending = gap_of(Unit(unit="7..", state="pending"))
    assert pending is not None and "not read yet" in pending.reason
    # a unit whose games the store no longer holds all of is a gap; holding more is not
    short = Ledger(units=units, site_count=12, stored={"2026/01": 9, "2026/02": 11})
    receipt = build(*source, "me", short, 12, 20, 0)
    assert not receipt.complete
    assert [(g.unit, g.reason) for g in receipt.gaps] == [
        ("2026/01", "the store holds 9 of its 10 games")
    ]


def test_games_in_progress_are_not_missing() -> None:
    source = ("lichess", lichess.COMPARABLE)
    window = row("1..2", skipped={"ongoing": 3})
    receipt = build(*source, "me", Ledger(units={"1..2": window}, site_count=7), 7, 7, 3)
    assert receipt.complete and receipt.ongoing == 3 and receipt.gaps == []
