"""The upstream simulator over real HTTP: both fake APIs, their limits, faults and introspection."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from hub.sim import SimConfig, start_sim
from tests.poll import eventually

UA = "chess-hub-test (+https://example.invalid; test@example.invalid)"
FAST = {"latency_ms": 0.0, "lichess_gps": 0.0, "lichess_penalty_s": 0.5}

Serve = Callable[..., Awaitable[str]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start simulators on free ports; `serve(**overrides)` returns the base URL."""
    runners: list[Any] = []

    async def start(**overrides: Any) -> str:
        runner, port = await start_sim(SimConfig(**{**FAST, **overrides}), port=0)
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest_asyncio.fixture
async def base(serve: Serve) -> str:
    return await serve()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"User-Agent": UA}) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200) -> Any:
    async with http.get(url) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def export(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "application/x-ndjson"
        return [json.loads(line) for line in (await response.text()).splitlines()]


async def test_archives_and_months_match_truth(base: str, http: aiohttp.ClientSession) -> None:
    archives = (await get_json(http, f"{base}/pub/player/p3x7/games/archives"))["archives"]
    assert len(archives) == 3 and all(
        a.startswith(f"{base}/pub/player/p3x7/games/") for a in archives
    )
    ids: list[str] = []
    for url in archives:
        games = (await get_json(http, url))["games"]
        assert [g["end_time"] for g in games] == sorted(g["end_time"] for g in games)
        ids.extend(g["uuid"] for g in games)
    truth = await get_json(http, f"{base}/_sim/truth/chesscom/p3x7")
    assert ids == truth["games"] and len(ids) == 21
    assert [a.split("/games/")[1] for a in archives] == truth["months"]
    await get_json(http, f"{base}/pub/player/p3x7/games/1999/01", status=404)


async def test_lichess_export_matches_truth(base: str, http: aiohttp.ClientSession) -> None:
    games = await export(
        http, f"{base}/api/games/user/p3x7?sort=dateAsc&pgnInJson=true&clocks=true"
    )
    truth = await get_json(http, f"{base}/_sim/truth/lichess/P3x7")
    assert [g["id"] for g in games] == truth["games"] and len(games) == 21
    user = await get_json(http, f"{base}/api/user/P3x7")
    assert user["id"] == "p3x7" and user["count"]["all"] == 21


async def test_uppercase_redirects_to_lowercase(base: str, http: aiohttp.ClientSession) -> None:
    url = f"{base}/pub/player/SomeOne-P2x3/games/archives?x=1"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == f"{base}/pub/player/someone-p2x3/games/archives?x=1"
    async with http.get(url) as response:
        assert response.status == 200 and len(response.history) == 1


async def test_user_agent_is_required(base: str) -> None:
    async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as bare:
        async with bare.get(f"{base}/pub/player/p1x1/games/archives") as response:
            assert response.status == 403
        async with bare.get(f"{base}/api/games/user/p1x1") as response:
            assert response.status == 404
            assert response.content_type == "text/html" and "<html" in await response.text()
    # aiohttp's own default, "Python/3.x aiohttp/3.y", does not identify anyone
    async with (
        aiohttp.ClientSession() as default,
        default.get(f"{base}/pub/player/p1x1/games/archives") as response,
    ):
        assert response.status == 403


async def test_etag_and_last_modified_give_304(base: str, http: aiohttp.ClientSession) -> None:
    url = f"{base}/pub/player/p2x5/games/archives"
    month = (await get_json(http, url))["archives"][0]
    async with http.get(month) as response:
        assert response.status == 200 and response.headers["Cache-Control"] == "max-age=43200"
        etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
        last = max(g["end_time"] for g in (await response.json())["games"])
    assert email.utils.parsedate_to_datetime(modified).timestamp() == last
    async with http.get(month, headers={"If-None-Match": etag}) as response:
        assert response.status == 304 and await response.read() == b""
        assert response.headers["ETag"] == etag
    async with http.get(month, headers={"If-Modified-Since": modified}) as response:
        assert response.status == 304
    earlier = email.utils.formatdate(last - 1, usegmt=True)
    async with http.get(month, headers={"If-Modified-Since": earlier}) as response:
        assert response.status == 200
    async with http.get(month, headers={"If-None-Match": '"other"'}) as response:
        assert response.status == 200
    async with http.get(url) as response:
        assert response.headers["Cache-Control"] == "max-age=300" and "ETag" in response.headers


async def test_chesscom_refuses_a_third_parallel_request(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(latency_ms=200)
    url = f"{base}/pub/player/p1x3/games/archives"

    async def one() -> tuple[int, str | None]:
        async with http.get(url) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After")

    results = await asyncio.gather(one(), one(), one())
    assert sorted(status for status, _ in results) == [200, 200, 429]
    assert all(retry is None for _, retry in results)
    stats = (await get_json(http, f"{base}/_sim/stats"))["chesscom"]
    assert stats["peak_in_flight"] == 3 and stats["in_flight"] == 0
    assert stats["status"] == {"200": 2, "429": 1} and stats["requests"] == 3


async def test_lichess_parallel_stream_is_punished(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    base = await serve(lichess_gps=40, lichess_penalty_s=0.8)
    url = f"{base}/api/games/user/p1x16"  # 16 games at 40/s: a stream of about 0.4 s
    first = asyncio.create_task(export(http, url))

    async def streaming() -> bool:
        return bool((await get_json(http, f"{base}/_sim/stats"))["lichess"]["in_flight"] == 1)

    await eventually(streaming, "the first export is being streamed", every=0.01)
    crowded_at = time.monotonic()
    async with http.get(url) as response:
        assert response.status == 429 and response.content_type == "text/html"
        assert "Retry-After" not in response.headers
    assert len(await first) == 16
    stats = (await get_json(http, f"{base}/_sim/stats"))["lichess"]
    assert stats["in_flight"] == 0 and stats["peak_in_flight"] == 2
    async with http.get(f"{base}/api/user/p1x16") as response:
        assert response.status == 429  # the address is still serving its penalty

    async def forgiven() -> bool:
        async with http.get(f"{base}/api/user/p1x16") as response:
            await response.read()
            return response.status == 200

    await eventually(forgiven, "the penalty ends", timeout=10)
    assert time.monotonic() - crowded_at >= 0.8  # the whole penalty was served
    assert len(await export(http, url)) == 16


async def test_lichess_stream_is_throttled(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(lichess_gps=200)
    started = time.monotonic()
    games = await export(http, f"{base}/api/games/user/p1x100")
    assert len(games) == 100 and time.monotonic() - started >= 0.4


async def test_since_until_are_inclusive_milliseconds(
    base: str, http: aiohttp.ClientSession
) -> None:
    every = await export(http, f"{base}/api/games/user/p2x10?sort=dateAsc")
    created = [g["createdAt"] for g in every]
    assert created == sorted(created) and all(c > 10**12 for c in created)
    window = await export(
        http, f"{base}/api/games/user/p2x10?sort=dateAsc&since={created[4]}&until={created[9]}"
    )
    assert [g["id"] for g in window] == [g["id"] for g in every[4:10]]
    after = await export(http, f"{base}/api/games/user/p2x10?since={created[-1] + 1}")
    assert after == []
    async with http.get(f"{base}/api/games/user/p2x10?since=yesterday") as response:
        assert response.status == 400


async def test_newest_first_unless_date_asc(base: str, http: aiohttp.ClientSession) -> None:
    newest = await export(http, f"{base}/api/games/user/p2x10")
    oldest = await export(http, f"{base}/api/games/user/p2x10?sort=dateAsc")
    assert newest == oldest[::-1]
    assert [g["createdAt"] for g in newest] == sorted(
        (g["createdAt"] for g in newest), reverse=True
    )
    capped = await export(http, f"{base}/api/games/user/p2x10?max=3&rated=true&perfType=blitz")
    assert capped == newest[:3]


async def test_flaky_fails_each_page_once(base: str, http: aiohttp.ClientSession) -> None:
    urls = [
        f"{base}/pub/player/flaky-p2x3/games/archives",
        f"{base}/api/user/flaky-p2x3",
        f"{base}/api/games/user/flaky-p2x3",
        f"{base}/api/games/user/flaky-p2x3?max=2",
    ]
    for url in urls:
        for expected in (503, 200, 200):
            async with http.get(url) as response:
                assert response.status == expected, url
    months = (await get_json(http, urls[0]))["archives"]
    async with http.get(months[0]) as response:
        assert response.status == 503
    assert len((await get_json(http, months[0]))["games"]) == 3


async def test_drop_cuts_the_first_stream(base: str, http: aiohttp.ClientSession) -> None:
    url = f"{base}/api/games/user/drop-p1x10"
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url) as response:
            assert response.status == 200
            async for line in response.content:
                received.append(line)
    assert len(received) == 5
    assert len(await export(http, url)) == 10


async def test_drop_is_per_distinct_request(base: str, http: aiohttp.ClientSession) -> None:
    url = f"{base}/api/games/user/drop-p1x10?sort=dateAsc"
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url) as response:
            await response.read()
    assert len(await export(http, url)) == 10


async def test_dup_repeats_lines(base: str, http: aiohttp.ClientSession) -> None:
    games = await export(http, f"{base}/api/games/user/dup-p1x20")
    ids = [g["id"] for g in games]
    truth = await get_json(http, f"{base}/_sim/truth/lichess/dup-p1x20")
    assert len(ids) == 22 and set(ids) == set(truth["games"])
    assert ids[6] == ids[7] and ids[14] == ids[15]


async def test_slow_players_answer_late(serve: Serve, http: aiohttp.ClientSession) -> None:
    base = await serve(slow_s=0.3)
    started = time.monotonic()
    await get_json(http, f"{base}/pub/player/slow-p1x2/games/archives")
    assert time.monotonic() - started >= 0.3


async def test_gone_and_ghost(base: str, http: aiohttp.ClientSession) -> None:
    for url in ("/pub/player/gone-p2x2/games/archives", "/pub/player/gone-p2x2/games/2026/01"):
        async with http.get(base + url) as response:
            assert response.status == 410
    for url in ("/api/user/gone-p2x2", "/api/games/user/gone-p2x2", "/api/user/ghost1"):
        async with http.get(base + url) as response:
            assert response.status == 404
    body = await get_json(http, f"{base}/pub/player/ghostplayer/games/archives", status=404)
    assert body == {"code": 0, "message": 'User "ghostplayer" not found.'}
    await get_json(http, f"{base}/api/games/user/ghostplayer", status=404)
    await get_json(http, f"{base}/_sim/truth/chesscom/ghostplayer", status=404)
    assert (await get_json(http, f"{base}/_sim/truth/lichess/gone-p2x2"))["games"] == []


async def test_growth_shows_everywhere(base: str, http: aiohttp.ClientSession) -> None:
    archives_url = f"{base}/pub/player/grow-p2x3/games/archives"
    current = (await get_json(http, archives_url))["archives"][-1]
    async with http.get(current) as response:
        etag = response.headers["ETag"]
    async with http.post(f"{base}/_sim/grow/chesscom/Grow-p2x3?games=4") as response:
        assert response.status == 200 and (await response.json())["added"] == 4
    async with http.get(current, headers={"If-None-Match": etag}) as response:
        assert response.status == 200
        games = (await response.json())["games"]
    assert len(games) == 7 and [g["end_time"] for g in games] == sorted(
        g["end_time"] for g in games
    )
    assert all(g["end_time"] <= time.time() for g in games)
    truth = await get_json(http, f"{base}/_sim/truth/chesscom/grow-p2x3")
    assert len(truth["games"]) == 10 and truth["games"][-4:] == [g["uuid"] for g in games[-4:]]

    before = await export(http, f"{base}/api/games/user/grow-p2x3")
    async with http.post(f"{base}/_sim/grow/lichess/grow-p2x3?games=2") as response:
        assert response.status == 200
    after = await export(http, f"{base}/api/games/user/grow-p2x3")
    assert len(after) == 8 and after[2:] == before
    assert after[1]["createdAt"] > before[0]["createdAt"]
    assert (await get_json(http, f"{base}/api/user/grow-p2x3"))["count"]["all"] == 8


async def test_reset_forgets_everything(base: str, http: aiohttp.ClientSession) -> None:
    url = f"{base}/pub/player/flaky-p1x2/games/archives"
    for expected in (503, 200):
        async with http.get(url) as response:
            assert response.status == expected
    async with http.post(f"{base}/_sim/grow/chesscom/flaky-p1x2?games=3") as response:
        assert response.status == 200
    assert len((await get_json(http, f"{base}/_sim/truth/chesscom/flaky-p1x2"))["games"]) == 5
    async with http.post(f"{base}/_sim/reset") as response:
        assert response.status == 200
    stats = await get_json(http, f"{base}/_sim/stats")
    assert stats["chesscom"] == {"requests": 0, "in_flight": 0, "peak_in_flight": 0, "status": {}}
    assert len((await get_json(http, f"{base}/_sim/truth/chesscom/flaky-p1x2"))["games"]) == 2
    async with http.get(url) as response:
        assert response.status == 503


async def post(http: aiohttp.ClientSession, url: str, status: int = 200, data: str = "") -> Any:
    async with http.post(url, data=data) as response:
        assert response.status == status, await response.text()
        if response.content_type == "application/x-ndjson":
            return [json.loads(line) for line in (await response.text()).splitlines()]
        return await response.json()


async def test_chesscom_stats_follow_the_site_rules(base: str, http: aiohttp.ClientSession) -> None:
    stats = await get_json(http, f"{base}/pub/player/mixed-p2x10/stats")
    rated = 0
    for month in (await get_json(http, f"{base}/pub/player/mixed-p2x10/games/archives"))[
        "archives"
    ]:
        for g in (await get_json(http, month))["games"]:
            counted = g["rules"] == "chess" or g["time_class"] == "daily"
            rated += g["rated"] and counted
    records = [c["record"] for c in stats.values() if "record" in (c or {})]
    assert sum(r["win"] + r["loss"] + r["draw"] for r in records) == rated
    async with http.get(f"{base}/pub/player/Mixed-p2x10/stats", allow_redirects=False) as r:
        assert r.status == 301 and r.headers["Location"].endswith("/pub/player/mixed-p2x10/stats")
    async with http.get(f"{base}/pub/player/mixed-p2x10/stats") as r:
        tag = r.headers["ETag"]
    async with http.get(
        f"{base}/pub/player/mixed-p2x10/stats", headers={"If-None-Match": tag}
    ) as r:
        assert r.status == 304
    await get_json(http, f"{base}/pub/player/gone-p2x10/stats", status=410)
    await get_json(http, f"{base}/pub/player/ghost-p2x10/stats", status=404)


async def test_hole_fails_until_healed(base: str, http: aiohttp.ClientSession) -> None:
    months = (await get_json(http, f"{base}/_sim/truth/chesscom/hole-p3x4"))["months"]
    url = f"{base}/pub/player/hole-p3x4/games/{months[1]}"
    for _ in range(3):
        await get_json(http, url, status=500)
    await get_json(http, f"{base}/pub/player/hole-p3x4/games/{months[0]}")
    truth = (await get_json(http, f"{base}/_sim/truth/lichess/hole-p3x4"))["games"]
    async with http.get(f"{base}/api/games/user/hole-p3x4?sort=dateAsc") as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()  # cut at the middle game, every time
    for source in ("chesscom", "lichess"):
        await post(http, f"{base}/_sim/heal/{source}/hole-p3x4")
    assert len((await get_json(http, url))["games"]) == 4
    games = await export(http, f"{base}/api/games/user/hole-p3x4?sort=dateAsc")
    assert [g["id"] for g in games] == truth and len(truth) == 12
    await post(http, f"{base}/_sim/reset")
    await get_json(http, url, status=500)  # reset forgets heals


async def test_corr_games_in_progress_export_ids_and_finish(
    base: str, http: aiohttp.ClientSession
) -> None:
    user = "corr-p3x10"
    plain = await export(http, f"{base}/api/games/user/{user}?sort=dateAsc")
    everything = await export(http, f"{base}/api/games/user/{user}?sort=dateAsc&ongoing=true")
    going = [g for g in everything if g["status"] == "started"]
    assert 3 <= len(going) <= 5 and len(plain) == 30 == len(everything) - len(going)
    created = [g["createdAt"] for g in everything]
    assert created == sorted(created)
    only = await export(http, f"{base}/api/games/user/{user}?ongoing=true&finished=false")
    assert {g["id"] for g in only} == {g["id"] for g in going}
    user_doc = await get_json(http, f"{base}/api/user/{user}")
    assert (user_doc["count"]["all"], user_doc["count"]["playing"]) == (30, len(going))
    truth = (await get_json(http, f"{base}/_sim/truth/lichess/{user}"))["games"]
    assert truth == [g["id"] for g in plain]  # games in progress are not in the truth

    ids = ",".join([g["id"] for g in going] + ["nosuchgame"])
    found = await post(http, f"{base}/api/games/export/_ids", data=ids)
    assert [g["id"] for g in found] == [g["id"] for g in going]
    await post(http, f"{base}/api/games/export/_ids", status=400, data=",".join(["x"] * 301))

    ended = await post(http, f"{base}/_sim/finish/lichess/{user}?games=2")
    assert ended["finished"] == [g["id"] for g in going[:2]]
    assert ended["ongoing"] == len(going) - 2
    found = await post(http, f"{base}/api/games/export/_ids", data=ids)
    states = {g["id"]: g["status"] for g in found}
    assert [states[g["id"]] != "started" for g in going] == [True, True] + [False] * (
        len(going) - 2
    )
    late = [g for g in found if g["status"] != "started"]
    latest_plain = max(g["lastMoveAt"] for g in plain)
    assert all(g["lastMoveAt"] > latest_plain + 29 * 86_400_000 for g in late)
    plain_after = await export(http, f"{base}/api/games/user/{user}?sort=dateAsc")
    assert len(plain_after) == 32
    assert len((await get_json(http, f"{base}/_sim/truth/lichess/{user}"))["games"]) == 32
    assert (await get_json(http, f"{base}/api/user/{user}"))["count"]["all"] == 32
    await post(http, f"{base}/_sim/finish/chesscom/{user}", status=404)
    await post(http, f"{base}/_sim/finish/lichess/p3x10", status=404)
    await post(http, f"{base}/_sim/finish/lichess/{user}?games=x", status=400)
