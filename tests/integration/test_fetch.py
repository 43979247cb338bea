"""The fetch layer against the upstream simulator and a few hand-made misbehaving servers."""

from __future__ import annotations

import asyncio
import calendar
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub.errors import PlayerNotFound, RateLimited, UpstreamBadData, UpstreamUnavailable
from hub.fetch import ChessCom, Http, Lichess, Page, Source, make_sources
from hub.settings import Settings
from hub.sim import SimConfig, start_sim
from hub.store.base import Ledger

# A fixed sim clock (mid-month) so game times and the current month cannot move under a test.
NOW = float(calendar.timegm((2026, 11, 15, 12, 0, 0)))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_settings(base: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "chesscom_url": base,
        "lichess_url": base,
        "retry_base_s": 0.01,
        "retry_max_s": 0.05,
        "pause_chesscom_s": 0.05,
        "pause_lichess_s": 0.05,
        "request_timeout_s": 5.0,
    }
    values.update(changes)
    return Settings(**values)


@asynccontextmanager
async def running_sim(**config: Any) -> AsyncIterator[str]:
    options: dict[str, Any] = {"latency_ms": 0, "lichess_gps": 0, "lichess_penalty_s": 0.5}
    options.update(config)
    runner, port = await start_sim(SimConfig(**options), port=0, clock=lambda: NOW)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Http]:
    http = await Http.open(settings)
    try:
        yield http
    finally:
        await http.close()


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    async with running_sim() as base:
        yield base


@pytest.fixture
async def http(sim: str) -> AsyncIterator[Http]:
    async with opened(make_settings(sim)) as http:
        yield http


