"""Drive one load run: hubs up (or given), users connected, scenario played, everything recorded."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from load.client import Context, Tally, User, close_all, loopback_address, run_user
from load.extra import missing
from load.procs import HubSetup, Monitor, raise_nofile, run_async, start_hub

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
except ModuleNotFoundError as exc:
    raise missing(exc) from None


@dataclass
class Options:
    sockets: int = 1000
    hubs: list[str] = field(default_factory=list)  # ws URLs; empty: start our own
    scenario: str = "burst"
    rate: float = 100.0
    churn: float = 0.2
    churn_delay_s: float = 3.0
    churn_after_s: tuple[float, float] = (0.5, 5.0)
    source: str = "chesscom"
    player_pages: int = 1
    player_games: int = 5
    timeout_s: float = 600.0
    out: Path = Path("load/results")
    max_concurrent: int = 2
    latency_ms: float = 5.0
    lichess_gps: float = 0.0
    hub_env: dict[str, str] = field(default_factory=dict)
    hub_pids: list[int] = field(default_factory=list)
    connect_concurrency: int = 200
    open_timeout_s: float = 30.0
    seed: int = 1
    plot: bool = True
    hub_log_level: str = "info"  # the hub logs every admission with the slots in use
    distinct_addresses: bool = True  # each user connects from its own 127.x.y.z


@dataclass
class RunData:
    options: Options
    users: list[User]
    urls: list[str]
    tally: Tally
    timing: Timing
    nofile: int
    monitor: Monitor | None
    hub_logs: list[str] = field(default_factory=list)


def player(index: int, pages: int, games: int) -> str:
    return f"load{index}-p{pages}x{games}"


def make_users(opts: Options, urls: list[str]) -> list[User]:
    rng = random.Random(opts.seed)
    users = []
    for i in range(opts.sockets):
        source = opts.source if opts.source != "mixed" else ("chesscom", "lichess")[i % 2]
        churn_after = None
        if opts.scenario == "churn" and rng.random() < opts.churn:
            churn_after = rng.uniform(*opts.churn_after_s)
        users.append(
            User(
                index=i,
                hub=i % len(urls),
                url=urls[i % len(urls)],
                source=source,
                username=player(i, opts.player_pages, opts.player_games),
                churn_after_s=churn_after,
                local_address=loopback_address(i) if opts.distinct_addresses else None,
            )
        )
    return users


def _status(t: Tally, n: int) -> str:
    return (
        f"conn {t.connected}/{n} fail {t.connect_failed} | sent {t.sent} | waiting {t.waiting} "
        f"running {t.running} | done {t.done} failed {t.failed} | churned {t.churned} "
        f"resumed {t.resumed} dropped {t.dropped} | msgs {t.messages}"
    )


@dataclass
class Timing:
    began: float  # monotonic: the first connection attempt
    started: float  # imports sent (burst, churn) or the first arrival (ramp)
    connected_at: float  # every connection attempt finished (burst, churn)
    ended: float
    timed_out: bool


async def drive(
    opts: Options, urls: list[str], console: Console
) -> tuple[list[User], Tally, Timing]:
    """Play the scenario; returns the users, the final counts and the timing."""
    users = make_users(opts, urls)
    began = time.monotonic()
    tally = Tally()
    burst = opts.scenario in ("burst", "churn")
    ctx = Context(
        tally=tally,
        connect_slots=asyncio.Semaphore(opts.connect_concurrency),
        open_timeout=opts.open_timeout_s,
        go=asyncio.Event() if burst else None,
        t0=time.monotonic() + 0.5,
        rate=opts.rate,
        churn_delay_s=opts.churn_delay_s,
    )
    deadline = time.monotonic() + opts.timeout_s
    tasks = [asyncio.create_task(run_user(u, ctx), name=f"user-{u.index}") for u in users]
    started = connected_at = ctx.t0
    n = len(users)
    plain = not console.is_terminal
    last_line = 0.0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=plain,
        refresh_per_second=4,
    ) as progress:
        bar = progress.add_task("connect", total=n, status="")
        while time.monotonic() < deadline:
            if (
                ctx.go is not None
                and not ctx.go.is_set()
                and tally.attempted >= n
                and (tally.connected + tally.connect_failed >= n)
            ):
                connected_at = started = time.monotonic()
                ctx.go.set()
                progress.update(bar, description="import", completed=0)
            finished = tally.done + tally.failed + tally.connect_failed
            phase_done = finished if (ctx.go is None or ctx.go.is_set()) else tally.connected
            progress.update(bar, completed=phase_done, status=_status(tally, n))
            if plain and time.monotonic() - last_line >= 5.0:
                last_line = time.monotonic()
                console.print(
                    f"[{time.monotonic() - ctx.t0:7.1f}s] {_status(tally, n)}", highlight=False
                )
            if all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.25)
    ended = time.monotonic()
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*pending, return_exceptions=True)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            console.print(f"user task failed: {t.get_name()}: {t.exception()!r}", highlight=False)
    await close_all(users)
    return users, tally, Timing(began, started, connected_at, ended, bool(pending))


@contextlib.contextmanager
def hubs_for(opts: Options, workdir: Path) -> Iterator[tuple[list[str], HubSetup | None]]:
    if opts.hubs:
        yield opts.hubs, None
        return
    env: dict[str, str] = {"HUB_LOG_JSON": "1"}
    if opts.sockets > 10_000:
        env["HUB_MAX_QUEUE"] = str(opts.sockets + 100)
    if not opts.distinct_addresses:  # every socket comes from 127.0.0.1
        env["HUB_MAX_SOCKETS_PER_IP"] = env["HUB_MAX_TICKETS_PER_IP"] = str(opts.sockets + 100)
    env.update(opts.hub_env)
    setup = start_hub(
        workdir,
        max_concurrent=opts.max_concurrent,
        latency_ms=opts.latency_ms,
        lichess_gps=opts.lichess_gps,
        env=env,
        log_level=opts.hub_log_level,
    )
    try:
        yield [setup.hub.ws_url], setup
    finally:
        setup.stop()


def run(opts: Options, workdir: Path, console: Console) -> RunData:
    nofile = raise_nofile()
    need = opts.sockets + 100
    if nofile < need:
        console.print(f"warning: open-files limit {nofile} is below {need}", highlight=False)
    with hubs_for(opts, workdir) as (urls, setup):
        pids = {f"hub{i}": pid for i, pid in enumerate(opts.hub_pids)}
        if setup is not None:
            pids = {"hub0": setup.hub.pid, "sim": setup.sim.pid}
        monitor = Monitor(pids).start() if pids else None
        try:
            users, tally, timing = run_async(drive(opts, urls, console))
        finally:
            if monitor is not None:
                monitor.stop()
        logs = [str(setup.hub.log), str(setup.sim.log)] if setup is not None else []
    return RunData(
        options=opts,
        users=users,
        urls=urls,
        tally=tally,
        timing=timing,
        nofile=nofile,
        monitor=monitor,
        hub_logs=logs,
    )
