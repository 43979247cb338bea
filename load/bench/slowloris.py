"""Slow HTTP clients: does the hub keep serving while many connections trickle their headers?

    python -m load.bench.slowloris [--connections 1000] [--seconds 60] [--header-timeout S]

Starts a `hub sim` and a `hub serve` on loopback ports. First, for `--baseline` seconds,
and then for `--seconds` while `--connections` connections each send an endless request
header one byte a second (reopening at once when the hub closes one, as an attacker
would), it measures:

- /healthz latency, a fresh connection every 100 ms (connect, request, answer);
- the page (`GET /`), a fresh connection every second;
- WebSocket imports, one after another, each on a new socket: seconds from `import`
  to `done`.

`--header-timeout` sets the hub's HUB_HEADER_TIMEOUT_S (its default if not given); a
very large value shows uvicorn without a header deadline. Loopback only; everything is
bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from load.bench.common import RESULTS, show, write
from load.procs import USER_AGENT, Monitor, raise_nofile, run_async, start_hub
from load.stats import summary

MAX_CONNECTIONS = 5000
MAX_SECONDS = 600.0
# A request line and then one header that never ends: a byte a second for as long as
# the hub listens (h11 would refuse it only after 16 KiB, four and a half hours).
HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "


@dataclass
class Slow:
    """What the slow connections went through."""

    opened: int = 0
    failed_to_open: int = 0
    closed_by_hub: int = 0
    lifetimes: list[float] = field(default_factory=list)  # of those the hub closed
    bytes_sent: int = 0
    open_now: int = 0
    open_peak: int = 0


@dataclass
class Phase:
    health: list[float] = field(default_factory=list)
    health_failed: int = 0
    page: list[float] = field(default_factory=list)
    page_failed: int = 0
    imports: list[float] = field(default_factory=list)
    imports_failed: int = 0


async def trickle(port: int, until: float, slow: Slow) -> None:
    """One slow client: a byte a second; a new connection whenever the hub closes one."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout=10
            )
        except (OSError, TimeoutError):
            slow.failed_to_open += 1
            await asyncio.sleep(0.5)
            continue
        slow.opened += 1
        slow.open_now += 1
        slow.open_peak = max(slow.open_peak, slow.open_now)
        began = time.monotonic()
        try:
            n = 0
            while time.monotonic() < until:
                writer.write(HEAD[n : n + 1] if n < len(HEAD) else b"a")
                n += 1
                slow.bytes_sent += 1
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                except TimeoutError:
                    continue
                if not data:  # the hub closed it
                    slow.closed_by_hub += 1
                    slow.lifetimes.append(time.monotonic() - began)
                    break
        except OSError:  # reset by the hub while writing
            slow.closed_by_hub += 1
            slow.lifetimes.append(time.monotonic() - began)
        finally:
            slow.open_now -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def probe_http(url: str, every_s: float, until: float, ok: list[float]) -> int:
    """GET `url` on a fresh connection every `every_s`; latencies into `ok`, failures counted."""
    failed = 0
    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"User-Agent": USER_AGENT}
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get(url, headers=headers) as response,
            ):
                await response.read()
                if response.status != 200:
                    raise aiohttp.ClientError(f"status {response.status}")
            ok.append(time.monotonic() - began)
        except (aiohttp.ClientError, TimeoutError, OSError):
            failed += 1
        await asyncio.sleep(max(0.0, began + every_s - time.monotonic()))
    return failed


async def imports(ws_url: str, tag: str, until: float, phase: Phase) -> None:
    """Imports one after another, each from a new socket, until `until`."""
    n = 0
    while time.monotonic() < until:
        n += 1
        request = {"type": "import", "source": "chesscom", "username": f"{tag}{n}-p5x20"}
        try:
            async with asyncio.timeout(60):
                async with websockets.connect(ws_url, compression=None, proxy=None) as ws:
                    await ws.recv()
                    began = time.monotonic()
                    await ws.send(json.dumps(request))
                    async for raw in ws:
                        kind = json.loads(raw)["type"]
                        if kind in ("done", "failed"):
                            break
                    if kind != "done":
                        raise RuntimeError(kind)
            phase.imports.append(time.monotonic() - began)
        except (OSError, TimeoutError, RuntimeError, websockets.WebSocketException):
            phase.imports_failed += 1