async def sim_call(base: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.request(method, base + path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def truth(base: str, source: str, user: str) -> list[str]:
    games: list[str] = (await sim_call(base, "GET", f"/_sim/truth/{source}/{user}"))["games"]
    return games


async def fetch(
    source: Source,
    user: str,
    cursor: str | None = None,
    waits: list[Any] | None = None,
    ledger: Ledger | None = None,
) -> list[Page]:
    def on_wait(reason: str, seconds: float) -> None:
        if waits is not None:
            waits.append((reason, seconds))

    return [page async for page in source.pages(user, cursor, on_wait, ledger=ledger)]


def ledger_after(pages: list[Page], before: Ledger | None = None) -> Ledger:
    """The ledger a store would hold after these pages (units only)."""
    units = dict(before.units) if before else {}
    for page in pages:
        if page.ledger is None:
            continue
        for unit in page.ledger.drop:
            units.pop(unit, None)
        if page.ledger.unit is not None:
            units[page.ledger.unit.unit] = page.ledger.unit
    return Ledger(units=units)


def ids(pages: list[Page]) -> list[str]:
    return [row.game_id for page in pages for row in page.rows]


def check_estimates(pages: list[Page]) -> None:
    for done, page in enumerate(pages, 1):
        assert page.pages_total is not None and page.pages_total >= done
    if pages:
        assert pages[-1].pages_total == len(pages)


# the simulator


async def test_make_sources(http: Http) -> None:
    sources = make_sources(http, http.settings)
    assert set(sources) == {"chesscom", "lichess"}
    assert all(name == source.name for name, source in sources.items())


async def test_chesscom_30_months_exact_over_one_connection(sim: str, http: Http) -> None:
    source = ChessCom(http, http.settings)
    assert await source.probe("Alicep30x20", None) == 30
    pages = await fetch(source, "Alicep30x20")
    assert len(pages) == 30
    assert [p.pages_total for p in pages] == [30] * 30
    assert ids(pages) == await truth(sim, "chesscom", "alicep30x20")
    assert {row.username for p in pages for row in p.rows} == {"alicep30x20"}
    stats = http.stats
    assert stats.connections_created <= http.settings.inflight_chesscom
    assert stats.connections_reused >= len(pages) - http.settings.inflight_chesscom
    assert stats.requests_by_status["chesscom"] == {"200": 31}  # the probe's list is reused
    assert stats.retries["chesscom"] == 0


async def test_lichess_full_export_exact(sim: str, http: Http) -> None:
    source = Lichess(http, http.settings)
    assert await source.probe("Bobp30x20", None) == 6
    pages = await fetch(source, "Bobp30x20")
    assert [len(p.rows) for p in pages] == [100] * 6
    check_estimates(pages)
    assert ids(pages) == await truth(sim, "lichess", "bobp30x20")
    assert http.stats.connections_created == 1


@pytest.mark.parametrize("kind", ["chesscom", "lichess"])
async def test_ghost_is_player_not_found(http: Http, kind: str) -> None:
    source = make_sources(http, http.settings)[kind]
    with pytest.raises(PlayerNotFound):
        await source.probe("ghostp3x5", None)
    with pytest.raises(PlayerNotFound):
        await fetch(source, "ghostp3x5")


@pytest.mark.parametrize("kind", ["chesscom", "lichess"])
async def test_gone_is_player_not_found(http: Http, kind: str) -> None:
    with pytest.raises(PlayerNotFound):
        await fetch(make_sources(http, http.settings)[kind], "gonep3x5")


@pytest.mark.parametrize(("kind", "retries"), [("chesscom", 7), ("lichess", 2)])
async def test_flaky_completes_exactly_with_retries(
    sim: str, http: Http, kind: str, retries: int
) -> None:
    waits: list[Any] = []
    pages = await fetch(make_sources(http, http.settings)[kind], "flakyp6x10", waits=waits)
    assert ids(pages) == await truth(sim, kind, "flakyp6x10")
    # chess.com: the archive list and each of 6 months; lichess: the profile and the export
    assert http.stats.retries[kind] == retries
    assert http.stats.requests_by_status[kind]["503"] == retries
    assert len(waits) == retries and all(reason == "retrying" for reason, _ in waits)
    assert all(0 <= seconds <= 0.05 for _, seconds in waits)


@pytest.mark.parametrize("user", ["dropp5x50", "dropp2x20"])
async def test_lichess_dropped_stream_resumes_exactly(sim: str, http: Http, user: str) -> None:
    pages = await fetch(Lichess(http, http.settings), user)
    got = ids(pages)
    assert got == await truth(sim, "lichess", user)
    assert len(set(got)) == len(got)
    check_estimates(pages)
    # the sim cuts the first try of every distinct request, so a resumed one may be cut again
    assert http.stats.retries["lichess"] >= 1


async def test_lichess_duplicate_lines_dropped(sim: str, http: Http) -> None:
    pages = await fetch(Lichess(http, http.settings), "dupp4x30")
    assert ids(pages) == await truth(sim, "lichess", "dupp4x30")
    check_estimates(pages)


async def sim_status(base: str, site: str) -> dict[str, int]:
    status: dict[str, int] = (await sim_call(base, "GET", "/_sim/stats"))[site]["status"]
    return status


async def test_chesscom_incremental(sim: str, http: Http) -> None:
    source = ChessCom(http, http.settings)
    first = await fetch(source, "carolp24x10")
    assert len(first) == 24
    cursor = first[-1].cursor
    assert cursor is not None
    assert json.loads(cursor)["month"] == "2026/11" and json.loads(cursor)["etag"]

    ledger = ledger_after(first)
    assert len(ledger.units) == 24 and {u.state for u in ledger.units.values()} == {"stored"}

    before = await sim_status(sim, "chesscom")
    assert await source.probe("carolp24x10", cursor) == 1
    again = await fetch(source, "carolp24x10", cursor, ledger=ledger)
    after = await sim_status(sim, "chesscom")
    # the cursor month, asked with its ETag: a 304, and the cursor does not move
    assert [(p.rows, p.cursor) for p in again] == [([], None)]
    unit = again[0].ledger.unit if again[0].ledger else None
    assert unit is not None and (unit.unit, unit.state, unit.games_seen) == (
        "2026/11",
        "not_modified",
        10,
    )
    delta = {code: n - before.get(code, 0) for code, n in after.items()}
    assert delta.get("304") == 1
    assert sum(n for code, n in delta.items() if code != "304") <= 2

    known = set(await truth(sim, "chesscom", "carolp24x10"))
    await sim_call(sim, "POST", "/_sim/grow/chesscom/carolp24x10?games=5")
    grown = set(await truth(sim, "chesscom", "carolp24x10")) - known
    assert len(grown) == 5
    third = await fetch(source, "carolp24x10", cursor, ledger=ledger_after(again, ledger))
    # the cursor month is refetched whole; the store's unique key drops what it already has
    assert len(third) == 1
    assert set(ids(third)) - known == grown
    assert third[0].cursor is not None and third[0].cursor != cursor


async def test_chesscom_hole_is_a_failed_month_and_the_cursor_waits_for_it(sim: str) -> None:
    user = "holep4x5"
    async with opened(make_settings(sim, retries=1)) as http:
        source = ChessCom(http, http.settings)
        first = await fetch(source, user)
        ledger = ledger_after(first)
        states = {u: row.state for u, row in ledger.units.items()}
        assert states == {
            "2026/08": "stored",
            "2026/09": "failed",
            "2026/10": "stored",
            "2026/11": "stored",
        }
        assert "HTTP 500" in (ledger.units["2026/09"].error or "")
        # the cursor names the last month with no hole before it, and never passes the hole
        cursors = [json.loads(p.cursor)["month"] for p in first if p.cursor]
        assert cursors == ["2026/08"]
        assert len(ids(first)) == 15
        await sim_call(sim, "POST", f"/_sim/heal/chesscom/{user}")
        second = await fetch(source, user, first[0].cursor, ledger=ledger)
    # the failed month first, then every month from the cursor on, asked with their ETags
    units = [p.ledger.unit.unit for p in second if p.ledger and p.ledger.unit]
    assert units == ["2026/09", "2026/08", "2026/10", "2026/11"]
    assert [len(p.rows) for p in second] == [5, 0, 0, 0]
    assert json.loads(second[0].cursor or "")["month"] == "2026/11"
    assert sorted(ids(first) + ids(second)) == sorted(await truth(sim, "chesscom", user))


async def test_chesscom_repair_reads_only_the_short_months(sim: str, http: Http) -> None:
    source = ChessCom(http, http.settings)
    first = await fetch(source, "erinp6x4")
    ledger = ledger_after(first)
    # the store lost the games of one month; the others hold what they saw
    stored = {u: row.games_seen for u, row in ledger.units.items()}
    stored["2026/08"] = 1
    ledger = Ledger(units=ledger.units, stored=stored)
    cursor = first[-1].cursor
    pages = [p async for p in source.pages("erinp6x4", cursor, ledger=ledger, repair=True)]
    assert [p.ledger.unit.unit for p in pages if p.ledger and p.ledger.unit] == ["2026/08"]
    assert len(ids(pages)) == 4 and pages[0].ledger is not None
    assert pages[0].ledger.unit is not None and pages[0].ledger.unit.status == 200  # no 304


async def test_lichess_incremental_since_in_ms(sim: str, http: Http) -> None:
    source = Lichess(http, http.settings)
    first = await fetch(source, "davep24x10")
    known = set(ids(first))
    assert len(known) == 240
    cursor = first[-1].cursor
    assert cursor is not None
    state = json.loads(cursor)
    assert state["seen"] == 240
    assert state["since"] > 10**12  # epoch milliseconds, not seconds

    assert set(ids(await fetch(source, "davep24x10", cursor))) <= known  # lookback only
    await sim_call(sim, "POST", "/_sim/grow/lichess/davep24x10?games=5")
    grown = set(await truth(sim, "lichess", "davep24x10")) - known
    assert len(grown) == 5
    assert await source.probe("davep24x10", cursor) == 1

    # with the default 10-minute margin: the games of the margin come again, and the new ones
    second = await fetch(source, "davep24x10", cursor)
    got = ids(second)
    assert set(got) - known == grown
    assert len(got) < 240 / 2  # a `since` in seconds would have re-read everything
    assert json.loads(second[-1].cursor or "")["seen"] == 245

    # without lookback, exactly the new games
    async with opened(make_settings(sim, lichess_lookback_s=0.0)) as strict:
        exact = await fetch(Lichess(strict, strict.settings), "davep24x10", cursor)
    assert set(ids(exact)) == grown and len(ids(exact)) == 5


async def test_per_upstream_caps_hold_across_six_imports() -> None:
    async with (
        running_sim(latency_ms=20, lichess_gps=400) as base,
        opened(make_settings(base)) as http,
    ):
        sources = make_sources(http, http.settings)
        jobs = [
            (kind, f"{prefix}{n}p4x30")
            for n in range(3)
            for kind, prefix in (("chesscom", "cc"), ("lichess", "li"))
        ]
        results = await asyncio.gather(*(fetch(sources[kind], user) for kind, user in jobs))
        for (kind, user), pages in zip(jobs, results, strict=True):
            assert ids(pages) == await truth(base, kind, user)
        stats = await sim_call(base, "GET", "/_sim/stats")
    assert stats["chesscom"]["peak_in_flight"] == http.settings.inflight_chesscom
    assert stats["lichess"]["peak_in_flight"] == http.settings.inflight_lichess
    for site in ("chesscom", "lichess"):
        assert "429" not in stats[site]["status"]


# hand-made upstreams


@asynccontextmanager
async def serve(routes: Mapping[str, Handler]) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def archives(*months: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        user = request.match_info["user"]
        urls = [f"https://api.chess.com/pub/player/{user}/games/{m}" for m in months]
        return web.json_response({"archives": urls})

    return handler


def lichess_line(n: int, user: str = "me") -> bytes:
    game = {
        "id": f"g{n:04d}",
        "rated": True,
        "speed": "blitz",
        "createdAt": 1_700_000_000_000 + n * 1000,
        "lastMoveAt": 1_700_000_000_000 + n * 1000 + 500,
        "status": "draw",
        "players": {"white": {"user": {"name": user, "id": user}}, "black": {"aiLevel": 2}},
    }
    return json.dumps(game).encode() + b"\n"


async def lichess_user(request: web.Request) -> web.Response:
    return web.json_response({"id": "me", "count": {"all": 10}})


def stream_of(*chunks: bytes | float) -> Handler:
    """An export that writes the byte chunks and sleeps for the float ones."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for chunk in chunks:
            if isinstance(chunk, float):
                await asyncio.sleep(chunk)
            else:
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    return handler


@pytest.mark.parametrize(
    "body",
    [
        b'{"games": [',
        b'{"games": [{"uuid": "x"}]}',
        b'{"games":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"<html>internal error</html>",
    ],
)
async def test_chesscom_malformed_month_is_a_failed_month(body: bytes) -> None:
    async def month(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with (
        serve(
            {
                "/pub/player/{user}/games/archives": archives("2026/10"),
                "/pub/player/{user}/games/2026/10": month,
            }
        ) as base,
        opened(make_settings(base)) as http,
    ):
        [page] = await fetch(ChessCom(http, http.settings), "me")
    unit = page.ledger.unit if page.ledger else None
    assert page.rows == []
    if body == b'{"games": [{"uuid": "x"}]}':  # read, but its one game is unreadable: a gap
        assert unit is not None and (unit.state, unit.unreadable) == ("stored", ["x"])
    else:  # not read: the cursor stays before it
        assert unit is not None and unit.state == "failed"
        assert "could not read" in (unit.error or "") and page.cursor is None


async def test_chesscom_months_failing_in_a_row_stop_the_import() -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>", content_type="text/html")

    months = ("2026/07", "2026/08", "2026/09", "2026/10", "2026/11")
    routes = {"/pub/player/{user}/games/archives": archives(*months)}
    routes.update({f"/pub/player/{{user}}/games/{m}": down for m in months})
    got: list[Page] = []
    async with serve(routes) as base, opened(make_settings(base)) as http:
        with pytest.raises(UpstreamBadData):
            async for page in ChessCom(http, http.settings).pages("me", None):
                got.append(page)
    # three months failed; the first page marked the others pending
    states = [p.ledger.unit.state for p in got if p.ledger and p.ledger.unit]
    assert states == ["failed"] * 3
    assert got[0].ledger is not None and got[0].ledger.pending == list(months)


async def test_chesscom_malformed_archives_is_bad_data() -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(body=b'{"archives": [1, 2]}', content_type="application/json")

    async with (
        serve({"/pub/player/{user}/games/archives": bad}) as base,
        opened(make_settings(base)) as http,
    ):
        with pytest.raises(UpstreamBadData):
            await ChessCom(http, http.settings).probe("me", None)


@pytest.mark.parametrize(
    "bad",
    [b"{not json\n", b'{"id": "x"}\n', b'{"id":' + b"[" * 100_000 + b"\n", b"x" * 2_000_000],
)
async def test_lichess_malformed_line_is_skipped_and_named(bad: bytes) -> None:
    routes = {
        "/api/user/{user}": lichess_user,
        "/api/games/user/{user}": stream_of(lichess_line(1), bad, lichess_line(2)),
    }
    async with serve(routes) as base, opened(make_settings(base, lichess_page=1)) as http:
        got: list[Page] = []
        if len(bad) > 1_000_000:  # too long to be one game: the stream cannot go on
            with pytest.raises(UpstreamBadData):
                async for page in Lichess(http, http.settings).pages("me", None):
                    got.append(page)
            [failed] = got
            assert failed.ledger is not None and failed.ledger.unit is not None
            assert (failed.ledger.unit.unit, failed.ledger.unit.state) == ("0..", "failed")
            return
        got = await fetch(Lichess(http, http.settings), "me")
    assert ids(got) == ["g0001", "g0002"]
    unit = got[0].ledger.unit if got[0].ledger else None
    assert unit is not None and unit.skipped == {"unparseable": 1}
    assert unit.unreadable == ["x" if b'"x"' in bad else "?"]


async def test_lichess_bad_profile_is_bad_data() -> None:
    async def profile(request: web.Request) -> web.Response:
        return web.Response(body=b'{"count": {"all": "many"}}', content_type="application/json")

    async with serve({"/api/user/{user}": profile}) as base, opened(make_settings(base)) as http:
        with pytest.raises(UpstreamBadData):
            await Lichess(http, http.settings).probe("me", None)


async def test_429_waits_retry_after_then_the_pause() -> None:
    calls: list[str] = []

    async def month(request: web.Request) -> web.Response:
        calls.append(request.headers.get("If-None-Match", ""))
        if len(calls) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if len(calls) == 2:
            return web.Response(status=429)
        return web.json_response({"games": []})

    routes = {
        "/pub/player/{user}/games/archives": archives("2026/10"),
        "/pub/player/{user}/games/2026/10": month,
    }
    async with serve(routes) as base, opened(make_settings(base)) as http:
        waits: list[Any] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        pages = await fetch(ChessCom(http, http.settings), "me", waits=waits)
        assert loop.time() - started >= 1.0
        assert waits == [("rate_limited", 1.0), ("rate_limited", 0.05)]
        assert [p.rows for p in pages] == [[]]
        assert http.stats.requests_by_status["chesscom"] == {"200": 2, "429": 2}
        assert http.stats.retries["chesscom"] == 2


async def test_endless_429_is_rate_limited_after_the_budget() -> None:
    hits: list[int] = []

    async def busy(request: web.Request) -> web.Response:
        hits.append(1)
        return web.Response(status=429, text="<html>Too many requests</html>")

    routes = {"/api/user/{user}": lichess_user, "/api/games/user/{user}": busy}
    async with serve(routes) as base, opened(make_settings(base, retries=3)) as http:
        with pytest.raises(RateLimited):
            await fetch(Lichess(http, http.settings), "me")
    assert len(hits) == 4  # the first attempt and 3 retries


async def test_endless_5xx_is_unavailable_with_jittered_backoff() -> None:
    async def down(request: web.Request) -> web.Response:
        return web.Response(status=502)

    async with (
        serve({"/pub/player/{user}/games/archives": down}) as base,
        opened(make_settings(base, retries=4, retry_max_s=0.03)) as http,
    ):
        waits: list[Any] = []
        with pytest.raises(UpstreamUnavailable):
            await fetch(ChessCom(http, http.settings), "me", waits=waits)
    caps = [min(0.03, 0.01 * 2**n) for n in range(4)]
    assert [r for r, _ in waits] == ["retrying"] * 4
    assert all(0 <= s <= cap for (_, s), cap in zip(waits, caps, strict=True))


async def test_chesscom_403_names_the_user_agent() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "message": "Forbidden"}, status=403)

    async with (
        serve({"/pub/player/{user}/games/archives": refuse}) as base,
        opened(make_settings(base)) as http,
    ):
        with pytest.raises(UpstreamUnavailable, match="User-Agent"):
            await ChessCom(http, http.settings).probe("me", None)


async def test_chesscom_month_410_is_an_empty_page_and_404_is_transient() -> None:
    tries: list[str] = []

    async def month(request: web.Request) -> web.Response:
        which = request.match_info["m"]
        tries.append(which)
        if which == "09":
            return web.Response(status=410)
        if which == "10" and tries.count("10") == 1:
            return web.json_response(
                {"code": 0, "message": "An internal error has occurred"}, status=404
            )
        return web.json_response({"games": []}, headers={"ETag": f'"{which}"'})

    routes = {
        "/pub/player/{user}/games/archives": archives("2026/09", "2026/10", "2026/11"),
        "/pub/player/{user}/games/2026/{m}": month,
    }
    async with serve(routes) as base, opened(make_settings(base)) as http:
        pages = await fetch(ChessCom(http, http.settings), "Me")
    assert [json.loads(p.cursor or "") for p in pages] == [
        {"month": "2026/09"},
        {"month": "2026/10", "etag": '"10"'},
        {"month": "2026/11", "etag": '"11"'},
    ]
    assert tries == ["09", "10", "10", "11"]


async def test_lichess_stalled_stream_resumes_but_a_slow_live_one_is_kept() -> None:
    served: list[str] = []

    async def export(request: web.Request) -> web.StreamResponse:
        served.append(request.query.get("since", ""))
        lines = [lichess_line(n) for n in range(1, 7)]
        if len(served) == 1:  # 3 games, then silence past the read timeout
            return await stream_of(*lines[:3], 2.0)(request)
        since = int(request.query["since"])
        rest = [line for line in lines if json.loads(line)["createdAt"] >= since]
        return await stream_of(*(x for line in rest for x in (0.15, line)))(request)

    routes = {"/api/user/{user}": lichess_user, "/api/games/user/{user}": export}
    settings_changes = {"lichess_page": 2, "request_timeout_s": 0.4}
    async with serve(routes) as base, opened(make_settings(base, **settings_changes)) as http:
        pages = await fetch(Lichess(http, http.settings), "me")
    assert ids(pages) == [f"g{n:04d}" for n in range(1, 7)]
    # the first page (g1, g2) was yielded before the stall; g3 is re-read after it
    assert served == ["", str(1_700_000_000_000 + 2 * 1000 + 1)]
    check_estimates(pages)
