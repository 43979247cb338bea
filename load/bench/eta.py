"""`python -m load.bench.eta`: how good the wait estimates are, in rounds of 10 mixed imports.

The scenario: a simulator answering in 40 ms, so months (pages) set an import's time; a hub
with 2 slots whose per-page prior is what a solo import through a hub on the same simulator
measured (the figure the hub's own averages converge to; nothing else is tuned); then, in each
round, 10 chess.com players of 6 to 60 months (5 games each) ask one after another, as fast as
the hub answers `ticket`, and the round ends when all are done. The rounds go to the same hub,
so it can learn from the earlier ones.

For every import that waited, graded at 1 s after its `ticket` (sizes are known by then): the
estimate it held then (its latest `queued`) against the real wait from that `queued`'s arrival
to `started`, as |error| / real wait, the way the hub grades itself. Beside it, the same
estimate counted down to that moment (as the page shows it) against the wait still left then.
Imports admitted within that second held no estimate at that moment and are counted apart.
Where `queued` carries `eta_low_s` and `eta_high_s`: whether that real wait fell inside them,
for imports whose `ticket` came once the hub had recorded 20 admissions (its board's
`eta_accuracy.samples`; on a hub without it, 20 earlier waiters started).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.bench.common import RESULTS, show, write
from load.bench.rawws import RawSocket, Recorder, Seen, open_recorded
from load.procs import Child, raise_nofile, run_async, serve, spawn
from load.stats import summary

SIZES = (6, 36, 12, 60, 18, 48, 9, 30, 24, 42)  # months of 5 games, in arrival order
SLOTS = 2
GRADE_AFTER_S = 1.0
SAMPLES_NEEDED = 20
TARGET_ERROR, TARGET_HITS = 0.25, 0.70


@dataclass
class Waiter:
    round: int
    months: int
    sock: RawSocket[Recorder]
    seen: Recorder
    ticket_at: float


def final(seen: Recorder) -> dict[str, Any]:
    for (_, m), raw in zip(seen.messages, seen.raw, strict=True):
        if m.type in ("done", "failed"):
            message: dict[str, Any] = json.loads(raw)
            return message
    raise LookupError("no final message")


async def calibrate(sim: Child, work: Path) -> float:
    """Seconds per page of a solo import through a hub on this simulator."""
    hub = serve(work, sim, SLOTS, name="calibrate")
    try:
        sock, seen = await open_recorded(hub.ws_url, "127.98.250.1")
        sock.send_json({"type": "import", "source": "chesscom", "username": "calibrate-p20x5"})
        await seen.until(("done", "failed"), 120)
        done = final(seen)
        sock.close()
    finally:
        hub.stop()
    if done["type"] != "done":
        raise RuntimeError(f"the calibration import failed: {done}")
    return float(done["duration_s"]) / int(done["pages"])


async def one_round(url: str, index: int) -> list[Waiter]:
    waiters = []
    for n, months in enumerate(SIZES):  # one after another, as fast as `ticket` comes
        sock, seen = await open_recorded(url, f"127.98.{index}.{n + 1}")
        name = f"eta{index}x{n}-p{months}x5"
        sock.send_json({"type": "import", "source": "chesscom", "username": name})
        ticket_at = await seen.until(("ticket",), 30)
        waiters.append(Waiter(index, months, sock, seen, ticket_at))
    for w in waiters:
        await w.seen.until(("done", "failed"), 300)
        w.sock.close()
    return waiters


def samples_by_time(board: Recorder) -> list[tuple[float, int]]:
    """(arrival, eta_accuracy.samples) of every board message that carries it."""
    out = []
    for (t, m), raw in zip(board.messages, board.raw, strict=True):
        if m.type == "queue":
            accuracy = json.loads(raw).get("eta_accuracy")
            if isinstance(accuracy, dict) and isinstance(accuracy.get("samples"), int):
                out.append((t, accuracy["samples"]))
    return out


def held_at(seen: Recorder, at: float) -> tuple[float, Seen] | None:
    held = None
    for t, m in seen.messages:
        if t > at:
            break
        if m.type == "queued":
            held = (t, m)
    return held


def grade(waiters: list[Waiter], board: list[tuple[float, int]]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    starts: list[float] = []  # of earlier waiters, for a hub without eta_accuracy
    for w in sorted(waiters, key=lambda w: w.ticket_at):
        known = [n for t, n in board if t <= w.ticket_at]
        recorded = known[-1] if known else (None if board else sum(s < w.ticket_at for s in starts))
        row = grade_one(w, recorded)
        rows.append(row)
        if row.get("waited"):
            started = w.seen.first(("started",))
            assert started is not None
            starts.append(started[0])
    return {"rows": rows, **figures(rows)}


def grade_one(w: Waiter, recorded: int | None) -> dict[str, Any]:
    """One import's figures; `recorded` is how many admissions the hub had graded by its ticket."""
    row: dict[str, Any] = {"round": w.round, "months": w.months, "outcome": final(w.seen)["type"]}
    started, first = w.seen.first(("started",)), w.seen.first(("queued",))
    if started is None:
        return row
    start = started[0]
    row["waited"] = first is not None and first[0] <= start
    if first is None or not row["waited"]:
        return row
    t1, q1 = first
    if q1.eta_s is not None:
        row["first_error"] = abs(t1 + q1.eta_s - start) / (start - t1)
    row["recorded_admissions"] = recorded
    at = w.ticket_at + GRADE_AFTER_S
    held = held_at(w.seen, at)
    if start <= at:
        row["graded"] = "admitted within 1 s"
    elif held is None or held[1].eta_s is None:
        row["graded"] = "no estimate held"
    else:
        t, q = held
        eta = q.eta_s
        assert eta is not None
        row["graded"] = "yes"
        # Graded as the hub grades itself: against the real wait from that estimate's arrival.
        row["error"] = abs(t + eta - start) / (start - t)
        row["signed_error_s"] = round(t + eta - start, 3)
        # The same estimate counted down to 1 s after the ticket, against the wait still left
        # then: harsher for short waits, where the same seconds weigh more.
        row["remaining_error"] = abs(t + eta - start) / (start - at)
        row["interval_eligible"] = recorded is not None and recorded >= SAMPLES_NEEDED
        if q.eta_low_s is not None and q.eta_high_s is not None:
            row["interval"] = [q.eta_low_s, q.eta_high_s]
            row["real_wait_s"] = round(start - t, 3)
            row["in_interval"] = q.eta_low_s <= start - t <= q.eta_high_s
    return row


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["error"] for r in rows if "error" in r]
    remaining = [r["remaining_error"] for r in rows if "remaining_error" in r]
    firsts = [r["first_error"] for r in rows if "first_error" in r]
    hits = [r["in_interval"] for r in rows if r.get("interval_eligible") and "in_interval" in r]
    rounds = sorted({r["round"] for r in rows})
    return {
        "imports": len(rows),
        "done": sum(r["outcome"] == "done" for r in rows),
        "waited": sum(bool(r.get("waited")) for r in rows),
        "graded": len(errors),
        "admitted_within_1s": sum(r.get("graded") == "admitted within 1 s" for r in rows),
        "median_error_pct": _pct(statistics.median(errors)) if errors else None,
        "error_pct": summary((e * 100 for e in errors), 1, 1),
        "median_error_pct_by_round": [
            _pct(statistics.median(e)) if e else None
            for e in (
                [r["error"] for r in rows if "error" in r and r["round"] == k] for k in rounds
            )
        ],
        "remaining_median_error_pct": _pct(statistics.median(remaining)) if remaining else None,
        "first_estimate_median_error_pct": _pct(statistics.median(firsts)) if firsts else None,
        "interval_present": any("interval" in r for r in rows),
        "interval_eligible": sum(bool(r.get("interval_eligible")) for r in rows),
        "interval_graded": len(hits),
        "interval_hit_pct": _pct(sum(hits) / len(hits)) if hits else None,
    }


