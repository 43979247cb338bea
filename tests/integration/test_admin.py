"""The operator's /admin/ routes against real `hub serve` processes, alone and in a fleet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.admin import TOKEN, admin, change, ready, state
from tests.conftest import HubFactory
from tests.poll import eventually
from tests.procs import Proc, WsClient, start


@pytest.fixture
def paced_sim(tmp_path: Path) -> Iterator[Proc]:
    """Every response takes 100 ms: a 20-month player holds its slot for a couple of seconds."""
    args = ["sim", "--latency-ms", "100", "--lichess-gps", "0", "--lichess-penalty-s", "1"]
    p = start(args, {}, tmp_path / "paced-sim.log", "/_sim/stats")
    yield p
    p.stop()


async def ask(hub: Proc, source: str, username: str) -> WsClient:
    client = await WsClient.open(hub.ws_url)
    await client.recv()
    await client.send({"type": "import", "source": source, "username": username})
    await client.until("ticket")
    return client


def import_id(client: WsClient) -> str:
    ticket = next(m for _, m in client.messages if m["type"] == "ticket")
    return str(ticket["import_id"])


async def test_without_a_token_there_are_no_admin_routes(
    sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(sim)
    for method, path in [("GET", "/admin/state"), ("POST", "/admin/pause"), ("POST", "/admin/x")]:
        status, _, _ = admin(hub, method, path, {"source": None, "reason": "x"})
        assert status == 404, (method, path)
    assert "/admin" not in str(hub.get_json("/schema/openapi.json")["paths"])


async def test_a_wrong_or_missing_token_is_refused(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_ADMIN_TOKEN=TOKEN)
    for token in (None, "", "wrong", TOKEN + "x", TOKEN[:-1]):
        for method, path in [("GET", "/admin/state"), ("POST", "/admin/drain")]:
            status, answer, headers = admin(hub, method, path, token=token)
            assert status == 401, (token, path)
            assert headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in str(answer)
    # Another scheme with the right secret is refused too.
    for header in (f"Basic {TOKEN}", TOKEN, f"Bearer{TOKEN}"):
        assert admin(hub, "GET", "/admin/state", authorization=header)[0] == 401, header
    assert admin(hub, "GET", "/admin/state", authorization=f"bearer  {TOKEN} ")[0] == 200
    assert state(hub)["draining"] is False  # nothing was drained by the refused calls
    assert ready(hub) == 200


BAD_BODIES = [
    ("/admin/slots", None, "JSON body is required"),
    ("/admin/slots", "{}", "Give `slots`, `lanes` or both"),
    ("/admin/slots", '{"slots": "4"}', r"Expected `int \| null`, got `str` - at `\$.slots`"),
    ("/admin/slots", '{"slots": 0}', "between 1 and"),
    ("/admin/slots", '{"slots": true}', r"Expected `int \| null`"),
    ("/admin/slots", '{"lanes": {"chess": 2}}', "unknown source 'chess'"),
    ("/admin/slots", '{"lanes": {"lichess": 0}}', r"`lanes.lichess` must be between"),
    ("/admin/slots", '{"slots": 2, "extra": 1}', "unknown field `extra`"),
    ("/admin/slots", "not json", "not JSON"),
    ("/admin/pause", '{"reason": "x"}', "missing required field `source`"),
    ("/admin/pause", '{"source": null}', "missing required field `reason`"),
    ("/admin/pause", '{"source": null, "reason": "  "}', "must say why"),
    ("/admin/pause", '{"source": "chess", "reason": "x"}', "unknown source"),
    ("/admin/resume", '{"source": 3}', r"Expected `str \| null`, got `int`"),
]


async def test_bad_bodies_are_refused_clearly(sim: Proc, hub_factory: HubFactory) -> None:
    hub = hub_factory(sim, HUB_ADMIN_TOKEN=TOKEN)
    before = state(hub)
    for path, body, says in BAD_BODIES:
        status, answer, _ = admin(hub, "POST", path, raw=None if body is None else body.encode())
        assert status == 400, (path, body, answer)
        assert re.search(says, answer["detail"]), (body, answer)
    assert state(hub) == before  # nothing changed


async def test_resize_admits_at_once_and_positions_follow(
    paced_sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(
        paced_sim, HUB_ADMIN_TOKEN=TOKEN, MAX_CONCURRENT_IMPORTS=2, HUB_LANE_CHESSCOM=4
    )
    clients = [await ask(hub, "chesscom", f"grow{n}-p20x2") for n in range(6)]
    first = [await c.until("started", "queued") for c in clients]
    assert [m["type"] for m in first] == ["started"] * 2 + ["queued"] * 4
    assert [m["position"] for m in first[2:]] == [1, 2, 3, 4]

    after = change(hub, "/admin/slots", {"slots": 4})
    assert after["slots"] == 4 and after["lanes"]["chesscom"] == 4
    # The next two in line start; the two behind them move up to places 1 and 2.
    for c in clients[2:4]:
        await c.until("started")
    for place, c in enumerate(clients[4:], start=1):
        while (await c.until("queued"))["position"] != place:
            pass
        assert c.of("queued")[-1]["slots_total"] == 4
    assert not any(c.of("started") for c in clients[4:])
    assert len(state(hub)["running"]) == 4

    # Fewer slots let the running imports finish and admit nothing until under the cap.
    change(hub, "/admin/slots", {"slots": 1})
    ends = [await c.until("done", timeout=120) for c in clients]
    assert [m["type"] for m in ends] == ["done"] * 6
    # The last two ran one at a time: the fifth was done before the sixth started.
    five = hub.get_json(f"/api/imports/{import_id(clients[4])}")
    six = hub.get_json(f"/api/imports/{import_id(clients[5])}")
    assert five["finished_at"] <= six["started_at"]


async def test_pause_keeps_places_and_lets_the_other_site_go(
    paced_sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(paced_sim, HUB_ADMIN_TOKEN=TOKEN, MAX_CONCURRENT_IMPORTS=1)
    running = await ask(hub, "chesscom", "run-p20x2")
    await running.until("started")
    waiter = await ask(hub, "chesscom", "wait-p2x2")
    other = await ask(hub, "lichess", "other-p2x5")
    assert (await waiter.until("queued"))["position"] == 1

    after = change(hub, "/admin/pause", {"source": "chesscom", "reason": "upstream maintenance"})
    assert [(p["source"], p["reason"], p["by"]) for p in after["paused"]] == [
        ("chesscom", "upstream maintenance", "operator")
    ]
    paused = await waiter.until("queued")
    assert paused["paused"]["reason"] == "upstream maintenance"
    assert paused["position"] == 1  # the place is kept
    board = hub.get_json("/api/queue")
    assert [(p["source"], p["reason"]) for p in board["paused"]] == [
        ("chesscom", "upstream maintenance")
    ]

    # The running import goes on; then the lichess import, behind the paused one, runs.
    await running.until("done", timeout=60)
    await other.until("done", timeout=60)
    assert not waiter.of("started")
    assert state(hub)["waiting_by_source"] == {"chesscom": 1, "lichess": 0}

    change(hub, "/admin/resume", {"source": "chesscom"})
    await waiter.until("started")
    await waiter.until("done")
    assert hub.get_json("/api/queue")["paused"] == []


async def test_drain_admits_nothing_here_and_keeps_the_line(
    paced_sim: Proc, hub_factory: HubFactory
) -> None:
    hub = hub_factory(paced_sim, HUB_ADMIN_TOKEN=TOKEN, MAX_CONCURRENT_IMPORTS=1)
    running = await ask(hub, "chesscom", "drainrun-p10x2")
    await running.until("started")
    waiter = await ask(hub, "chesscom", "drainwait-p2x2")
    assert ready(hub) == 200

    assert change(hub, "/admin/drain")["draining"] is True
    assert ready(hub) == 503
    late = await ask(hub, "lichess", "drainlate-p2x2")  # sockets still join the line
    await late.until("queued")
    await running.until("done", timeout=60)  # running imports finish
    await eventually(lambda: not state(hub)["running"], "the slot freed")
    now = state(hub)
    assert now["waiting"] == 2 and now["slots_free"] == 1 and now["paused"] == []
    assert not waiter.of("started") and not late.of("started")
    # Waiters are not told of a drain: it is this process's, not a site's.
    assert all("paused" not in m for m in waiter.of("queued") + late.of("queued"))

    assert change(hub, "/admin/undrain")["draining"] is False
    assert ready(hub) == 200
    await waiter.until("done", timeout=60)
    await late.until("done", timeout=60)


async def test_changes_survive_a_restart(sim: Proc, hub_factory: HubFactory) -> None:
    first = hub_factory(sim, HUB_ADMIN_TOKEN=TOKEN)
    change(first, "/admin/slots", {"slots": 3, "lanes": {"lichess": 2}})
    change(first, "/admin/pause", {"source": "lichess", "reason": "maintenance"})
    change(first, "/admin/drain")
    first.stop()

    again = hub_factory(sim, HUB_ADMIN_TOKEN=TOKEN)  # the same database
    now = state(again)
    assert now["slots"] == 3 and now["lanes"] == {"chesscom": 2, "lichess": 2}
    assert [(p["source"], p["reason"]) for p in now["paused"]] == [("lichess", "maintenance")]
    assert now["draining"] is False and ready(again) == 200  # a drain ends with its process
    assert again.get_json("/api/queue")["slots_total"] == 3
    client = await ask(again, "lichess", "kept-p2x2")
    assert (await client.until("queued"))["paused"]["reason"] == "maintenance"
    change(again, "/admin/resume", {"source": None})
    await client.until("done")


async def test_serve_sim_says_where_the_simulator_listens(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}"}
    hub = start(["serve", "--sim", "--sim-latency-ms", "0"], env, tmp_path / "hub.log", "/healthz")
    try:
        found = await eventually(
            lambda: re.search(r"simulator listening.* url=(http://\S+)", hub.logs()),
            "the simulator's URL in the log",
        )
        assert found is not None
        sim_url = found[1]
        sim = Proc(hub.proc, int(sim_url.rsplit(":", 1)[1]), hub.log)
        assert set(sim.get_json("/_sim/stats")) == {"chesscom", "lichess"}
    finally:
        hub.stop()


# -- a fleet --------------------------------------------------------------


def fleet(factory: HubFactory, sim: Proc, url: str, n: int, **env: Any) -> list[Proc]:
    settings = {"DATABASE_URL": url, "HUB_POLL_S": "0.3", "HUB_ADMIN_TOKEN": TOKEN, **env}
    return [factory(sim, **settings) for _ in range(n)]


@pytest.mark.postgres
async def test_fleet_admin_changes_apply_to_every_replica(
    scratch_pg: str, paced_sim: Proc, hub_factory: HubFactory
) -> None:
    a, b = fleet(hub_factory, paced_sim, scratch_pg, 2, MAX_CONCURRENT_IMPORTS=1)
    for hub in (a, b):
        assert admin(hub, "GET", "/admin/state", token=None)[0] == 401
        assert admin(hub, "GET", "/admin/state", token="wrong")[0] == 401
    assert state(a)["replica"] != state(b)["replica"]

    # A pause set on one replica holds on the other: its waiter is told.
    running = await ask(a, "chesscom", "fleetrun-p15x2")
    await running.until("started")
    waiter = await ask(b, "chesscom", "fleetwait-p2x2")
    change(a, "/admin/pause", {"source": "chesscom", "reason": "maintenance"})
    paused = await waiter.until("queued")
    while "paused" not in paused:
        paused = await waiter.until("queued")
    assert paused["paused"]["reason"] == "maintenance"
    await eventually(lambda: b.get_json("/api/queue")["paused"] != [], "b's board shows it")
    await running.until("done", timeout=60)
    await eventually(lambda: not state(b)["running"], "the slot freed")
    assert not waiter.of("started")

    # Resumed on the other replica, and resized there: both hold everywhere.
    change(b, "/admin/resume", {"source": "chesscom"})
    await waiter.until("done", timeout=60)
    change(b, "/admin/slots", {"slots": 3})
    await eventually(lambda: state(a)["slots"] == 3, "a reads the new cap")
    assert a.get_json("/api/queue")["slots_total"] == 3

    # Draining one replica: the other admits its line and runs its imports.
    change(a, "/admin/drain")
    assert ready(a) == 503 and ready(b) == 200 and state(b)["draining"] is False
    joined_here = await ask(a, "chesscom", "drained-p10x2")
    await joined_here.until("started", timeout=30)
    where = await eventually(lambda: state(a)["running"], "the import runs somewhere")
    assert [r["replica"] for r in where] == [state(b)["replica"]]
    await joined_here.until("done", timeout=60)

    # The caps outlive the whole fleet.
    for hub in (a, b):
        hub.stop()
    (c,) = fleet(hub_factory, paced_sim, scratch_pg, 1, MAX_CONCURRENT_IMPORTS=1)
    now = state(c)
    assert now["slots"] == 3 and now["paused"] == [] and now["draining"] is False
