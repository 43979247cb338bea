"""Child processes on free loopback ports, file-descriptor limits and /proc sampling."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

USER_AGENT = "chess-import-hub-load (+https://example.invalid; load@example.invalid)"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed: the client must not be the bottleneck."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def hub_source() -> str:
    """Which hub the tools start: LOAD_HUB_SOURCE, or this work tree at its commit."""
    source = os.environ.get("LOAD_HUB_SOURCE")
    if source:
        return source
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "hub"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "work tree"
    return f"work tree at {commit}{' with hub/ changes' if dirty else ''}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _limits() -> None:  # runs in the child before exec
    raise_nofile()


def spawn(
    argv: Sequence[str],
    log: Path,
    ready_path: str | None,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Child:
    """Start `python <argv>` (with `--port`), wait until `ready_path` answers over HTTP."""
    port = free_port() if port is None else port
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # `python -m hub` imports the hub from its working directory: LOAD_HUB_SOURCE may name
    # another checkout (e.g. an exported commit) to measure instead of this work tree.
    source = os.environ.get("LOAD_HUB_SOURCE") if argv[:2] == ["-m", "hub"] else None
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, *argv, "--port", str(port)],
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            preexec_fn=_limits,
            cwd=source,
        )
    child = Child(proc, port, log)
    if ready_path is not None:
        try:
            wait_http(child.url + ready_path, proc, log)
        except Exception:
            child.stop(timeout=2)
            raise
    return child


@dataclass
class HubSetup:
    """A `hub sim` plus a `hub serve` pointed at it, on fresh ports and a scratch database."""

    sim: Child
    hub: Child

    def stop(self) -> None:
        self.hub.stop()
        self.sim.stop()


def start_hub(
    workdir: Path,
    *,
    max_concurrent: int,
    latency_ms: float,
    lichess_gps: float,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    log_level: str = "warning",
    slow_s: float | None = None,
    lichess_penalty_s: float | None = None,
) -> HubSetup:
    workdir.mkdir(parents=True, exist_ok=True)
    sim_args = ["--latency-ms", str(latency_ms), "--lichess-gps", str(lichess_gps)]
    if slow_s is not None:
        sim_args += ["--slow-s", str(slow_s)]
    if lichess_penalty_s is not None:
        sim_args += ["--lichess-penalty-s", str(lichess_penalty_s)]
    sim = spawn(
        ["-m", "hub", "sim", "--log-level", "warning", *sim_args],
        workdir / "sim.log",
        "/_sim/stats",
    )
    try:
        hub = serve(workdir, sim, max_concurrent, env, database_url, log_level)
    except Exception:
        sim.stop()
        raise
    return HubSetup(sim, hub)


def serve(
    workdir: Path,
    sim: Child,
    max_concurrent: int,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    log_level: str = "warning",
    name: str = "hub",
) -> Child:
    """A `hub serve` against a running simulator, with a scratch SQLite database by default."""
    workdir.mkdir(parents=True, exist_ok=True)
    hub_env = {
        "HUB_CHESSCOM_URL": sim.url,
        "HUB_LICHESS_URL": sim.url,
        "DATABASE_URL": database_url or f"sqlite:///{workdir / (name + '.db')}",
        **(env or {}),
    }
    hub_args = ["--log-level", log_level, "--max-concurrent-imports", str(max_concurrent)]
    argv = ["-m", "hub", "serve", *hub_args]
    return spawn(argv, workdir / f"{name}.log", "/healthz", env=hub_env)


@contextlib.contextmanager
def hub_running(workdir: Path, **options: object) -> Iterator[HubSetup]:
    setup = start_hub(workdir, **options)  # type: ignore[arg-type]
    try:
        yield setup
    finally:
        setup.stop()


# -- /proc ----------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """Resident set size from /proc/<pid>/status."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


@dataclass
class Sample:
    t: float
    rss_mb: float
    cpu_pct: float
    fds: int | None


@dataclass
class Monitor:
    """Samples RSS, CPU and descriptors of some processes every `interval` s, in a thread."""

    pids: dict[str, int]
    interval: float = 0.5
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Monitor:
        self.samples = {name: [] for name in self.pids}
        self._thread = threading.Thread(target=self._run, name="proc-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        last: dict[str, tuple[float, float]] = {}
        rounds = 0
        while not self._stop.is_set() and rounds < 10_000_000:
            rounds += 1
            now = time.monotonic()
            for name, pid in self.pids.items():
                rss, cpu = rss_bytes(pid), cpu_seconds(pid)
                if rss is None or cpu is None:
                    continue
                prev = last.get(name)
                pct = 0.0 if prev is None else (cpu - prev[1]) / max(now - prev[0], 1e-6) * 100
                last[name] = (now, cpu)
                fds = open_fds(pid) if rounds % 4 == 1 else None
                self.samples[name].append(Sample(now, rss / 2**20, pct, fds))
            self._stop.wait(self.interval)

    def summary(self, name: str) -> dict[str, float | int | None]:
        samples = self.samples.get(name, [])
        if not samples:
            return {"samples": 0}
        busy = [s.cpu_pct for s in samples[1:]]
        fds = [s.fds for s in samples if s.fds is not None]
        return {
            "samples": len(samples),
            "rss_start_mb": round(samples[0].rss_mb, 1),
            "rss_peak_mb": round(max(s.rss_mb for s in samples), 1),
            "rss_end_mb": round(samples[-1].rss_mb, 1),
            "cpu_mean_pct": round(sum(busy) / len(busy), 1) if busy else None,
            "cpu_peak_pct": round(max(busy), 1) if busy else None,
            "fds_peak": max(fds) if fds else None,
        }
