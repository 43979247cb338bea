"""Ground truth of the upstream simulator: sizes, ids, times, growth and game shapes."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.sim import players
from hub.sim.corr import LATE_MS, Corr
from hub.sim.faults import identifies, with_dups

NOW = calendar.timegm((2026, 11, 28, 20, 0, 0))  # a fixed clock: 28 Nov 2026, 20:00 UTC
ROOT = Path(__file__).resolve().parents[2]
CHESSCOM_RESULTS = {"win", "checkmated", "resigned", "timeout", "lose", "abandoned"}
CHESSCOM_DRAWS = {"agreed", "repetition", "stalemate", "insufficient", "50move"}
CHESSCOM_DRAWS.add("timevsinsufficient")
START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"


def games_of(source: str, name: str, now: float = NOW, growth: Any = None) -> list[dict[str, Any]]:
    """Every game of a player, decoded from what the simulator would send."""
    growth = growth or {}
    out: list[dict[str, Any]] = []
    for month in players.player_months(name, now, growth):
        data = players.month_data(source, name, month, now, growth.get(month, ()))
        if source == "chesscom":
            out.extend(json.loads(data.body)["games"])
        else:
            out.extend(json.loads(line) for line in data.lines)
    return out


def fresh(source: str, name: str, now: float = NOW) -> list[str]:
    """Ids built from scratch, bypassing every cache."""
    ids: list[str] = []
    for month in players.player_months(name, now, {}):
        span, base = players.span_ms(month, now), players.base_count(name, month, now)
        games = players.build_month(source, name.lower(), month, span, base, ())
        ids.extend(g["uuid" if source == "chesscom" else "id"] for g in games)
    return ids


@pytest.mark.parametrize("source", players.SOURCES)
def test_same_name_gives_same_games(source: str) -> None:
    first, second = fresh(source, "alice-p4x9"), fresh(source, "alice-p4x9")
    assert first == second and len(first) == 36
    assert fresh(source, "bob-p4x9") != first


def test_ids_are_stable_across_processes() -> None:
    code = (
        "from hub.sim import players; "
        f"print(players.all_games('lichess', 'stable-p2x3', {NOW}, {{}})[0])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    ids, _ = players.all_games("lichess", "stable-p2x3", NOW, {})
    assert out.strip() == str(ids)


def test_size_suffix() -> None:
    assert players.size_of("p3x7") == (3, 7)
    assert players.size_of("Flaky-P12x50") == (12, 50)
    assert players.size_of("dup_p2x40") == (2, 40)
    assert players.size_of("big-p999x99999") == (players.MAX_MONTHS, players.MAX_GAMES)
    months = players.player_months("p3x7", NOW, {})
    assert months == [(2026, 9), (2026, 10), (2026, 11)]
    assert [len(players.month_data("chesscom", "p3x7", m, NOW).ids) for m in months] == [7, 7, 7]
    assert len(players.all_games("lichess", "p3x7", NOW, {})[0]) == 21


def test_empty_sizes() -> None:
    assert players.player_months("none-p0x5", NOW, {}) == []
    months = players.player_months("quiet-p2x0", NOW, {})
    assert len(months) == 2
    assert all(
        players.month_data("chesscom", "quiet-p2x0", m, NOW).body == b'{"games":[]}' for m in months
    )


def test_hashed_sizes_cover_the_range() -> None:
    sizes = [players.size_of(f"player{i}") for i in range(2000)]
    months = {m for m, _ in sizes}
    games = {g for _, g in sizes}
    assert min(months) == 1 and max(months) == 24 and len(months) == 24
    assert min(games) == 5 and max(games) == 120 and len(games) > 100


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_-]{2,50}", fullmatch=True))
def test_any_valid_name(name: str) -> None:
    assert players.is_valid(name)
    months, games = players.size_of(name)
    assert 0 <= months <= players.MAX_MONTHS and 0 <= games <= players.MAX_GAMES
    assert players.size_of(name.upper()) == players.size_of(name.lower())
    assert players.exists(name) == (not name.lower().startswith("ghost"))


def test_name_rules() -> None:
    assert not players.is_valid("a") and not players.is_valid("x" * 51)
    assert not players.is_valid("bad name") and not players.is_valid("bad.name")
    assert not players.exists("Ghost-p1x1") and players.exists("host-p1x1")
    assert players.fault_of("FLAKY-p1x2") == "flaky" and players.fault_of("plain") is None
    assert [players.fault_of(f"{f}x") for f in players.FAULTS] == list(players.FAULTS)


def test_case_does_not_matter() -> None:
    for source in players.SOURCES:
        assert players.all_games(source, "CaSe-P2x4", NOW, {}) == players.all_games(
            source, "case-p2x4", NOW, {}
        )
    assert players.display_name("CASE-p2x4") == "Case-p2x4"


@pytest.mark.parametrize("source", players.SOURCES)
def test_ids_unique(source: str) -> None:
    ids, months = players.all_games(source, "many-p24x120", NOW, {})
    assert len(ids) == len(set(ids)) == 24 * 120 and len(months) == 24


def test_id_shapes() -> None:
    chesscom = games_of("chesscom", "shapes-p2x60")
    assert all(len(g["uuid"]) == 36 and g["uuid"].count("-") == 4 for g in chesscom)
    urls = [g["url"] for g in chesscom]
    assert len(set(urls)) == len(urls)
    assert all(u.rsplit("/", 1)[1].isdigit() for u in urls)
    lichess = games_of("lichess", "shapes-p2x60")
    assert all(len(g["id"]) == 8 and g["id"].isalnum() for g in lichess)


def test_times_ascend_inside_their_month_and_in_the_past() -> None:
    name = "times-p6x80"
    for month in players.player_months(name, NOW, {}):
        start = players.month_start_ms(month) // 1000
        end = players.month_start_ms(players.shift(month, 1)) // 1000
        games = json.loads(players.month_data("chesscom", name, month, NOW).body)["games"]
        ends = [g["end_time"] for g in games]
        assert ends == sorted(ends) and len(set(ends)) == len(ends)
        assert all(start <= t < end and t <= NOW for t in ends)
        lines = players.month_data("lichess", name, month, NOW).lines
        created = [json.loads(line)["createdAt"] for line in lines]
        assert created == sorted(created)
        for line in lines:
            game = json.loads(line)
            assert start * 1000 <= game["createdAt"] < game["lastMoveAt"] <= NOW * 1000


def test_current_month_is_squeezed_into_elapsed_time() -> None:
    now = calendar.timegm((2026, 3, 1, 0, 0, 7))  # seven seconds into March
    for source, key in (("chesscom", "end_time"), ("lichess", "lastMoveAt")):
        games = games_of(source, "early-p1x50", now)
        assert len(games) == 50
        scale = 1 if source == "chesscom" else 1000
        assert all(g[key] <= now * scale for g in games)


def test_months_follow_the_clock() -> None:
    january = calendar.timegm((2027, 1, 3, 0, 0, 0))
    assert players.player_months("roll-p3x2", january, {}) == [(2026, 11), (2026, 12), (2027, 1)]
    # the current month keeps its games once it closes and the clock moves on
    before = players.month_data("chesscom", "roll-p3x2", (2026, 11), NOW).ids
    assert players.month_data("chesscom", "roll-p3x2", (2026, 11), january).ids == before


@pytest.mark.parametrize("source", players.SOURCES)
def test_growth_appends_exactly_n(source: str) -> None:
    name = "grow-p3x5"
    current = players.month_of(NOW)
    old_ids, _ = players.all_games(source, name, NOW, {})
    last = players.month_data(source, name, current, NOW).last_ms
    times = players.grow_times(last, NOW * 1000, 4)
    assert times == sorted(times) and times[0] > last and times[-1] == NOW * 1000
    growth = {current: times}
    new_ids, _ = players.all_games(source, name, NOW, growth)
    assert len(new_ids) == len(old_ids) + 4 and new_ids[: len(old_ids)] == old_ids
    grown = games_of(source, name, NOW, growth)[-5:]
    key = "end_time" if source == "chesscom" else "createdAt"
    assert [g[key] for g in grown] == sorted(g[key] for g in grown)
    # the cache is keyed by growth: the plain month is unchanged
    assert len(players.month_data(source, name, current, NOW).ids) == 5


def test_growth_creates_the_current_month_of_an_empty_player() -> None:
    current = players.month_of(NOW)
    growth = {current: players.grow_times(players.month_start_ms(current), NOW * 1000, 3)}
    ids, months = players.all_games("chesscom", "new-p0x0", NOW, growth)
    assert months == [current] and len(ids) == 3


def test_chesscom_games_look_like_the_sample() -> None:
    sample = json.loads((ROOT / "tests/data/chesscom-month.json").read_text())["games"]
    allowed = set().union(*(g.keys() for g in sample))
    games = games_of("chesscom", "Shape-p6x100")
    seen: set[str] = set()
    classes: set[str] = set()
    for g in games:
        seen |= g.keys()
        classes.add(g["time_class"])
        white, black = g["white"], g["black"]
        assert "shape-p6x100" in (white["@id"].rsplit("/", 1)[1], black["@id"].rsplit("/", 1)[1])
        assert {white["result"], black["result"]} <= CHESSCOM_RESULTS | CHESSCOM_DRAWS
        tag = next(line for line in g["pgn"].splitlines() if line.startswith("[Result "))
        if white["result"] == "win":
            assert tag == '[Result "1-0"]' and black["result"] != "win"
        elif black["result"] == "win":
            assert tag == '[Result "0-1"]'
        else:
            assert tag == '[Result "1/2-1/2"]' and white["result"] in CHESSCOM_DRAWS
        assert g["pgn"].rstrip().endswith(tag.split('"')[1])
        assert f'[White "{white["username"]}"]' in g["pgn"]
        assert white["@id"] == white["@id"].lower()
        assert ("start_time" in g) == (g["time_class"] == "daily") == ("/daily/" in g["url"])
        assert g["eco"].startswith("https://www.chess.com/openings/") if "eco" in g else True
    assert seen == allowed
    assert classes == {"bullet", "blitz", "rapid", "daily"}
    mine = [g for g in games if g["white"]["@id"].endswith("/shape-p6x100")]
    assert 0.4 < len(mine) / len(games) < 0.6
    assert {g["white"]["username"] for g in mine} == {"Shape-p6x100"}


def test_lichess_games_look_like_the_sample() -> None:
    sample = [
        json.loads(line)
        for line in (ROOT / "tests/data/lichess-games.ndjson").read_text().splitlines()
    ]
    allowed = set().union(*(g.keys() for g in sample)) | {"daysPerTurn"}
    games = games_of("lichess", "shape-p6x100")
    assert set().union(*(g.keys() for g in games)) == allowed
    for g in games:
        sides = g["players"]
        assert "shape-p6x100" in {s.get("user", {}).get("id") for s in sides.values()}
        if g["status"] in {"mate", "resign"}:
            assert g["winner"] in {"white", "black"}
        if g["status"] in {"draw", "stalemate"}:
            assert "winner" not in g
        for side in sides.values():
            assert ("aiLevel" in side) != ("user" in side)
        assert ("clock" in g) != (g["speed"] == "correspondence")
    assert any("aiLevel" in s for g in games for s in g["players"].values())
    assert any("winner" not in g for g in games) and any(not g["rated"] for g in games)
    assert {g["speed"] for g in games} == {"bullet", "blitz", "rapid", "correspondence"}


def test_lichess_user_counts_match_games() -> None:
    user = players.lichess_user("Count-p3x30", NOW, {})
    games = games_of("lichess", "count-p3x30")
    assert user["id"] == "count-p3x30" and user["username"] == "Count-p3x30"
    count = user["count"]
    assert count["all"] == 90 == count["win"] + count["loss"] + count["draw"]
    assert count["rated"] == sum(g["rated"] for g in games)
    assert user["createdAt"] < min(g["createdAt"] for g in games)


def test_lichess_lines_filter_sort_and_cap() -> None:
    name = "filter-p3x10"
    every = players.lichess_lines(name, NOW, {}, 0, 2**62, 0, newest_first=False)
    created = [json.loads(line)["createdAt"] for line in every]
    assert len(every) == 30 and created == sorted(created)
    newest = players.lichess_lines(name, NOW, {}, 0, 2**62, 0, newest_first=True)
    assert newest == every[::-1]
    window = players.lichess_lines(name, NOW, {}, created[5], created[12], 0, newest_first=False)
    assert window == every[5:13]
    assert players.lichess_lines(name, NOW, {}, 0, 2**62, 4, newest_first=True) == newest[:4]


def test_a_big_player_is_built_once() -> None:
    """A 24 x 120 player is built on first use and served from the cache after.

    How fast the build is belongs to a benchmark, not to a test on a busy machine; what
    a test can hold is the ratio between building and the cache, in one process.
    """
    for source in players.SOURCES:
        start = time.perf_counter()
        ids, _ = players.all_games(source, f"cache-{source}-p24x120", NOW, {})
        built = time.perf_counter() - start
        assert len(ids) == 2880
        start = time.perf_counter()
        again, _ = players.all_games(source, f"cache-{source}-p24x120", NOW, {})
        cached = time.perf_counter() - start
        assert again == ids
        assert cached * 5 < built, (built, cached)


def test_user_agent_rule() -> None:
    assert identifies("chess-hub-test (+https://example.invalid; test@example.invalid)")
    assert identifies("my-app/1.0 contact@example.org")
    assert identifies("Python/3.11 aiohttp/3.14 (me@example.org)")
    assert identifies("Python/3.11 aiohttp/3.14 (+https://example.org/bot)")
    for bare in (None, "", "  ", "Python/3.11 aiohttp/3.14.5", "python-requests/2.32", "curl/8.5"):
        assert not identifies(bare)


def test_dups_repeat_every_seventh_line() -> None:
    lines = [f"{i}\n".encode() for i in range(15)]
    out = with_dups(lines)
    assert len(out) == 17 and out[6] == out[7] == b"6\n" and out[14] == out[15] == b"13\n"


def test_chesscom_stats_count_rated_records_only() -> None:
    name = "mixed-p3x20"
    games = games_of("chesscom", name)
    stats = players.chesscom_stats(name, NOW, {})
    # the same rule as chess.com: rated games of the five classes, by the player's result
    classes = {("chess", c): f"chess_{c}" for c in ("daily", "rapid", "blitz", "bullet")}
    classes[("chess960", "daily")] = "chess960_daily"
    expected: dict[str, int] = {}
    for g in games:
        key = classes.get((g["rules"], g["time_class"]))
        if key is not None and g["rated"]:
            expected[key] = expected.get(key, 0) + 1
    records = {k: v["record"] for k, v in stats.items() if "record" in (v or {})}
    got = {k: r["win"] + r["loss"] + r["draw"] for k, r in records.items()}
    assert all("time_per_move" in r for k, r in records.items() if k.endswith("_daily"))
    assert got == expected and sum(got.values()) < len(games)
    assert stats["fide"] == 0 and "tactics" in stats and "puzzle_rush" in stats


def test_mixed_players_play_variants_on_both_sites() -> None:
    chesscom = games_of("chesscom", "mixed-p2x12")
    assert chesscom[0]["time_class"] == "daily"
    assert {g["rules"] for g in chesscom} == {"chess", "chess960"}
    set_up = [g for g in chesscom if g["rules"] == "chess" and g["initial_setup"] != START]
    assert set_up and not any(g["rated"] for g in set_up)
    assert any('[Variant "Chess960"]' in g["pgn"] for g in chesscom)
    assert any(not g["rated"] and g["initial_setup"] == START for g in chesscom)
    lichess = games_of("lichess", "mixed-p2x12")
    assert {g["variant"] for g in lichess} == {"standard", "chess960", "fromPosition"}
    assert all("initialFen" in g for g in lichess if g["variant"] != "standard")
    assert not any(g["rated"] for g in lichess if g["variant"] == "fromPosition")
    # other players play standard chess only
    assert {g["rules"] for g in games_of("chesscom", "plain-p2x12")} == {"chess"}


def test_hole_month_and_game() -> None:
    months = players.player_months("hole-p4x5", NOW, {})
    assert players.hole_month("hole-p4x5", NOW, {}) == months[1]
    assert players.hole_month("hole-p1x5", NOW, {}) is None
    ids, _ = players.all_games("lichess", "hole-p4x5", NOW, {})
    assert players.hole_game("hole-p4x5", NOW, {}) == ids[10]


def test_corr_games_start_in_progress_and_end_late() -> None:
    corr = Corr()
    going = corr.games("corr-p3x10", NOW, {})
    assert 3 <= len(going) <= 5 and all(g["status"] == "started" for g in going)
    assert all(g["speed"] == "correspondence" and "winner" not in g for g in going)
    last_finished = max(g["createdAt"] for g in games_of("lichess", "corr-p3x10"))
    assert all(g["createdAt"] < last_finished for g in going)  # older than any cursor
    user = players.lichess_user("corr-p3x10", NOW, {}, corr.finished("corr-p3x10", NOW, {}), 3)
    assert (user["count"]["all"], user["count"]["playing"]) == (30, 3)
    corr.read("corr-p3x10", NOW)
    ended = corr.finish("corr-p3x10", 2, NOW, {})
    assert ended == [g["id"] for g in going[:2]]
    done = {g["id"]: g for g in corr.finished("corr-p3x10", NOW, {})}
    assert set(done) == set(ended) and corr.playing("corr-p3x10", NOW, {}) == len(going) - 2
    for game in done.values():
        assert game["status"] != "started"
        assert game["lastMoveAt"] >= NOW * 1000 + LATE_MS  # 30 days after the last import
        assert game["createdAt"] == next(g["createdAt"] for g in going if g["id"] == game["id"])
    extra = [(g["createdAt"], g["id"]) for g in done.values()]
    ids, _ = players.all_games("lichess", "corr-p3x10", NOW, {}, extra)
    assert len(ids) == 32 and set(ended) <= set(ids)
    corr.clear()
    assert corr.playing("corr-p3x10", NOW, {}) == len(going)
