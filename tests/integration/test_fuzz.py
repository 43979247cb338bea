"""Fuzzing one real hub with bad frames on many sockets while real imports run beside them.

Pass means: every bad frame got exactly one `error` with a code the README allows
(the hub answers the frames of one socket in order), or the clean close its kind
calls for; every well-formed import finished; the hub logged no traceback; and
the database holds only rows of the well-formed imports.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from hub.store import open_store
from tests import fuzzframes as ff
from tests.conftest import HubFactory
from tests.procs import Proc

MAX_BYTES = 4096
BATCH = 25  # frames per hypothesis example
BAD_FRAMES = 10_000  # at least this many answered bad frames
FUZZ_SOCKETS = 8
GOOD = (
    ("chesscom", "Fuzz-Good0-p8x10"),
    ("lichess", "fuzz_good1-p3x60"),
    ("chesscom", "fuzz-good2-p5x7"),
    ("lichess", "fuzz-good3-p2x45"),
    ("chesscom", "fuzzgood4-p6x9"),
    ("lichess", "FUZZGOOD5-p2x30"),
)
STATES = {"queued", "running", "done", "failed", "cancelled"}
STORED_NAME = re.compile(r"[a-z0-9_-]{2,50}")  # usernames are stored lower-cased


def draw(strategy: st.SearchStrategy[ff.Frame], examples: int, batch: int) -> list[ff.Frame]:
    """Frames from `examples` hypothesis examples of `batch` frames each, deterministically."""
    out: list[ff.Frame] = []

    @settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(strategy, min_size=batch, max_size=batch))
    def collect(frames: list[ff.Frame]) -> None:
        out.extend(frames)

    collect()
    return out


async def connect(url: str) -> ClientConnection:
    conn = await websockets.connect(
        url, compression=None, proxy=None, open_timeout=20, max_size=None, ping_interval=None
    )
    hello = json.loads(await conn.recv())
    assert hello["type"] == "hello"
    return conn


async def send(conn: ClientConnection, frame: ff.Frame) -> None:
    kind, payload = frame
    if kind == "text":
        await conn.send(payload)
    elif kind == "binary":
        assert isinstance(payload, bytes)
        await conn.send(payload)
    else:  # bytes that claim to be text
        await conn.send(payload, text=True)


async def fuzz_socket(url: str, frames: list[tuple[ff.Frame, set[str]]]) -> list[str]:
    """Send every frame on one socket; the problems found, matched frame by frame."""
    conn = await connect(url)
    answers: list[dict[str, Any]] = []

    async def read() -> None:
        while len(answers) < len(frames):
            answers.append(json.loads(await conn.recv()))

    reader = asyncio.create_task(read())
    for frame, _ in frames:
        await send(conn, frame)
    await asyncio.wait_for(reader, 90)
    await conn.close()
    for n, ((frame, codes), answer) in enumerate(zip(frames, answers, strict=True)):
        if answer.get("type") != "error" or answer.get("code") not in codes:
            # Past the first wrong answer the rest are out of step: report that one.
            return [f"frame {n}: {frame!r:.300} expected {sorted(codes)}, got {answer!r:.300}"]
        if not isinstance(answer.get("message"), str) or not answer["message"]:
            return [f"frame {n}: {frame!r:.300} got an error without a message"]
    return []


async def closing_socket(url: str, frame: ff.Frame, code: int) -> str | None:
    """Send one frame that must close the socket with `code`; a problem, or None."""
    conn = await connect(url)
    try:
        await send(conn, frame)
        async with asyncio.timeout(20):
            while True:
                extra = await conn.recv()
                return f"{frame!r:.200} was answered {extra!r:.200} instead of a close"
    except ConnectionClosed as exc:
        got = exc.rcvd.code if exc.rcvd is not None else None
        return None if got == code else f"{frame!r:.200} closed with {got}, not {code}"


async def good_import(url: str, source: str, username: str) -> dict[str, Any]:
    conn = await connect(url)
    await conn.send(json.dumps({"type": "import", "source": source, "username": username}))
    async with asyncio.timeout(90):
        while True:
            message: dict[str, Any] = json.loads(await conn.recv())
            if message["type"] in ("done", "failed", "error"):
                await conn.close()
                return message


async def check_database(path: Path, sim: Proc) -> None:
    """Only rows of the good imports, each one valid, and exactly the simulator's games."""
    good = {(source, username.lower()) for source, username in GOOD}
    store = open_store(f"sqlite:///{path}")
    await store.connect()
    try:
        db = store._db  # type: ignore[attr-defined]  # listing every row is not part of Store
        imports = await db.fetch_all("SELECT id, source, username, state FROM imports")
        assert len(imports) == len(GOOD)
        for row in imports:
            assert row["source"] in ff.SOURCES and row["state"] in STATES, dict(row)
            assert STORED_NAME.fullmatch(row["username"]), dict(row)
            assert (row["source"], row["username"]) in good, dict(row)
            assert row["state"] == "done", dict(row)
        players = await db.fetch_all("SELECT source, username FROM players")
        assert {(r["source"], r["username"]) for r in players} <= good
        owners = await db.fetch_all("SELECT DISTINCT source, username FROM player_games")
        assert {(r["source"], r["username"]) for r in owners} == good
        total = 0
        for source, username in sorted(good):
            ids = await store.game_ids(source, username)
            truth = sim.get_json(f"/_sim/truth/{source}/{username}")["games"]
            assert sorted(ids) == sorted(truth), (source, username)
            total += len(ids)
        # every stored game belongs to one of the good players' rows
        orphans = await db.fetch_val(
            "SELECT count(*) FROM games g WHERE NOT EXISTS (SELECT 1 FROM player_games p"
            " WHERE p.source = g.source AND p.game_id = g.game_id)"
        )
        assert orphans == 0
        assert await db.fetch_val("SELECT count(*) FROM player_games") == total
    finally:
        await store.close()


