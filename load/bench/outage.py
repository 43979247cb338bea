"""A chess.com outage with imports waiting: does any fail, and how many requests does it cost?

    python -m load.bench.outage [--outage-s 60] [--chesscom 20] [--lichess 12]

Starts a `hub sim` (50 ms a response, lichess at 20 games a second) and a `hub serve`
with 2 slots and the default breaker (HUB_BREAKER_FAILURES 5, HUB_BREAKER_PROBE_S 30).
`--chesscom` chess.com imports and `--lichess` lichess imports join the line, one of
each kind alternating; once the first chess.com import has stored a page, the simulator
answers 503 to every chess.com request for `--outage-s` seconds. Figures:

- chess.com imports that failed (the goal: none);
- chess.com requests during the outage (the simulator's own count), against the bound
  HUB_BREAKER_FAILURES + outage / HUB_BREAKER_PROBE_S + 2;
- lichess imports admitted and finished during the outage;
- seconds from the end of the outage until the last chess.com import is done (goal
  at most 120), and whether every player's stored games equal the simulator's truth;
- how long the breaker took to open and to close, seen from the browsers (the first
  `queued` with `paused`, the first `started` after the outage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from load.bench.common import RESULTS, show, write
from load.procs import USER_AGENT, Child, raise_nofile, run_async, start_hub

MAX_IMPORTS = 200
MAX_OUTAGE_S = 600.0
FAILURES, PROBE_S = 5, 30.0  # the hub's defaults, which this measures


@dataclass
class Browser:
    source: str
    username: str
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    progressed: asyncio.Event = field(default_factory=asyncio.Event)

    def first(self, kind: str, after: float = 0.0) -> float | None:
        return next((t for t, m in self.messages if m["type"] == kind and t >= after), None)

    def end(self) -> dict[str, Any] | None:
        return next((m for _, m in self.messages if m["type"] in ("done", "failed")), None)


async def follow(url: str, browser: Browser, joined: asyncio.Event) -> None:
    async with websockets.connect(url, compression=None, proxy=None, open_timeout=20) as ws:
        await ws.recv()
        request = {"type": "import", "source": browser.source, "username": browser.username}
        await ws.send(json.dumps(request))
        async with asyncio.timeout(MAX_OUTAGE_S + 900):
            async for raw in ws:
                message = json.loads(raw)
                browser.messages.append((time.monotonic(), message))
                if message["type"] == "ticket":
                    joined.set()
                if message["type"] == "progress":
                    browser.progressed.set()
                if message["type"] in ("done", "failed"):
                    return


def call(url: str, method: str = "GET") -> Any:
    data = b"" if method == "POST" else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"User-Agent": USER_AGENT}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def scenario(args: argparse.Namespace, hub: Child, sim: Child, db: Path) -> dict[str, Any]:
    browsers: list[Browser] = []
    tasks = []
    for n in range(max(args.chesscom, args.lichess)):
        for source, count, player in (
            ("chesscom", args.chesscom, f"outage{n}-p8x10"),
            ("lichess", args.lichess, f"outagel{n}-p1x60"),
        ):
            if n < count:
                browser = Browser(source, player)
                browsers.append(browser)
                joined = asyncio.Event()
                tasks.append(asyncio.create_task(follow(hub.ws_url, browser, joined)))
                await joined.wait()  # a well-defined order of arrival
    chesscom = [b for b in browsers if b.source == "chesscom"]
    lichess = [b for b in browsers if b.source == "lichess"]
    async with asyncio.timeout(60):
        await chesscom[0].progressed.wait()
    call(f"{sim.url}/_sim/outage/chesscom?s={args.outage_s}", "POST")
    began = time.monotonic()
    await asyncio.sleep(args.outage_s)
    ended = time.monotonic()
    refused = call(f"{sim.url}/_sim/outage/chesscom")["refused"]
    await asyncio.gather(*tasks)
    finished = time.monotonic()

    ends = [b.end() for b in chesscom]
    failed = [e for e in ends if e is None or e["type"] != "done"]
    lichess_started = [t for b in lichess if began <= (t := b.first("started") or -1) <= ended]
    lichess_done = [t for b in lichess if began <= (t := b.first("done") or -1) <= ended]
    last_done = max(b.first("done") or finished for b in chesscom)
    told = sum(1 for b in chesscom if _paused_at(b, began) is not None)
    opened = min((_paused_at(b, began) or finished for b in chesscom), default=finished)
    again = min((b.first("started", ended) or finished for b in chesscom), default=finished)
    equal = all(
        _stored(db, b.source, b.username)
        == set(call(f"{sim.url}/_sim/truth/{b.source}/{b.username}")["games"])
        for b in browsers
    )
    bound = FAILURES + args.outage_s / PROBE_S + 2
    return {
        "chesscom_imports": len(chesscom),
        "lichess_imports": len(lichess),
        "outage_s": args.outage_s,
        "chesscom_failed": len(failed),
        "chesscom_requests_during_outage": refused,
        "request_bound": bound,
        "lichess_admitted_during_outage": len(lichess_started),
        "lichess_done_during_outage": len(lichess_done),
        "chesscom_all_done_after_outage_s": round(max(last_done - ended, 0.0), 2),
        "stored_equal_truth": equal,
        "chesscom_told_paused": told,
        "breaker_opened_after_s": round(opened - began, 2),
        "first_chesscom_start_after_outage_s": round(again - ended, 2),
        "sent_back": sum(1 for b in chesscom if _sent_back(b)),
    }


def _paused_at(browser: Browser, after: float) -> float | None:
    return next(
        (t for t, m in browser.messages if m["type"] == "queued" and "paused" in m and t >= after),
        None,
    )


def _sent_back(browser: Browser) -> bool:
    kinds = [m["type"] for _, m in browser.messages]
    return "started" in kinds and "queued" in kinds[kinds.index("started") :]


def _stored(db: Path, source: str, username: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT game_id FROM player_games WHERE source = ? AND username = ?",
            (source, username),
        ).fetchall()
    return {row[0] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.outage", description=__doc__)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--chesscom", type=int, default=20)
    parser.add_argument("--lichess", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 1 <= args.chesscom <= MAX_IMPORTS or not 0 <= args.lichess <= MAX_IMPORTS:
        raise SystemExit(f"--chesscom and --lichess must be at most {MAX_IMPORTS}")
    if not 0 < args.outage_s <= MAX_OUTAGE_S:
        raise SystemExit(f"--outage-s must be in (0, {MAX_OUTAGE_S:g}]")
    raise_nofile()
    env = {"HUB_MAX_TICKETS_PER_IP": "100000", "HUB_MAX_SOCKETS_PER_IP": "100000"}
    with tempfile.TemporaryDirectory(prefix="outage-") as tmp:
        setup = start_hub(Path(tmp), max_concurrent=2, latency_ms=50, lichess_gps=20, env=env)
        try:
            result = run_async(scenario(args, setup.hub, setup.sim, Path(tmp) / "hub.db"))
        finally:
            setup.stop()
    settings = {"outage_s": args.outage_s, "chesscom": args.chesscom, "lichess": args.lichess}
    path = write("outage", {"args": settings, **result}, args.out)
    rows = [[name, value] for name, value in result.items()]
    show(f"{args.outage_s:g} s chess.com outage", ["figure", "value"], rows)
    print(f"result: {path}")


if __name__ == "__main__":
    main()
