"""Resizing the slots live: how soon do the next waiters start, and everyone's place follow?

    python -m load.bench.resize [--rounds 5] [--waiting 8]

Starts a `hub sim` (50 ms a response) and a `hub serve` with 2 slots (the chess.com lane
allows 8) and an admin token. Each round, 2 + `--waiting` long chess.com imports join
(2 run, the rest wait), then `POST /admin/slots {"slots": 4}`. Figures, from the moment
the request is sent, as the browsers receive them:

- the admin answer;
- the `started` of the two waiters at the head (goal: within 100 ms);
- the `queued` of every other waiter with its new place (two up) and an estimate that
  fell with it; places go out in passes, at most HUB_QUEUED_HZ (2) a second, so this
  is bounded by 1 / HUB_QUEUED_HZ.

Reference, in the same run: an ordinary admission, from the `done` of the first running
import to finish to the `started` of the waiter that takes its slot. Then the caps go
back to 2 and the round's imports are cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from load.bench.common import RESULTS, show, write
from load.procs import USER_AGENT, Child, raise_nofile, run_async, start_hub
from load.stats import summary

MAX_ROUNDS = 50
MAX_WAITING = 200
Message = dict[str, Any]


@dataclass
class Browser:
    conn: ClientConnection
    messages: list[tuple[float, Message]] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def read(self) -> None:
        async for raw in self.conn:
            async with self.arrived:
                self.messages.append((time.monotonic(), json.loads(raw)))
                self.arrived.notify_all()

    async def until(self, test: Callable[[Message], bool], after: float = 0.0) -> float:
        """When the first message after `after` that passes `test` arrived."""
        async with asyncio.timeout(120), self.arrived:
            while True:
                for t, m in self.messages:
                    if t >= after and test(m):
                        return t
                await self.arrived.wait()

    def last(self, kind: str) -> Message:
        return next(m for _, m in reversed(self.messages) if m["type"] == kind)


def queued_at(place: int) -> Callable[[Message], bool]:
    return lambda m: m["type"] == "queued" and m["position"] == place


def admin(hub: Child, token: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        hub.url + path,
        data=json.dumps(body).encode() if body is not None else b"",
        method="POST",
        headers={"User-Agent": USER_AGENT, "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def one_round(hub: Child, token: str, waiting: int, tag: str) -> dict[str, Any]:
    browsers: list[Browser] = []
    readers = []
    for n in range(2 + waiting):
        conn = await websockets.connect(hub.ws_url, compression=None, proxy=None)
        browser = Browser(conn)
        browsers.append(browser)
        readers.append(asyncio.create_task(browser.read()))
        request = {"type": "import", "source": "chesscom", "username": f"{tag}{n}-p60x2"}
        await conn.send(json.dumps(request))
        await browser.until(lambda m: m["type"] == "ticket")
    for browser in browsers[:2]:
        await browser.until(lambda m: m["type"] == "started")
    for place, browser in enumerate(browsers[2:], start=1):
        await browser.until(queued_at(place))
    # The estimates are known by now; a random pause so that the resize falls anywhere in
    # the cycle of position passes (at most HUB_QUEUED_HZ a second), not always just after one.
    await asyncio.sleep(random.uniform(0.5, 1.5))
    before = {id(b): b.last("queued")["eta_s"] for b in browsers[4:]}

    sent = time.monotonic()
    # In a thread, so that the readers note each message as it arrives.
    await asyncio.to_thread(admin, hub, token, "/admin/slots", {"slots": 4})
    answered = time.monotonic() - sent
    starts = [await b.until(lambda m: m["type"] == "started", sent) - sent for b in browsers[2:4]]
    moves = []
    for place, browser in enumerate(browsers[4:], start=1):
        moves.append(await browser.until(queued_at(place), sent) - sent)
    fell = sum(1 for b in browsers[4:] if b.last("queued")["eta_s"] < before[id(b)])

    # The reference: a running import ends, and the next waiter takes its slot.
    done = min(
        [await b.until(lambda m: m["type"] in ("done", "failed"), sent) for b in browsers[:4]]
    )
    taken = await browsers[4].until(lambda m: m["type"] == "started", sent)
    await asyncio.to_thread(admin, hub, token, "/admin/slots", {"slots": 2})
    for browser in browsers:
        if not any(m["type"] in ("done", "failed") for _, m in browser.messages):
            cancel = {"type": "cancel", "ticket": browser.last("ticket")["ticket"]}
            await browser.conn.send(json.dumps(cancel))
            await browser.until(lambda m: m["type"] in ("done", "failed"))
    for browser in browsers:
        await browser.conn.close()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "answer_s": answered,
        "start_s": starts,
        "position_s": moves,
        "estimates_fell": fell,
        "waiters_moved": len(moves),
        "reference_s": max(taken - done, 0.0),
    }


async def measure(args: argparse.Namespace, hub: Child, token: str) -> list[dict[str, Any]]:
    return [await one_round(hub, token, args.waiting, f"resize{r}-") for r in range(args.rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.resize", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--waiting", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 1 <= args.rounds <= MAX_ROUNDS or not 3 <= args.waiting <= MAX_WAITING:
        raise SystemExit(f"--rounds 1..{MAX_ROUNDS}, --waiting 3..{MAX_WAITING}")
    raise_nofile()
    token = secrets.token_urlsafe(24)
    env = {
        "HUB_ADMIN_TOKEN": token,
        "HUB_LANE_CHESSCOM": "8",
        "HUB_MAX_TICKETS_PER_IP": "100000",
        "HUB_MAX_SOCKETS_PER_IP": "100000",
    }
    with tempfile.TemporaryDirectory(prefix="resize-") as tmp:
        setup = start_hub(Path(tmp), max_concurrent=2, latency_ms=50, lichess_gps=0, env=env)
        try:
            rounds = run_async(measure(args, setup.hub, token))
        finally:
            setup.stop()
    figures = {
        "admin_answer_ms": summary([r["answer_s"] for r in rounds], scale=1000, digits=1),
        "two_started_ms": summary([max(r["start_s"]) for r in rounds], scale=1000, digits=1),
        "every_place_followed_ms": summary(
            [max(r["position_s"]) for r in rounds], scale=1000, digits=1
        ),
        "reference_admission_ms": summary([r["reference_s"] for r in rounds], scale=1000, digits=1),
        "estimates_fell": f"{sum(r['estimates_fell'] for r in rounds)}"
        f" of {sum(r['waiters_moved'] for r in rounds)}",
    }
    settings = {"rounds": args.rounds, "waiting": args.waiting}
    path = write("resize", {"args": settings, **figures}, args.out)
    rows = [
        [name, *(v if not isinstance(v, dict) else [v["p50"], v["max"]])]
        if isinstance(v, dict)
        else [name, v, ""]
        for name, v in figures.items()
    ]
    show("POST /admin/slots 2 -> 4", ["figure", "p50", "max"], rows)
    print(f"result: {path}")


if __name__ == "__main__":
    main()
