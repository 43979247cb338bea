"""`python -m load.bench.join20k`: 20,000 sockets join one hub process, then one slot frees.

The hub's slot is held (`load/bench/line.py`). Client processes open N sockets, each from its own
127.x.y.z address, then every socket sends `import` for a player of its own, all at once; each
waits for its `ticket` and its first `queued`. Reported: the join rate (sockets that have both,
over the time from the first `import` sent to the last first `queued`), the times to `ticket`
and to the first `queued`, and, once the line is quiet, the time from the slot freeing (the
cancelled holder's `failed`) until the last of the N has its new position; beside it, the
same wave from a bare `websockets` server to N sockets of its own, just before and just after
the hub's (`--no-reference` skips it).

Each process may hold at most its open-files limit in descriptors, and the hub holds one per
socket plus its own: where the hard limit is below N plus that reserve, N is lowered to fit and
the report says so.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from load.bench.bare import bare_wave, start_bare
from load.bench.common import RESULTS, show, spread, write
from load.bench.line import HeldLine, held_hub, hub_wave, rss_mb
from load.bench.rawws import open_recorded
from load.bench.swarm import Swarm
from load.procs import Child, raise_nofile, run_async
from load.stats import ratio, summary

TARGET_RATE, AIM_RATE, TARGET_WAVE_S = 500.0, 1000.0, 1.0
RESERVE = 200  # descriptors the hub needs beside its sockets: listener, database, upstreams


def fitting(sockets: int) -> tuple[int, int]:
    """(sockets that fit under the open-files hard limit, that limit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return sockets, -1
    return min(sockets, hard - RESERVE), hard


def join_figures(sent: list[Any], joined: list[dict[str, Any]]) -> dict[str, Any]:
    sends = [t for j in joined for t in j["sent"] if t is not None]
    pairs = [
        (s, tk, q)
        for j in joined
        for s, tk, q in zip(j["sent"], j["ticket"], j["queued"], strict=True)
        if s is not None
    ]
    queued = sorted(q for _, _, q in pairs if q is not None)
    first_sent = min(s["began"] for s in sent)
    span = (queued[-1] - first_sent) if queued else None
    half = len(queued) // 2
    return {
        "sent_span_s": round(max(sends) - min(sends), 3) if sends else None,
        "joined": len(queued),
        "join_span_s": None if span is None else round(span, 3),
        "joins_per_s": None if not span else round(len(queued) / span, 1),
        # a rate that falls as the line grows shows here
        "joins_per_s_first_half": _rate(half, queued[half - 1] - first_sent) if half else None,
        "joins_per_s_second_half": _rate(len(queued) - half, queued[-1] - queued[half - 1])
        if half
        else None,
        "time_to_ticket_ms": summary((tk - s for s, tk, _ in pairs if tk is not None), 1000),
        "time_to_first_queued_ms": summary((q - s for s, _, q in pairs if q is not None), 1000),
        "missing": sum(j["missing"] for j in joined),
        "refused": [j["refused"] for j in joined if j["refused"]],
        "started_at_once": sum(j["started"] for j in joined),
    }


def last_waiter(wave: dict[str, Any]) -> Any:
    return wave["s"]["max"] if "s" in wave else wave.get("skipped") or wave.get("failed")


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


async def slot_frees(
    line: HeldLine, swarm: Swarm, bare: Child | None, bare_swarm: Swarm, processes: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The hub's wave; with a bare server, between two of its waves to as many sockets."""
    if bare is None:
        return await hub_wave(swarm, line), []
    count = sum(s["live"] for s in await swarm.ask({"cmd": "status"}))
    await bare_swarm.start(f"ws://127.0.0.1:{bare.port}/ws", count, processes, 1, True)
    control, seen = await open_recorded(f"ws://127.0.0.1:{bare.port}/control", "127.99.1.1")
    try:
        before = await bare_wave(bare_swarm, control, seen)
        wave = await hub_wave(swarm, line)
        after = await bare_wave(bare_swarm, control, seen)
    finally:
        control.close()
    return wave, [before, after]


async def bench(
    sockets: int, processes: int, join_timeout_s: float, reference: bool, work: Path
) -> dict[str, Any]:
    swarm, bare_swarm = Swarm(), Swarm()
    bare = start_bare(work / "bare.log") if reference else None
    bare_waves: list[dict[str, Any]] = []
    wave: dict[str, Any]
    try:
        async with held_hub(work, sockets, holders=2) as line:
            idle = rss_mb(line.pid)
            began = time.monotonic()
            connected = await swarm.start(line.ws_url, sockets, processes, first=100_001)
            connect_s = time.monotonic() - began
            sent = await swarm.ask({"cmd": "import", "names": "join{i}-p1x1"})
            joined = await swarm.ask(
                {"cmd": "joined", "timeout": join_timeout_s}, within_s=join_timeout_s + 120
            )
            figures = join_figures(sent, joined)
            settle = await swarm.quiet(2.0, 120.0)
            loaded = rss_mb(line.pid)
            if figures["missing"]:  # a wave to "every waiter" means nothing then
                wave = {"skipped": f"{figures['missing']} sockets had not joined in time"}
            else:
                try:
                    wave, bare_waves = await slot_frees(line, swarm, bare, bare_swarm, processes)
                except TimeoutError:
                    wave = {
                        "failed": "the slot or the wave did not come in time: the hub is behind"
                    }
    finally:
        await swarm.stop()
        await bare_swarm.stop()
        if bare is not None:
            bare.stop()
    ok = sum(c["ok"] for c in connected)
    bare_last = [w["s"]["max"] for w in bare_waves if w["s"]["max"] is not None]
    reference_s = round(statistics.mean(bare_last), 4) if bare_last else None
    return {
        "sockets": sockets,
        "client_processes": processes,
        "connect": {
            "ok": ok,
            "errors": [c["errors"] for c in connected if c["errors"]],
            "connect_s": round(connect_s, 3),
            "per_s": _rate(ok, connect_s),
        },
        "join": figures,
        "settle": settle,
        "wave": wave,
        "bare_waves": bare_waves,
        "bare_last_waiter_s": reference_s,
        "ratio_last_waiter_to_bare": ratio(wave.get("s", {}).get("max"), reference_s),
        "hub_rss_mb": {"idle": round(idle, 1), "loaded": round(loaded, 1)},
        "hub_kib_per_socket": round((loaded - idle) * 1024 / max(ok, 1), 2),
        "targets": {
            "joins_per_s": f">= {TARGET_RATE:.0f} (aim {AIM_RATE:.0f})",
            "last_waiter_s": f"<= {TARGET_WAVE_S}",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.join20k", description=__doc__)
    parser.add_argument("--sockets", type=int, default=20_000, help="default 20000")
    parser.add_argument("--processes", type=int, default=2, help="client processes (default 2)")
    parser.add_argument(
        "--join-timeout", type=float, default=900.0, help="most seconds for every socket to join"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the bare websockets server's wave"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    raise_nofile()
    sockets, hard = fitting(args.sockets)
    if sockets < args.sockets:
        print(
            f"the open-files hard limit is {hard}: one hub process can hold at most "
            f"{sockets} sockets here, not {args.sockets}; measuring {sockets}"
        )
    work = args.out / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-join20k"
    result = run_async(
        bench(sockets, args.processes, args.join_timeout, not args.no_reference, work)
    )
    result["asked_sockets"] = args.sockets
    result["open_files_hard_limit"] = hard
    j = result["join"]
    rows: list[list[Any]] = [
        ["joined", f"{j['joined']} of {sockets} ({j['missing']} missing)", ""],
        ["join rate /s", j["joins_per_s"], f">= {TARGET_RATE:.0f} (aim {AIM_RATE:.0f})"],
        ["join rate /s, first / second half",
         f"{j['joins_per_s_first_half']} / {j['joins_per_s_second_half']}", ""],
        ["ticket p50 / p99 ms", spread(j["time_to_ticket_ms"]), ""],
        ["first queued p50 / p99 ms", spread(j["time_to_first_queued_ms"]), ""],
        ["slot frees: last waiter s", last_waiter(result["wave"]), f"<= {TARGET_WAVE_S}"],
        ["slot frees: median waiter s", result["wave"].get("s", {}).get("p50"), ""],
        ["bare websockets, same wave: last socket s", result["bare_last_waiter_s"], ""],
        ["hub / bare, last", result["ratio_last_waiter_to_bare"], ""],
        ["hub KiB per socket", result["hub_kib_per_socket"], ""],
    ]  # fmt: skip
    show(f"{sockets} sockets join one hub", ["figure", "value", "target"], rows)
    print(write("join20k", result, args.out))


if __name__ == "__main__":
    main()