async def test_fuzz_one_hub(slow_sim: Proc, hub_factory: HubFactory, tmp_path: Path) -> None:
    began = time.monotonic()
    # Generated before the hub starts, so the imports and the fuzz overlap.
    plain: list[tuple[ff.Frame, set[str]]] = []
    skipped_valid = 0
    for frame in draw(ff.frames, (BAD_FRAMES * 21 // 20) // BATCH + 1, BATCH):
        codes = ff.expected(frame)
        if codes is None:
            skipped_valid += 1  # a valid message is not a bad one
        elif ff.size(frame) > MAX_BYTES:
            continue  # too big by chance: the deliberate ones below cover that
        else:
            plain.append((frame, codes))
    closing = [(f, 1009) for f in draw(ff.oversized, 4, 5)]
    closing += [(f, 1007) for f in draw(ff.bad_utf8, 2, 4)]
    assert len(plain) >= BAD_FRAMES, (len(plain), skipped_valid)
    assert all(ff.size(f) > MAX_BYTES for f, code in closing if code == 1009)
    generated = time.monotonic() - began

    hub = hub_factory(
        slow_sim,
        HUB_WS_MAX_BYTES=MAX_BYTES,
        HUB_WS_MSGS_PER_S=1_000_000,
        HUB_MAX_SOCKETS_PER_IP=1000,
        MAX_CONCURRENT_IMPORTS=2,
    )
    goods = [asyncio.create_task(good_import(hub.ws_url, s, u)) for s, u in GOOD]
    shares = [plain[n::FUZZ_SOCKETS] for n in range(FUZZ_SOCKETS)]
    fuzzers = [asyncio.create_task(fuzz_socket(hub.ws_url, share)) for share in shares]
    closers = [asyncio.create_task(closing_socket(hub.ws_url, f, code)) for f, code in closing]

    problems = [p for found in await asyncio.gather(*fuzzers) for p in found]
    problems += [p for p in await asyncio.gather(*closers) if p is not None]
    assert not problems, "\n".join(problems)
    finals = await asyncio.gather(*goods)
    assert [m["type"] for m in finals] == ["done"] * len(GOOD), finals

    # The hub still serves a newcomer, and its log holds no traceback (checked at teardown).
    late = await connect(hub.ws_url)
    await late.close()
    assert hub.get_json("/healthz") == {"status": "ok"}
    hub.stop()
    await check_database(tmp_path / "hub.db", slow_sim)
    print(
        f"fuzz: {len(plain)} bad frames answered, {len(closing)} closing frames, "
        f"{skipped_valid} valid ones skipped; generated in {generated:.1f} s, "
        f"whole test {time.monotonic() - began:.1f} s"
    )