def _pct(x: float) -> float:
    return round(x * 100, 1)


async def bench(rounds: int, latency_ms: float, work: Path) -> dict[str, Any]:
    sim_args = ["sim", "--latency-ms", str(latency_ms), "--lichess-gps", "0"]
    sim = spawn(["-m", "hub", *sim_args], work / "sim.log", "/_sim/stats")
    try:
        page_s = await calibrate(sim, work)
        env = {"HUB_LANE_CHESSCOM": str(SLOTS), "HUB_ETA_PAGE_CHESSCOM_S": str(round(page_s, 4))}
        hub = serve(work, sim, SLOTS, env=env)
        try:
            board_sock, board = await open_recorded(hub.ws_url, "127.98.251.1")
            board_sock.send_json({"type": "watch_queue"})
            waiters: list[Waiter] = []
            for index in range(rounds):
                waiters += await one_round(hub.ws_url, index)
            board_sock.close()
        finally:
            hub.stop()
    finally:
        sim.stop()
    return {
        "rounds": rounds,
        "sizes_months": SIZES,
        "slots": SLOTS,
        "latency_ms": latency_ms,
        "page_s_measured_solo": round(page_s, 4),
        "board_has_eta_accuracy": bool(samples_by_time(board)),
        "targets": {
            "median_error_pct": f"<= {_pct(TARGET_ERROR)}",
            "interval_hit_pct": f">= {_pct(TARGET_HITS)} once {SAMPLES_NEEDED} recorded",
        },
        **grade(waiters, samples_by_time(board)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.eta", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of 10 imports (default 6)")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="simulator latency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    raise_nofile()
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-eta"
    result = run_async(bench(args.rounds, args.latency_ms, work))
    hits = result["interval_hit_pct"]
    rows: list[list[Any]] = [
        ["imports done", f"{result['done']} of {result['imports']}", ""],
        ["waited / graded at 1 s / admitted within 1 s",
         f"{result['waited']} / {result['graded']} / {result['admitted_within_1s']}", ""],
        ["median error at 1 s after ticket %", result["median_error_pct"],
         f"<= {_pct(TARGET_ERROR)}"],
        ["  p90 %", result["error_pct"]["p90"], ""],
        ["  counted down, against the wait left %", result["remaining_median_error_pct"], ""],
        ["  by round %", result["median_error_pct_by_round"], ""],
        ["first estimate, median error %", result["first_estimate_median_error_pct"], ""],
        ["real wait inside eta_low_s..eta_high_s %",
         hits if result["interval_present"] else "no interval in `queued`",
         f">= {_pct(TARGET_HITS)} (graded {result['interval_graded']} of "
         f"{result['interval_eligible']} eligible)"],
    ]  # fmt: skip
    show(f"wait estimates, {args.rounds} rounds of 10 mixed chess.com imports, 2 slots",
         ["figure", "value", "target"], rows)  # fmt: skip
    print(write("eta", result, args.out))


if __name__ == "__main__":
    main()