async def measure(base: str, ws_url: str, tag: str, seconds: float) -> Phase:
    phase = Phase()
    until = time.monotonic() + seconds
    health, page, _ = await asyncio.gather(
        probe_http(f"{base}/healthz", 0.1, until, phase.health),
        probe_http(f"{base}/", 1.0, until, phase.page),
        imports(ws_url, tag, until, phase),
    )
    phase.health_failed, phase.page_failed = health, page
    return phase


async def run(args: argparse.Namespace, base: str, ws_url: str, port: int) -> dict[str, Any]:
    baseline = await measure(base, ws_url, "calm", args.baseline)
    slow = Slow()
    until = time.monotonic() + args.seconds
    trickles = []
    for i in range(args.connections):  # opened in batches so the accept queue keeps up
        trickles.append(asyncio.create_task(trickle(port, until, slow)))
        if i % 100 == 99:
            await asyncio.sleep(0.1)
    loaded = await measure(base, ws_url, "under", max(1.0, until - time.monotonic()))
    await asyncio.gather(*trickles)
    return {"baseline": report(baseline), "under_slow_clients": report(loaded), "slow": slow}


def report(phase: Phase) -> dict[str, Any]:
    return {
        "healthz_ms": summary(phase.health, scale=1000, digits=1),
        "healthz_failed": phase.health_failed,
        "page_ms": summary(phase.page, scale=1000, digits=1),
        "page_failed": phase.page_failed,
        "import_s": summary(phase.imports, digits=3),
        "imports_failed": phase.imports_failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m load.bench.slowloris", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="with slow clients")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds without")
    parser.add_argument(
        "--header-timeout", type=float, default=None, help="HUB_HEADER_TIMEOUT_S for the hub"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        raise SystemExit(f"--connections must be between 1 and {MAX_CONNECTIONS}")
    if not 0 < args.seconds + args.baseline <= MAX_SECONDS:
        raise SystemExit(f"--seconds plus --baseline must be at most {MAX_SECONDS:g}")
    raise_nofile()
    env = {"HUB_MAX_TICKETS_PER_IP": "1000"}
    if args.header_timeout is not None:
        env["HUB_HEADER_TIMEOUT_S"] = str(args.header_timeout)
    with tempfile.TemporaryDirectory(prefix="slowloris-") as tmp:
        setup = start_hub(Path(tmp), max_concurrent=2, latency_ms=5, lichess_gps=0, env=env)
        monitor = Monitor({"hub": setup.hub.pid}).start()
        try:
            result = run_async(run(args, setup.hub.url, setup.hub.ws_url, setup.hub.port))
        finally:
            monitor.stop()
            setup.stop()
    slow: Slow = result.pop("slow")
    lifetimes = summary(slow.lifetimes, digits=2)
    result["slow"] = {
        "connections": args.connections,
        "seconds": args.seconds,
        "opened": slow.opened,
        "open_peak": slow.open_peak,
        "failed_to_open": slow.failed_to_open,
        "closed_by_hub": slow.closed_by_hub,
        "lifetime_s": lifetimes,
        "bytes_sent": slow.bytes_sent,
    }
    result["header_timeout_s"] = args.header_timeout
    result["hub_process"] = monitor.summary("hub")
    path = write("slowloris", result, args.out)
    rows = []
    for label, name in (("calm", "baseline"), ("slow", "under_slow_clients")):
        r = result[name]
        health, page, done = r["healthz_ms"], r["page_ms"], r["import_s"]
        health_row = [health["p50"], health["p99"], health["max"], r["healthz_failed"]]
        rest = [page["p99"], r["page_failed"], done["n"], done["p50"], r["imports_failed"]]
        rows.append([label, *health_row, *rest])
    header = ["phase", "/healthz p50 ms", "p99", "max", "fail", "/ p99 ms", "fail"]
    show("slow clients", [*header, "imports", "p50 s", "fail"], rows)
    print(
        f"slow connections: opened {slow.opened}, at most {slow.open_peak} at once, "
        f"closed by the hub {slow.closed_by_hub} after {lifetimes['p50']} s (p50), "
        f"hub descriptors at most {result['hub_process'].get('fds_peak')}"
    )
    print(f"result: {path}")


if __name__ == "__main__":
    main()
