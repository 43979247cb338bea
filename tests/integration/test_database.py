"""The hub's database seen from outside: one hub per SQLite file, old imports, summaries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
from typing import Any

import aiohttp

from load.procs import free_port
from tests.conftest import HubFactory
from tests.procs import USER_AGENT, Proc, WsClient


async def import_to_end(hub: Proc, source: str, username: str) -> dict[str, Any]:
    client = await WsClient.open(hub.ws_url)
    await client.send({"type": "import", "source": source, "username": username})
    final = await client.until("done", "failed", timeout=60)
    await client.close()
    return final


def serve_again(hub: Proc) -> subprocess.CompletedProcess[str]:
    """Start one more `hub serve` with the environment of `hub`, to its exit."""
    env = {**os.environ, **{k: v for k, v in hub.env.items() if k != "tracebacks_ok"}}
    argv = [sys.executable, "-m", "hub", "serve", "--port", str(free_port())]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def status(hub: Proc, path: str) -> int:
    try:
        hub.get_json(path)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response open
        return exc.code
    return 200


def import_gone(hub: Proc, import_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (code := status(hub, f"/api/imports/{import_id}")) == 200:
        assert time.monotonic() < deadline, f"import {import_id} is still there"
        time.sleep(0.05)
    assert code == 404


# -- one hub per SQLite file -----------------------------------------------------------


async def test_a_second_hub_on_a_held_file_refuses_to_start(
    slow_sim: Proc, hub_factory: HubFactory
) -> None:
    first = hub_factory(slow_sim)
    client = await WsClient.open(first.ws_url)
    await client.send({"type": "import", "source": "chesscom", "username": "held-p600x2"})
    import_id = (await client.until("progress", timeout=30))["import_id"]

    second = serve_again(first)
    assert second.returncode == 1
    assert second.stdout == ""
    lines = second.stderr.splitlines()
    assert len(lines) == 1, second.stderr
    assert "hub.db is in use by another running hub" in lines[0]
    assert f"(pid {first.proc.pid})" in lines[0]
    # The live hub's import is untouched, and it keeps going.
    assert first.get_json(f"/api/imports/{import_id}")["state"] == "running"
    page = (await client.until("progress", timeout=30))["page"]
    assert page > 1

    # Once the first has stopped, a hub starts on the file and closes what it left.
    first.stop(signal.SIGKILL)
    third = hub_factory(slow_sim)
    left = third.get_json(f"/api/imports/{import_id}")
    assert (left["state"], left["error"]) == ("failed", "interrupted")


# -- old imports -----------------------------------------------------------------------


async def test_ended_imports_are_deleted_after_the_kept_days_and_games_stay(
    sim: Proc, hub_factory: HubFactory
) -> None:
    first = hub_factory(sim)
    done = await import_to_end(first, "chesscom", "old-p3x10")
    assert done["type"] == "done" and done["games_total"] == 30
    assert first.get_json(f"/api/imports/{done['import_id']}")["state"] == "done"
    first.stop()

    second = hub_factory(sim, HUB_IMPORTS_KEEP_DAYS=0)  # its first sweep runs at start
    import_gone(second, done["import_id"])
    summary = second.get_json("/api/players/chesscom/old-p3x10/summary")
    assert summary["games"] == 30
    # The cursor stayed too: the next import finds nothing new.
    again = await import_to_end(second, "chesscom", "old-p3x10")
    assert again["type"] == "done" and again["games_new"] == 0 and again["games_total"] == 30


# -- summaries -------------------------------------------------------------------------


async def test_summary_follows_every_stored_page(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim)
    path = "/api/players/chesscom/grow-p2x10/summary"
    assert hub.get_json(path)["games"] == 0
    await import_to_end(hub, "chesscom", "grow-p2x10")
    first = hub.get_json(path)
    assert first["games"] == 20
    assert hub.get_json(path) == first == hub.get_json(path + "?games=standard")
    assert hub.get_json(path + "?games=all")["games"] == 20

    sim.post("/_sim/grow/chesscom/grow-p2x10?games=5")
    done = await import_to_end(hub, "chesscom", "grow-p2x10")
    assert done["games_new"] == 5
    assert hub.get_json(path)["games"] == 25
    assert hub.get_json(path + "?games=all")["games"] == 25

    assert status(hub, path + "?games=variants") == 400


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


async def test_many_summaries_at_once_on_a_few_threads(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_SUMMARY_CONCURRENCY=2)
    users = [f"many{n}-p3x20" for n in range(4)]
    for user in users:
        await import_to_end(hub, "chesscom", user)
    most = threads(hub.proc.pid)

    async def ask(session: aiohttp.ClientSession, n: int) -> int:
        nonlocal most
        user = users[n % len(users)]
        games = "all" if n % 3 else "standard"
        url = f"{hub.url}/api/players/chesscom/{user}/summary?games={games}"
        async with session.get(url) as response:
            body = await response.json()
        most = max(most, threads(hub.proc.pid))
        assert response.status == 200, body
        return int(body["games"])

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}) as s:
        counts = await asyncio.gather(*(ask(s, n) for n in range(300)))
    assert counts == [60] * 300
    # The event loop, four readers and one writer, and a few that aiohttp and uvicorn keep.
    assert most <= 12, most
