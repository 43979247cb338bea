"""Upstream payloads to GameRow, cursors and the lichess pager, without sockets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.errors import UpstreamBadData
from hub.fetch import Page, chesscom, lichess, months, windows
from hub.fetch.http import MAX_RETRY_AFTER_S, parse_retry_after
from hub.store.base import GameRow

DATA = Path(__file__).parents[1] / "data"


def lichess_lines() -> list[bytes]:
    return [line for line in (DATA / "lichess-games.ndjson").read_bytes().splitlines() if line]


def chesscom_game(**changes: Any) -> dict[str, Any]:
    game: dict[str, Any] = json.loads((DATA / "chesscom-month.json").read_bytes())["games"][0]
    game.update(changes)
    return game


def month(*games: dict[str, Any]) -> bytes:
    return json.dumps({"games": list(games)}).encode()


def lichess_game(n: int, created: int, white: str = "me", **changes: Any) -> lichess.Game:
    raw: dict[str, Any] = {
        "id": f"g{n}",
        "rated": True,
        "speed": "blitz",
        "createdAt": created,
        "lastMoveAt": created + 60_000,
        "status": "resign",
        "winner": "white",
        "players": {
            "white": {"user": {"name": white, "id": white.lower()}, "rating": 1500},
            "black": {"user": {"name": "other", "id": "other"}, "rating": 1500},
        },
    }
    raw.update(changes)
    return lichess.decode_game(json.dumps(raw).encode())


# chess.com


def test_chesscom_sample_month_maps_every_game() -> None:
    read = chesscom.parse_month((DATA / "chesscom-month.json").read_bytes(), "sampleplayer")
    rows = read.rows
    assert (read.seen, read.skipped, read.unreadable) == (2, {}, [])
    assert (read.first_ms, read.last_ms) == (1793612345000, 1793700000000)
    assert rows == [
        GameRow(
            source="chesscom",
            game_id="0f1e2d3c-aaaa-11ee-8c90-0242ac120002",
            username="sampleplayer",
            end_time=1793612345,
            time_class="blitz",
            rated=True,
            white="SamplePlayer",
            black="otherplayer",
            white_rating=1512,
            black_rating=1498,
            white_result="win",
            black_result="resigned",
            color="white",
            outcome="win",
            pgn=rows[0].pgn,
            listed_ms=1793612345000,
        ),
        GameRow(
            source="chesscom",
            game_id="0f1e2d3c-bbbb-11ee-8c90-0242ac120002",
            username="sampleplayer",
            end_time=1793700000,
            time_class="daily",
            rated=False,
            white="thirdplayer",
            black="SamplePlayer",
            white_rating=1320,
            black_rating=1288,
            white_result="agreed",
            black_result="agreed",
            color="black",
            outcome="draw",
            pgn=rows[1].pgn,
            listed_ms=1793700000000,
        ),
    ]
    assert rows[0].pgn is not None and rows[0].pgn.startswith('[Event "Live Chess"]')


def test_chesscom_opponent_view_of_the_same_game() -> None:
    [row] = chesscom.parse_month(month(chesscom_game()), "otherplayer").rows
    assert (row.color, row.outcome, row.username) == ("black", "loss", "otherplayer")


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ("win", "win"),
        *[
            (r, "draw")
            for r in (
                "agreed",
                "repetition",
                "stalemate",
                "insufficient",
                "50move",
                "timevsinsufficient",
            )
        ],
        *[(r, "loss") for r in ("checkmated", "resigned", "timeout", "lose", "abandoned")],
    ],
)
def test_chesscom_outcome(result: str, expected: str) -> None:
    assert chesscom.outcome(result) == expected


def test_chesscom_uuid_falls_back_to_url_and_ratings_may_be_absent() -> None:
    game = chesscom_game()
    del game["uuid"], game["white"]["rating"], game["pgn"]
    [row] = chesscom.parse_month(month(game), "sampleplayer").rows
    assert row.game_id == "https://www.chess.com/game/live/100000000001"
    assert (row.white_rating, row.black_rating, row.pgn) == (None, 1498, None)


def test_chesscom_game_without_any_id_is_skipped_as_unparseable() -> None:
    game = chesscom_game()
    del game["uuid"], game["url"]
    read = chesscom.parse_month(month(game, chesscom_game(uuid="kept")), "sampleplayer")
    assert [r.game_id for r in read.rows] == ["kept"]
    assert (read.seen, read.skipped, read.unreadable) == (2, {"unparseable": 1}, ["?"])


def test_chesscom_dedupes_and_skips_games_of_others(caplog: pytest.LogCaptureFixture) -> None:
    other = chesscom_game(uuid="x-1")
    other["white"] = dict(other["white"], username="Stranger")
    with caplog.at_level(logging.WARNING):
        read = chesscom.parse_month(month(chesscom_game(), chesscom_game(), other), "sampleplayer")
    assert [r.game_id for r in read.rows] == ["0f1e2d3c-aaaa-11ee-8c90-0242ac120002"]
    assert (read.seen, read.skipped) == (2, {"not_the_player": 1})
    assert "x-1" in caplog.text


def test_chesscom_empty_month() -> None:
    read = chesscom.parse_month(b'{"games":[]}', "x")
    assert (read.rows, read.seen, read.first_ms) == ([], 0, None)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>oops</html>",
        b'{"games": [',
        b'{"games": {}}',
        b'{"games":' + b"[" * 100_000,
        b'{"games":[{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}",
    ],
)
def test_chesscom_malformed_month_is_bad_data(body: bytes) -> None:
    with pytest.raises(UpstreamBadData):
        chesscom.parse_month(body, "sampleplayer")


@pytest.mark.parametrize(
    "game",
    [
        {k: v for k, v in chesscom_game(uuid="bad").items() if k != "end_time"},
        chesscom_game(uuid="bad", white={"username": "SamplePlayer"}),
        chesscom_game(uuid="bad", end_time="yesterday"),
    ],
)
def test_chesscom_unparseable_game_is_counted_and_named(game: dict[str, Any]) -> None:
    read = chesscom.parse_month(month(chesscom_game(), game), "sampleplayer")
    assert [r.game_id for r in read.rows] == ["0f1e2d3c-aaaa-11ee-8c90-0242ac120002"]
    assert (read.seen, read.skipped, read.unreadable) == (2, {"unparseable": 1}, ["bad"])


def test_chesscom_variants_and_start_position() -> None:
    start = "nrbbkqrn/pppppppp/8/8/8/8/PPPPPPPP/NRBBKQRN w KQkq - 0 1"
    games = [
        chesscom_game(uuid="960", rules="chess960", initial_setup=start),
        chesscom_game(uuid="pos", initial_setup="8/8/4k3/8/8/4K3/4P3/8 w - - 0 1", rated=False),
        chesscom_game(uuid="std"),
    ]
    rows = chesscom.parse_month(month(*games), "sampleplayer").rows
    assert [(r.game_id, r.variant, r.initial_fen, r.rated) for r in rows] == [
        ("960", "chess960", start, True),
        ("pos", "standard", "8/8/4k3/8/8/4K3/4P3/8 w - - 0 1", False),
        ("std", "standard", None, True),
    ]


def test_chesscom_stats_count_rated_records_only() -> None:
    stats = (DATA / "chesscom-stats.json").read_bytes()
    # daily 14+9+2, chess960 daily 1+2+0, rapid 212+198+17, blitz 140+151+9, bullet 30+41+1
    assert chesscom.parse_stats(stats) == 25 + 3 + 427 + 300 + 72
    assert chesscom.parse_stats(b'{"fide": 0}') == 0
    with pytest.raises(UpstreamBadData):
        chesscom.parse_stats(b"<html>")


def test_chesscom_archives_and_rebase() -> None:
    months = chesscom.parse_archives((DATA / "chesscom-archives.json").read_bytes())
    assert [m for m, _ in months] == ["2026/09", "2026/10", "2026/11"]
    url = months[0][1]
    assert chesscom.rebase(url, "http://127.0.0.1:8081") == (
        "http://127.0.0.1:8081/pub/player/sampleplayer/games/2026/09"
    )
    assert chesscom.rebase(url, "http://sim:1/chesscom") == (
        "http://sim:1/chesscom/pub/player/sampleplayer/games/2026/09"
    )
    already = "http://sim:1/chesscom/pub/player/a/games/2026/09"
    assert chesscom.rebase(already, "http://sim:1/chesscom") == already


@pytest.mark.parametrize(
    "body", [b'{"archives": ["https://api.chess.com/pub/player/x/stats"]}', b"{}", b"[]"]
)
def test_chesscom_bad_archives(body: bytes) -> None:
    with pytest.raises(UpstreamBadData):
        chesscom.parse_archives(body)


def test_chesscom_cursor_round_trip_and_garbage() -> None:
    cursor = months.Cursor(month="2026/09", etag='W/"abc"')
    text = msgspec.json.encode(cursor).decode()
    assert json.loads(text) == {"month": "2026/09", "etag": 'W/"abc"'}
    assert chesscom.decode_cursor(text) == cursor
    for garbage in ("", "{}", '{"month":"2026-09"}', "[", '{"since": 5, "seen": 1}'):
        assert chesscom.decode_cursor(garbage) is None


# lichess


def test_lichess_sample_games_map() -> None:
    rows = [lichess.parse_game(line, "sampleplayer") for line in lichess_lines()]
    assert rows == [
        GameRow(
            source="lichess",
            game_id="aB3dE5fG",
            username="sampleplayer",
            end_time=1793600400,
            time_class="blitz",
            rated=True,
            white="SamplePlayer",
            black="OtherPlayer",
            white_rating=1805,
            black_rating=1790,
            white_result="win",
            black_result="resign",
            color="white",
            outcome="win",
            listed_ms=1793600000000,
        ),
        GameRow(
            source="lichess",
            game_id="hJ7kL9mN",
            username="sampleplayer",
            end_time=1793501200,
            time_class="rapid",
            rated=False,
            white="ThirdPlayer",
            black="SamplePlayer",
            white_rating=1650,
            black_rating=1810,
            white_result="draw",
            black_result="draw",
            color="black",
            outcome="draw",
            listed_ms=1793500000000,
        ),
        GameRow(
            source="lichess",
            game_id="pQ2rS4tU",
            username="sampleplayer",
            end_time=1793400100,
            time_class="bullet",
            rated=True,
            white="SamplePlayer",
            black="AI level 3",
            white_rating=1700,
            black_rating=None,
            white_result="mate",
            black_result="win",
            color="white",
            outcome="loss",
            listed_ms=1793400000000,
        ),
    ]


def test_lichess_other_side_status_pgn_and_anonymous() -> None:
    game = lichess_game(
        1,
        1_700_000_000_000,
        white="Me",
        winner="black",
        status="unknownFinish",
        pgn="1. e4 *",
        players={"white": {"user": {"name": "Me", "id": "me"}}, "black": {}},
    )
    row = lichess.to_row(game, "me")
    assert row is not None
    assert (row.black, row.white_result, row.black_result, row.outcome) == (
        "Anonymous",
        "loss",
        "win",
        "loss",
    )
    assert row.pgn == "1. e4 *"


def test_lichess_game_of_someone_else_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert lichess.parse_game(lichess_lines()[0], "nobody") is None
    assert "aB3dE5fG" in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        b"<html>",
        b'{"id": "x"}',
        b'{"id":"x","rated":true,"speed":"blitz","createdAt":1,"lastMoveAt":2,"status":"draw",'
        b'"players":{"white":{},"black":{}},"winner":"red"}',
        b'{"id":' + b"[" * 100_000,
        b'{"id":"x","extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_lichess_malformed_line_is_bad_data(line: bytes) -> None:
    with pytest.raises(UpstreamBadData):
        lichess.decode_game(line)


def test_lichess_variants_and_games_in_progress() -> None:
    [corr, c960] = [
        lichess.decode_game(line)
        for line in (DATA / "lichess-game-ongoing.ndjson").read_bytes().splitlines()
    ]
    block = windows.Block("corrplayer", ongoing={"q7ZvsdUF"})
    assert block.add(corr) is None and block.add(c960) is None  # both still in progress
    assert block.ongoing == [("q7ZvsdUF", 1791000000000), ("Hx2m9kQe", 1791500000000)]
    assert (block.seen, dict(block.skipped)) == (2, {"ongoing": 2})
    finished = msgspec.structs.replace(c960, status="mate", winner="white")
    row = lichess.to_row(finished, "corrplayer")
    assert row is not None
    assert (row.variant, row.initial_fen, row.listed_ms) == (
        "chess960",
        "nrbbkqrn/pppppppp/8/8/8/8/PPPPPPPP/NRBBKQRN w KQkq - 0 1",
        1791500000000,
    )
    position = lichess_game(1, T0, variant="fromPosition", initialFen="8/8/8/8/8/8/4K3/4k3 w - -")
    row = lichess.to_row(position, "me")
    assert row is not None and (row.variant, row.initial_fen) == (
        "standard",
        "8/8/8/8/8/8/4K3/4k3 w - -",
    )


def test_lichess_cursor_garbage() -> None:
    assert lichess.decode_cursor('{"since": 1700000000000, "seen": 3}') == lichess.Cursor(
        since=1_700_000_000_000, seen=3
    )
    for garbage in ("", "{}", '{"month":"2026/09"}', '{"since": "x", "seen": 1}'):
        assert lichess.decode_cursor(garbage) is None


T0 = 1_700_000_000_000  # epoch ms


def run(pager: lichess.Pager, games: list[lichess.Game]) -> list[Page]:
    pages = [p for p in map(pager.feed, games) if p is not None]
    last = pager.finish()
    return [*pages, *([last] if last else [])]


def test_pager_cuts_pages_and_estimates() -> None:
    games = [lichess_game(i, T0 + i * 1000) for i in range(25)]
    pages = run(lichess.Pager("me", 10, 21, None, 0), games)
    assert [len(p.rows) for p in pages] == [10, 10, 5]
    # the profile says 21 but the export has 25: the estimate grows, never below pages yielded
    assert [p.pages_total for p in pages] == [3, 3, 3]
    cursors = [lichess.decode_cursor(p.cursor) for p in pages]
    assert cursors == [
        lichess.Cursor(since=T0 + 9_001, seen=10),
        lichess.Cursor(since=T0 + 19_001, seen=20),
        lichess.Cursor(since=T0 + 24_001, seen=25),
    ]


def test_pager_estimate_raised_when_profile_count_is_low() -> None:
    games = [lichess_game(i, T0 + i) for i in range(30)]
    pages = run(lichess.Pager("me", 10, 5, None, 0), games)
    totals = [p.pages_total for p in pages]
    assert totals == [2, 3, 3]
    assert all(t is not None and t >= i + 1 for i, t in enumerate(totals))


def test_pager_never_cuts_between_equal_created_at() -> None:
    games = [lichess_game(i, T0 + (i if i < 9 else 9)) for i in range(12)]
    pages = run(lichess.Pager("me", 10, None, None, 0), games)
    assert [len(p.rows) for p in pages] == [12]


def test_pager_dedupes_and_restart_discards_partial_block() -> None:
    pager = lichess.Pager("me", 2, 5, None, 0)
    g = [lichess_game(i, T0 + i) for i in range(5)]
    assert [pager.feed(x) for x in (g[0], g[0], g[1])] == [None, None, None]
    first = pager.feed(g[2])
    assert first is not None and [r.game_id for r in first.rows] == ["g0", "g1"]
    assert pager.since == T0 + 2
    pager.restart()  # the stream was cut after g2: it is re-read from since
    assert [pager.feed(x) for x in (g[1], g[2], g[3])] == [None, None, None]
    second = pager.feed(g[4])
    assert second is not None and [r.game_id for r in second.rows] == ["g2", "g3"]
    last = pager.finish()
    assert last is not None and [r.game_id for r in last.rows] == ["g4"]


def test_pager_incremental_lookback_in_milliseconds() -> None:
    start = lichess.Cursor(since=T0, seen=40)
    pager = lichess.Pager("me", 10, 43, start, 14 * 86_400_000)
    assert pager.since == T0 - 14 * 86_400_000
    old = [lichess_game(i, T0 - 5_000 + i) for i in range(2)]  # re-read by the lookback
    new = [lichess_game(10 + i, T0 + i) for i in range(3)]
    pages = run(pager, old + new)
    assert len(pages) == 1 and len(pages[0].rows) == 5
    assert lichess.decode_cursor(pages[0].cursor) == lichess.Cursor(since=T0 + 3, seen=43)


def test_pager_lookback_only_page_keeps_cursor_monotone() -> None:
    pager = lichess.Pager("me", 10, None, lichess.Cursor(since=T0, seen=7), 60_000)
    [page] = run(pager, [lichess_game(1, T0 - 1_000)])
    assert lichess.decode_cursor(page.cursor) == lichess.Cursor(since=T0, seen=7)


def test_pager_skips_games_of_others_without_empty_pages() -> None:
    games = [lichess_game(i, T0 + i, white="me" if i % 2 else "x") for i in range(6)]
    pages = run(lichess.Pager("me", 10, None, None, 0), games)
    assert [[r.game_id for r in p.rows] for p in pages] == [["g1", "g3", "g5"]]
    assert run(lichess.Pager("me", 10, None, None, 0), []) == []


# http helpers


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("1e9") == MAX_RETRY_AFTER_S
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_pager_pages_are_ledger_windows_with_a_pending_rest() -> None:
    games = [lichess_game(i, T0 + i * 1000) for i in range(5)]
    pager = lichess.Pager("me", 2, None, None, 0, open_units=["17.."])
    pages = run(pager, games)
    writes = [p.ledger for p in pages]
    assert all(w is not None for w in writes)
    units = [(w.unit.unit, w.unit.games_seen, w.pending, w.drop) for w in writes if w and w.unit]
    assert units == [
        (f"{T0}..{T0 + 1000}", 2, [f"{T0 + 1001}.."], ["17.."]),
        (f"{T0 + 2000}..{T0 + 3000}", 2, [f"{T0 + 3001}.."], [f"{T0 + 1001}.."]),
        (f"{T0 + 4000}..{T0 + 4000}", 1, [], [f"{T0 + 3001}.."]),
    ]


def test_pager_counts_unreadable_and_in_progress_games() -> None:
    pager = lichess.Pager("me", 10, None, None, 0, ongoing={"g1"})
    pager.feed(lichess_game(0, T0))
    pager.unreadable("broken")
    pager.feed(lichess_game(1, T0 + 5))  # finished since the last import
    pager.feed(lichess_game(2, T0 + 9, status="started"))
    [page] = run(pager, [])
    write = page.ledger
    assert write is not None and write.unit is not None
    assert [r.game_id for r in page.rows] == ["g0", "g1"]
    assert (write.unit.games_seen, write.unit.skipped, write.unit.unreadable) == (
        4,
        {"unparseable": 1, "ongoing": 1},
        ["broken"],
    )
    assert (write.ongoing_add, write.ongoing_remove) == ([("g2", T0 + 9)], ["g1"])
    assert lichess.decode_cursor(page.cursor) == lichess.Cursor(since=T0 + 10, seen=3)


def test_pager_failure_is_a_failed_rest_and_a_clean_end_closes_it() -> None:
    start = lichess.Cursor(since=T0, seen=3)
    failed = lichess.Pager("me", 10, None, start, 0, open_units=[f"{T0}.."]).failed("cut")
    assert failed.ledger is not None and failed.ledger.unit is not None
    assert (failed.ledger.unit.unit, failed.ledger.unit.state, failed.ledger.drop) == (
        f"{T0}..",
        "failed",
        [],
    )
    assert failed.cursor is None and failed.rows == []
    # the next import finds nothing new, and still closes the failed rest
    [closing] = run(lichess.Pager("me", 10, None, start, 0, open_units=[f"{T0}.."]), [])
    assert closing.ledger is not None and closing.ledger.drop == [f"{T0}.."]
    assert closing.ledger.unit is None and closing.rows == []
