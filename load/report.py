"""Every figure of a load run, as one JSON-ready dict, and a short table for the terminal."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from load.derive import Import, bound_unseen_starts, derive, outcomes, request_order, waiters
from load.extra import missing
from load.latency import position_latencies
from load.procs import Monitor, hub_source
from load.run import RunData
from load.stats import (
    eta_errors,
    fifo_inversions,
    max_concurrency,
    over_limit,
    step_series,
    summary,
)

try:
    from rich.console import Console
    from rich.table import Table
except ModuleNotFoundError as exc:
    raise missing(exc) from None

MAX_SERIES = 1500


def _thin(points: list[tuple[float, float]], limit: int = MAX_SERIES) -> list[list[float]]:
    """At most about `limit` points; each kept point holds the largest value of its stretch,
    so short peaks (a third running import, a slow update) survive the thinning."""
    step = max(1, math.ceil(len(points) / limit))
    out = []
    for i in range(0, len(points), step):
        chunk = points[i : i + step]
        peak = max(v for _, v in chunk)
        out.append([round(chunk[0][0], 3), round(peak, 4)])
    return out


def _fifo(imports: list[Import], key: Any) -> dict[str, dict[str, int]]:
    lines: dict[str, list[tuple[float, float]]] = defaultdict(list)
    estimated: Counter[str] = Counter()
    for imp in request_order(imports):
        if imp.start is None or imp.sent is None:
            continue
        if imp.start_estimated:  # only replayed after a resume: not an observed order
            estimated[key(imp)] += 1
            continue
        name = key(imp)
        lines[name].append((imp.sent, imp.start))
    return {
        name: {
            "imports": len(pairs),
            "inversions": fifo_inversions(pairs),
            "starts_only_replayed": estimated[name],
        }
        for name, pairs in sorted(lines.items())
    }


def _footprint(run: RunData) -> dict[str, Any]:
    monitor: Monitor | None = run.monitor
    if monitor is None:
        return {}
    out: dict[str, Any] = {name: monitor.summary(name) for name in monitor.pids}
    samples = monitor.samples.get("hub0", [])
    connected = run.tally.connected
    if samples and connected:
        base = samples[0].rss_mb
        at_connect = min(samples, key=lambda s: abs(s.t - run.timing.connected_at)).rss_mb
        out["hub0"]["rss_per_connected_socket_kb"] = round(
            (at_connect - base) * 1024 / connected, 2
        )
    return out


def saw_position(imports: list[Import]) -> dict[str, Any]:
    """Of the imports that waited in line, how many saw a position before their `started`.

    An import waited when the hub's own `waited_s` in its live `started` is above zero (one
    admitted at its join has exactly 0); it saw a position when a `queued` arrived before that
    `started`. Every one must.
    """
    waited = [
        i
        for i in imports
        if i.start is not None and not i.start_estimated and (i.waited_s or 0.0) > 0
    ]
    missed = [i for i in waited if i.first_queued is None or i.first_queued > (i.start or 0.0)]
    return {
        "waited": len(waited),
        "saw_position": len(waited) - len(missed),
        "missed": len(missed),
        "missed_longest_wait_s": max((i.waited_s or 0.0) for i in missed) if missed else None,
        "missed_users": [i.user.index for i in missed[:10]],
    }


def running_at_once(report: dict[str, Any]) -> str:
    """What was observed about concurrent imports, and from where, in words."""
    configured = report["max_concurrent_configured"]
    parts = []
    in_use = report["hub_log_errors"].get("hub.log", {}).get("max_slots_in_use_at_admission")
    if in_use is not None:
        parts.append(f"the hub's log: at most {in_use} of {configured} slots in use")
    elif configured is None:
        parts.append("the hub's own count is in its log (not read with --hub)")
    for hub, seen in report["max_concurrent_running"].items():
        text = f"{hub}'s clients: at most {seen} between `started` and `done`"
        over = report["over_configured"].get(hub, {})
        if over.get("episodes"):
            text += (
                f"; above {configured} on {over['episodes']} occasions, "
                f"{over['longest_ms']:.0f} ms at the longest (a `started` read on one socket "
                "before the `done` that freed its slot was read on another)"
            )
        parts.append(text)
    return "; ".join(parts)


def build(run: RunData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report, series): the figures, and the time series the plot draws."""
    opts = run.options
    timing = run.timing
    t0 = timing.started
    imports = [derive(u) for u in run.users]
    bound_unseen_starts(imports)
    connected = [i for i in imports if i.outcome != "connect_failed"]
    counts = outcomes(imports)
    done = counts.get("done", 0)
    failed = sum(v for k, v in counts.items() if k.startswith("failed"))
    lost = counts.get("lost", 0) + counts.get("not_sent", 0)

    # Time to the first answer that says where the import stands.
    to_queued = [i.first_queued - i.sent for i in imports if i.first_queued and i.sent]
    to_ticket = [i.ticket_at - i.sent for i in imports if i.ticket_at and i.sent]

    # Lines: positions are ranks in one hub's line; FIFO is per upstream.
    by_hub: dict[int, list[Import]] = defaultdict(list)
    for imp in connected:
        by_hub[imp.user.hub].append(imp)
    latency_samples: list[float] = []
    worst: list[tuple[float, float]] = []
    mean_by_dep: list[tuple[float, float]] = []
    lat_counts: Counter[str] = Counter()
    concurrency: dict[str, int] = {}
    breaches: dict[str, dict[str, float | int]] = {}
    for hub, line in sorted(by_hub.items()):
        lat = position_latencies(waiters(line))
        latency_samples.extend(lat.samples)
        for name in ("early", "unresolved", "skipped_gap", "skipped_unknown", "mismatched"):
            lat_counts[name] += getattr(lat, name)
        for d in lat.departures:
            if d.waiters:
                worst.append((d.time - t0, d.worst_s))
                mean_by_dep.append((d.time - t0, d.mean_s or 0.0))
        spans = [(i.start, i.end) for i in line if i.start is not None and i.end is not None]
        spans = [(a, max(a, b)) for a, b in spans]
        concurrency[f"hub{hub}"] = max_concurrency(spans)
        if not opts.hubs:
            total, longest, episodes = over_limit(spans, opts.max_concurrent)
            breaches[f"hub{hub}"] = {
                "episodes": episodes,
                "total_ms": round(total * 1000, 3),
                "longest_ms": round(longest * 1000, 3),
            }
    worst.sort()
    mean_by_dep.sort()

    # First estimate against the real wait.
    eta_pairs = [
        (i.first_eta, i.start - i.first_queued)
        for i in connected
        if i.first_eta is not None
        and i.first_queued is not None
        and i.start is not None
        and i.first_eta < 1e8
    ]
    errors = eta_errors(eta_pairs)
    signed = [eta - real for eta, real in eta_pairs]

    ends = [i.end for i in imports if i.outcome == "done" and i.end is not None]
    span = (max(ends) - t0) if ends else None
    drops = Counter(reason for u in run.users for _, reason in u.drops)
    errors_seen = Counter(u.connect_error for u in run.users if u.connect_error)

    report: dict[str, Any] = {
        "scenario": opts.scenario,
        "options": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()
        },
        "hubs": run.urls,
        "hub_source": None if opts.hubs else hub_source(),
        "open_files_limit": run.nofile,
        "timed_out": timing.timed_out,
        "wall_s": round(timing.ended - t0, 3),
        "connect": {
            "attempted": run.tally.attempted,
            "connected": run.tally.connected,
            "failed": run.tally.connect_failed,
            "errors": dict(errors_seen.most_common(5)),
            "connect_phase_s": round(timing.connected_at - timing.began, 3)
            if opts.scenario != "ramp"
            else None,
        },
        "completion": {
            "outcomes": counts,
            "done": done,
            "failed": failed,
            "lost": lost,
            "completion_rate": round(done / len(connected), 4) if connected else None,
            "imports_per_s": round(done / span, 2) if span else None,
            "last_done_s": round(span, 3) if span else None,
        },
        "fifo": {
            "by_upstream": _fifo(connected, lambda i: i.user.source),
            "by_hub_upstream": _fifo(connected, lambda i: f"hub{i.user.hub}/{i.user.source}"),
        },
        "max_concurrent_running": concurrency,
        "max_concurrent_configured": None if opts.hubs else opts.max_concurrent,
        "over_configured": breaches,
        "saw_position_before_started": saw_position(connected),
        "time_to_first_queued_ms": summary(to_queued, 1000),
        "time_to_ticket_ms": summary(to_ticket, 1000),
        "position_update_latency_ms": {
            "pairs": summary(latency_samples, 1000),
            "last_waiter_per_departure": summary((w for _, w in worst), 1000),
            **dict(lat_counts),
        },
        "eta_error": {
            "imports": len(eta_pairs),
            "abs_pct": summary(errors, 1, 1),
            "signed_s": summary(signed, 1, 2),
            "note": "abs % = |first eta - real wait| / max(real wait, 1 s)",
        },
        "sockets_dropped": dict(drops),
        "churn": {
            "churned": run.tally.churned,
            "resumed": run.tally.resumed,
            "starts_only_replayed": sum(i.start_estimated for i in imports),
            "ended_while_away": sum(i.ended_away_since is not None for i in imports),
        },
        "client_messages": run.tally.messages,
        "footprint": _footprint(run),
        "hub_logs": run.hub_logs,
        "hub_log_errors": _log_errors(run.hub_logs),
    }
    report["running_at_once"] = running_at_once(report)
    # Still waiting or running when the run ended: open until then.
    waiting_spans = [
        (i.ticket_at, i.departure if i.departure is not None else timing.ended)
        for i in connected
        if i.ticket_at is not None and i.first_queued is not None
    ]
    running_spans = [
        (i.start, i.end if i.end is not None else timing.ended)
        for i in connected
        if i.start is not None
    ]
    series = {
        "queue": _thin([(t - t0, float(v)) for t, v in step_series(waiting_spans)]),
        "running": _thin([(t - t0, float(v)) for t, v in step_series(running_spans)]),
        "latency_worst_s": _thin(worst),
        "latency_mean_s": _thin(mean_by_dep),
        "footprint": {
            name: [[round(s.t - t0, 2), round(s.rss_mb, 1), round(s.cpu_pct, 1)] for s in samples]
            for name, samples in (run.monitor.samples.items() if run.monitor else [])
        },
    }
    return report, series


