"""Fleet benchmark: how fast a change on one replica reaches browsers on the others.

    python -m load.bench.fleet [--replicas 3] [--imports 30] [--pages 3]

Three figures, each beside its single-node reference measured in the same run:

- position latency: from the `started` of the import ahead (seen by its own
  browser) to each waiter's `queued` with a smaller position;
- progress latency: the same `progress` delivered to the import's own browser
  on the replica that runs it and to a browser that joined it on another
  replica (one event, two arrival times);
- admit latency: from the `done` of an import to the `started` of the next.

Needs PostgreSQL (`TEST_DATABASE_URL`, default postgresql://postgres@127.0.0.1:5432/test);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import websockets

from load.bench.common import show, write
from load.procs import Child, raise_nofile, spawn
from load.stats import percentile

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Browser:
    replica: int
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def first(self, kind: str) -> float | None:
        return next((t for t, m in self.messages if m["type"] == kind), None)


async def follow(url: str, replica: int, request: dict[str, Any], out: list[Browser]) -> None:
    browser = Browser(replica)
    out.append(browser)
    async with websockets.connect(url, compression=None, proxy=None, open_timeout=20) as ws:
        await ws.recv()
        await ws.send(json.dumps(request))
        async with asyncio.timeout(300):
            async for raw in ws:
                message = json.loads(raw)
                browser.messages.append((time.monotonic(), message))
                if message["type"] in ("done", "failed"):
                    return


async def run_line(urls: list[str], imports: int, pages: int, tag: str) -> list[Browser]:
    """One slot, `imports` chess.com imports spread over the replicas, each with a joiner."""
    owners: list[Browser] = []
    joiners: list[Browser] = []
    tasks = []
    for n in range(imports):
        request = {"type": "import", "source": "chesscom", "username": f"{tag}{n}-p{pages}x5"}
        home = n % len(urls)
        tasks.append(asyncio.create_task(follow(urls[home], home, request, owners)))
        await asyncio.sleep(0.05)  # a well-defined order of arrival
        other = (home + 1) % len(urls)
        tasks.append(asyncio.create_task(follow(urls[other], other, request, joiners)))
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    return owners + joiners


def figures(browsers: list[Browser]) -> dict[str, list[float]]:
    by_import: dict[str, list[Browser]] = {}
    for b in browsers:
        ticket = next(m for _, m in b.messages if m["type"] == "ticket")
        by_import.setdefault(ticket["import_id"], []).append(b)
    # An import is as early as the first of its browsers to hear of it: the one on the
    # replica that runs it hears first, the other one after a NOTIFY.
    starts = sorted(
        (min(b.first("started") or float("inf") for b in group), import_id)
        for import_id, group in by_import.items()
    )
    # Each position a waiter loses is owed to the admission just before it (or a hair
    # after: two sockets' clocks are read by one client, but arrive in either order).
    admitted = [t for t, _ in starts]
    position: list[float] = []
    for group in by_import.values():
        for b in group:
            last: int | None = None
            for arrived, m in b.messages:
                if m["type"] != "queued":
                    continue
                if last is not None and m["position"] < last:
                    cause = [t for t in admitted if t <= arrived + 0.005]
                    if cause:
                        position.append(max(arrived - cause[-1], 0.0))
                last = m["position"]
    progress: list[float] = []
    for group in by_import.values():
        if len(group) < 2:
            continue
        pages = [
            {m["page"]: t for t, m in b.messages if m["type"] == "progress" and "waiting" not in m}
            for b in group
        ]
        for page, at in pages[0].items():
            if page in pages[1]:
                progress.append(abs(pages[1][page] - at))
    ends = sorted(
        min(b.first("done") or float("inf") for b in group) for group in by_import.values()
    )
    admit = []
    for done_at in ends[:-1]:
        # The next start may be read a hair before the done, on another socket.
        nxt = [s for s, _ in starts if s >= done_at - 0.005]
        if nxt:
            admit.append(max(nxt[0] - done_at, 0.0))
    return {"position": position, "progress": progress, "admit": admit}


def ms(values: list[float], q: float) -> float | None:
    value = percentile(sorted(values), q)
    return None if value is None else round(value * 1000, 1)


async def scratch_database() -> tuple[str, str]:
    name = "hub_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


def start(workdir: Path, database_url: str, replicas: int) -> tuple[Child, list[Child]]:
    sim = spawn(
        ["-m", "hub", "sim", "--log-level", "warning", "--latency-ms", "30"],
        workdir / "sim.log",
        "/_sim/stats",
    )
    env = {
        "HUB_CHESSCOM_URL": sim.url,
        "HUB_LICHESS_URL": sim.url,
        "DATABASE_URL": database_url,
        "MAX_CONCURRENT_IMPORTS": "1",
        "HUB_MAX_TICKETS_PER_IP": "100000",
        "HUB_MAX_SOCKETS_PER_IP": "100000",
    }
    hubs = [
        spawn(
            ["-m", "hub", "serve", "--log-level", "warning"],
            workdir / f"hub{n}.log",
            "/healthz",
            env=env,
        )
        for n in range(replicas)
    ]
    return sim, hubs


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Reference: one replica, SQLite; every browser on it.
        sim, hubs = start(work / "single", f"sqlite:///{work / 'single.db'}", 1)
        try:
            browsers = await run_line([h.ws_url for h in hubs], args.imports, args.pages, "single")
            results["single node"] = figures(browsers)
        finally:
            for child in (*hubs, sim):
                child.stop()
        name, url = await scratch_database()
        sim, hubs = start(work / "fleet", url, args.replicas)
        try:
            browsers = await run_line([h.ws_url for h in hubs], args.imports, args.pages, "fleet")
            results[f"fleet of {args.replicas}"] = figures(browsers)
        finally:
            for child in (*hubs, sim):
                child.stop()
            await drop_database(name)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.fleet", description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--imports", type=int, default=30)
    parser.add_argument("--pages", type=int, default=3)
    args = parser.parse_args()
    raise_nofile()
    results = asyncio.run(measure(args))
    rows = []
    summary: dict[str, Any] = {}
    for setup, figs in results.items():
        for name, values in figs.items():
            p50, p99 = ms(values, 50), ms(values, 99)
            rows.append([setup, name, len(values), p50, p99])
            summary[f"{setup}/{name}"] = {"n": len(values), "p50_ms": p50, "p99_ms": p99}
    single = results["single node"]
    fleet = results[f"fleet of {args.replicas}"]
    ratios = {}
    for name in ("position", "admit"):
        ref, got = ms(single[name], 99), ms(fleet[name], 99)
        if ref and got:
            ratios[f"{name} p99 fleet / single"] = round(got / ref, 2)
    show(
        "cross-replica latency (ms)",
        ["setup", "figure", "n", "p50", "p99"],
        rows,
    )
    path = write("fleet", {"args": vars(args), "figures": summary, "ratios": ratios})
    print(ratios)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