def _log_errors(paths: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        bad = [ln for ln in lines if '"error"' in ln or "ERROR" in ln or "Traceback" in ln]
        entry: dict[str, Any] = {"lines": len(bad), "first": bad[:5]}
        # The hub logs each admission with the slots in use: its own view of concurrency.
        in_use = [_slots_in_use(ln) for ln in lines if "slots_in_use" in ln and "slot acq" in ln]
        if in_use:
            entry["admissions_logged"] = len(in_use)
            entry["max_slots_in_use_at_admission"] = max(in_use)
        out[Path(path).name] = entry
    return out


def _slots_in_use(line: str) -> int:
    try:
        return int(json.loads(line).get("slots_in_use", 0))
    except (ValueError, AttributeError):
        return 0


def table(report: dict[str, Any], console: Console) -> None:
    t = Table(title=f"load run: {report['scenario']}, {report['options']['sockets']} sockets")
    t.add_column("figure")
    t.add_column("value")
    c = report["completion"]
    t.add_row(
        "connected / failed", f"{report['connect']['connected']} / {report['connect']['failed']}"
    )
    t.add_row("done / failed / lost", f"{c['done']} / {c['failed']} / {c['lost']}")
    t.add_row("imports per s", str(c["imports_per_s"]))
    fifo = ", ".join(f"{k}: {v['inversions']}" for k, v in report["fifo"]["by_upstream"].items())
    t.add_row("FIFO inversions", fifo or "-")
    t.add_row("running at once", report["running_at_once"])
    k = report["time_to_ticket_ms"]
    t.add_row("ticket p50 / p99 ms", f"{_ms(k['p50'])} / {_ms(k['p99'])}")
    q = report["time_to_first_queued_ms"]
    t.add_row("first queued p50 / p99 ms", f"{_ms(q['p50'])} / {_ms(q['p99'])}")
    w = report["saw_position_before_started"]
    t.add_row("saw a position before started", f"{w['saw_position']} of {w['waited']} that waited")
    lat = report["position_update_latency_ms"]
    pairs = lat["pairs"]
    t.add_row("position update p50 / p99 ms", f"{_ms(pairs['p50'])} / {_ms(pairs['p99'])}")
    last = lat["last_waiter_per_departure"]
    t.add_row("last waiter per departure p50 / max ms", f"{_ms(last['p50'])} / {_ms(last['max'])}")
    e = report["eta_error"]["abs_pct"]
    t.add_row("ETA abs error p50 / p90 %", f"{e['p50']} / {e['p90']}")
    hub = report["footprint"].get("hub0", {})
    if hub:
        t.add_row(
            "hub RSS peak MB / CPU mean %",
            f"{hub.get('rss_peak_mb')} / {hub.get('cpu_mean_pct')}",
        )
    t.add_row("sockets dropped", str(sum(report["sockets_dropped"].values())))
    console.print(t)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
