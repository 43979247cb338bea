"""Simulated games written out in chess.com's and lichess's own shapes."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from typing import Any, NamedTuple

Game = dict[str, Any]


class Profile(NamedTuple):
    """The player as one month of their games sees them."""

    name: str
    display: str
    uuid: str
    rating: int  # base rating this month, drift included
    favourite: str
    start_s: int  # month start
    date: str  # PGN date prefix of the month, "YYYY.MM."


CLASSES = ("bullet", "blitz", "rapid", "daily")
_CLASS_OFFSET = {"bullet": -60, "blitz": 0, "rapid": 45, "daily": 90}
_CONTROLS = {
    "bullet": ((60, 0), (60, 1), (120, 1)),
    "blitz": ((180, 0), (180, 2), (300, 0), (300, 5)),
    "rapid": ((600, 0), (600, 5), (900, 10), (1800, 0)),
    "daily": ((86400, 0), (259200, 0)),
}
_SECONDS = {"bullet": (50, 240), "blitz": (200, 900), "rapid": (500, 2400), "daily": (1, 10)}
_LOSSES = ("resigned", "resigned", "checkmated", "timeout") * 2 + ("checkmated", "abandoned")
_DRAWS = ("agreed", "repetition", "stalemate", "insufficient", "50move", "timevsinsufficient")
# result -> (PGN Termination wording, lichess status)
_ENDINGS = {
    "resigned": ("by resignation", "resign"),
    "checkmated": ("by checkmate", "mate"),
    "timeout": ("on time", "outoftime"),
    "abandoned": ("- game abandoned", "timeout"),
    "agreed": ("by agreement", "draw"),
    "repetition": ("by repetition", "draw"),
    "stalemate": ("by stalemate", "stalemate"),
    "insufficient": ("by insufficient material", "draw"),
    "50move": ("by 50-move rule", "draw"),
    "timevsinsufficient": ("by timeout vs insufficient material", "outoftime"),
}
_ADJS = ("Blue", "Quiet", "Rapid", "Silent", "Brave", "Lucky", "Dark", "Royal", "Wild", "Mad")
_NOUNS = ("Knight", "Rook", "Bishop", "Pawn", "Queen", "King", "Gambit", "Tempo", "Fork", "Owl")
_SOURCES = ("pool", "pool", "pool", "pool", "friend", "lobby", "arena", "pool")
_PROFILE = "https://api.chess.com/pub/player/"
_LIVE = "https://www.chess.com/game/live/"
_DAILY = "https://www.chess.com/game/daily/"
_EVENTS = ("Live Chess", "Let's Play!")
_START = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
_TCN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!?{~}(^)[_]@#$,./&-*++="


class _Line(NamedTuple):
    name: str
    eco: str
    url: str
    san: tuple[str, ...]
    movetext: str
    fen: str
    tcn: str


def _line(spec: str) -> _Line:
    """An opening from `ECO|name|SAN moves|UCI moves|FEN after them`."""
    eco, name, san, uci, fen = spec.split("|")
    moves = tuple(san.split())
    text = " ".join(f"{i // 2 + 1}. {m}" if i % 2 == 0 else m for i, m in enumerate(moves))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    # chess.com TCN: two characters per move, square index = file + 8 * rank
    squares = [(m[:2], m[2:4]) for m in uci.split()]
    tcn = "".join(_TCN[ord(sq[0]) - 97 + 8 * int(sq[1]) - 8] for pair in squares for sq in pair)
    return _Line(name, eco, f"https://www.chess.com/openings/{slug}", moves, text, fen, tcn)


_OPENINGS = tuple(
    _line(spec)
    for spec in (
        "C50|Italian Game: Giuoco Piano|e4 e5 Nf3 Nc6 Bc4 Bc5|e2e4 e7e5 g1f3 b8c6 f1c4 f8c5|"
        "r1bqk1nr/pppp1ppp/2n5/2b1p3/2B1P3/5N2/PPPP1PPP/RNBQK2R w KQkq - 4 4",
        "B01|Scandinavian Defense: Mieses-Kotroc Variation|e4 d5 exd5 Qxd5 Nc3 Qa5|e2e4 d7d5 "
        "e4d5 d8d5 b1c3 d5a5|rnb1kbnr/ppp1pppp/8/q7/8/2N5/PPPP1PPP/R1BQKBNR w KQkq - 2 4",
        "D30|Queen's Gambit Declined|d4 d5 c4 e6|d2d4 d7d5 c2c4 e7e6|"
        "rnbqkbnr/ppp2ppp/4p3/3p4/2PP4/8/PP2PPPP/RNBQKBNR w KQkq - 0 3",
        "B90|Sicilian Defense: Najdorf Variation|e4 c5 Nf3 d6 d4 cxd4 Nxd4 Nf6 Nc3 a6|"
        "e2e4 c7c5 g1f3 d7d6 d2d4 c5d4 f3d4 g8f6 b1c3 a7a6|"
        "rnbqkb1r/1p2pppp/p2p1n2/8/3NP3/2N5/PPP2PPP/R1BQKB1R w KQkq - 0 6",
        "C01|French Defense: Exchange Variation|e4 e6 d4 d5 exd5 exd5|e2e4 e7e6 d2d4 d7d5 "
        "e4d5 e6d5|rnbqkbnr/ppp2ppp/8/3p4/3P4/8/PPP2PPP/RNBQKBNR w KQkq - 0 4",
        "C84|Ruy Lopez Opening: Closed|e4 e5 Nf3 Nc6 Bb5 a6 Ba4 Nf6 O-O Be7|"
        "e2e4 e7e5 g1f3 b8c6 f1b5 a7a6 b5a4 g8f6 e1g1 f8e7|"
        "r1bqk2r/1pppbppp/p1n2n2/4p3/B3P3/5N2/PPPP1PPP/RNBQ1RK1 w kq - 4 6",
        "E70|King's Indian Defense: Normal Variation|d4 Nf6 c4 g6 Nc3 Bg7 e4 d6|"
        "d2d4 g8f6 c2c4 g7g6 b1c3 f8g7 e2e4 d7d6|"
        "rnbqk2r/ppp1ppbp/3p1np1/8/2PPP3/2N5/PP3PPP/R1BQKBNR w KQkq - 0 5",
        "A22|English Opening: King's English Variation, Two Knights Variation|c4 e5 Nc3 Nf6|"
        "c2c4 e7e5 b1c3 g8f6|rnbqkb1r/pppp1ppp/5n2/4p3/2P5/2N5/PP1PPPPP/R1BQKBNR w KQkq - 2 3",
        "B12|Caro-Kann Defense: Advance Variation|e4 c6 d4 d5 e5 Bf5|e2e4 c7c6 d2d4 d7d5 "
        "e4e5 c8f5|rn1qkbnr/pp2pppp/2p5/3pPb2/3P4/8/PPP2PPP/RNBQKBNR w KQkq - 1 4",
    )
)
_ALNUM = bytes.maketrans(b"+/", b"Xz")  # lichess ids are alphanumeric


def digest(text: str) -> bytes:
    """The 64-byte seed every simulated value is drawn from."""
    return hashlib.blake2b(text.encode(), digest_size=64).digest()


def _uuid(raw: bytes) -> str:
    """uuid-shaped text from bytes 32..47 of a digest."""
    h = raw[32:48].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@functools.lru_cache(maxsize=65536)
def person_uuid(lower: str) -> str:
    """The fixed chess.com uuid of an account."""
    return _uuid(digest(f"person|{lower}"))


def _opponent(b: bytes, player: str) -> str:
    adj, noun, num = _ADJS[b[5] % 10], _NOUNS[b[6] % 10], b[7]
    name = f"{adj}{noun}{num}" if num % 3 else f"{adj.lower()}_{noun.lower()}"
    return name + "x" if name.lower() == player else name


def _shape(who: Profile, b: bytes) -> tuple[str, bool, str, str, int, int]:
    """(time class, player is white, player's result, opponent's result, their ratings)."""
    klass = who.favourite if b[0] % 10 < 6 else CLASSES[b[0] % 4]
    roll = b[2] * 100 >> 8  # 0..99 without the bias of b % 100
    if roll < 47:
        mine, theirs = "win", _LOSSES[b[3] % 10]
    elif roll < 92:
        mine, theirs = _LOSSES[b[3] % 10], "win"
    else:
        mine = theirs = _DRAWS[b[3] % 6]
    rating = who.rating + _CLASS_OFFSET[klass] + b[8] % 61 - 30
    return klass, b[1] % 2 == 0, mine, theirs, rating, rating + b[9] % 201 - 100


def _control(klass: str, b: bytes) -> tuple[int, int]:
    choices = _CONTROLS[klass]
    return choices[b[15] % len(choices)]


def chesscom_game(who: Profile, b: bytes, end_ms: int, prev_ms: int, daily: bool = False) -> Game:
    """One game as chess.com's monthly archive lists it, PGN included."""
    klass, white, mine, theirs, rating, other = _shape(who, b)
    if daily:
        klass = "daily"
    opp, line = _opponent(b, who.name), _OPENINGS[b[4] % len(_OPENINGS)]
    low, end, daily = opp.lower(), end_ms // 1000, klass == "daily"
    base, inc = _control(klass, b)
    control = f"1/{base}" if daily else f"{base}+{inc}" if inc else str(base)
    me = {"rating": rating, "result": mine, "@id": _PROFILE + who.name, "username": who.display}
    me["uuid"] = who.uuid
    them = {"rating": other, "result": theirs, "@id": _PROFILE + low, "username": opp}
    them["uuid"] = person_uuid(low)
    if white:
        w, k, wn, kn, wr, kr = me, them, who.display, opp, rating, other
    else:
        w, k, wn, kn, wr, kr = them, me, opp, who.display, other, rating
    how = _ENDINGS[theirs if mine == "win" else mine][0]
    if mine == theirs:
        result, term = "1/2-1/2", f"Game drawn {how}"
    else:
        result = "1-0" if (mine == "win") == white else "0-1"
        term = f"{wn if result == '1-0' else kn} won {how}"
    day = (end - who.start_s) // 86400 + 1
    pgn = (
        f'[Event "{_EVENTS[daily]}"]\n[Site "Chess.com"]\n'
        f'[Date "{who.date}{day:02d}"]\n[White "{wn}"]\n[Black "{kn}"]\n[Result "{result}"]\n'
        f'[WhiteElo "{wr}"]\n[BlackElo "{kr}"]\n[ECO "{line.eco}"]\n[TimeControl "{control}"]\n'
        f'[Termination "{term}"]\n\n{line.movetext} {result}\n'
    )
    digits = int.from_bytes(b[16:21]) % 900_000_000_000 + 100_000_000_000
    url = f"{_DAILY}{digits // 1000}" if daily else f"{_LIVE}{digits}"
    game: Game = {"url": url, "pgn": pgn, "time_control": control, "end_time": end}
    if daily:
        game["start_time"] = end - (2 + b[21] % 12) * 86400 - b[26] * 97
    game["rated"] = b[10] % 10 != 0
    if b[11] % 10 < 6:
        white_acc, black_acc = 55 + b[12] * 440 // 256 / 10, 55 + b[13] * 440 // 256 / 10
        game["accuracies"] = {"white": white_acc, "black": black_acc}
    if b[14] % 10 < 8:
        game["tcn"] = line.tcn
    game["uuid"] = _uuid(b)
    game["initial_setup"] = _START
    game["fen"] = line.fen
    game["time_class"] = klass
    game["rules"] = "chess"
    game["white"] = w
    game["black"] = k
    if b[14] % 10 != 9:
        game["eco"] = line.url
    return game


# Variants a `mixed` player plays besides standard chess, with a start and moves legal there.
CHESS960_START = "nrbbkqrn/pppppppp/8/8/8/8/PPPPPPPP/NRBBKQRN w KQkq - 0 1"
POSITION_START = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq - 0 1"
_VARIANT_MOVES = {
    "chess960": (("d4", "d5", "c4", "c6"), "1. d4 d5 2. c4 c6"),
    "position": (("c5", "Nf3", "d6"), "1... c5 2. Nf3 d6"),
}
VARIANTS = ("chess960", "position", "unrated")


def vary_chesscom(game: Game, kind: str) -> Game:
    """The game as a chess960, from-position or unrated one (a `mixed` player's)."""
    if kind == "unrated":
        return {**game, "rated": False}
    start = CHESS960_START if kind == "chess960" else POSITION_START
    head, _, rest = game["pgn"].partition("\n\n")
    result = rest.split()[-1]
    tags = '[SetUp "1"]\n[FEN "' + start + '"]\n'
    if kind == "chess960":
        tags = '[Variant "Chess960"]\n' + tags
    head = head.replace("[WhiteElo", tags + "[WhiteElo", 1)
    varied = {k: v for k, v in game.items() if k not in ("tcn", "eco")}
    varied.update(
        pgn=f"{head}\n\n{_VARIANT_MOVES[kind][1]} {result}\n",
        initial_setup=start,
        fen=start,
        rules="chess960" if kind == "chess960" else "chess",
    )
    if kind == "position":  # chess.com rates no game from a set-up position
        varied["rated"] = False
    return varied


def vary_lichess(game: Game, kind: str) -> Game:
    """The game as a chess960, from-position or unrated one (a `mixed` player's)."""
    varied = dict(game)
    if kind == "unrated" or kind == "position":  # lichess rates no from-position game
        varied["rated"] = False
        varied["players"] = {
            side: {k: v for k, v in p.items() if k != "ratingDiff"}
            for side, p in game["players"].items()
        }
    if kind in ("chess960", "position"):
        variant = "chess960" if kind == "chess960" else "fromPosition"
        varied.update(variant=variant, initialFen=CHESS960_START)
        if kind == "position":
            varied["initialFen"] = POSITION_START
        else:
            varied["perf"] = "chess960"
        varied["moves"] = " ".join(_VARIANT_MOVES[kind][0])
        varied.pop("opening", None)
    return varied


def ongoing_lichess(game: Game, created_ms: int, moved_ms: int) -> Game:
    """A correspondence game still in progress: no winner yet, its last move so far."""
    players = {
        side: {k: v for k, v in p.items() if k != "ratingDiff"}
        for side, p in game["players"].items()
    }
    started: Game = {
        k: v for k, v in game.items() if k not in ("winner", "clock", "players", "opening")
    }
    started.update(
        speed="correspondence",
        perf="correspondence",
        createdAt=created_ms,
        lastMoveAt=moved_ms,
        status="started",
        players=players,
        daysPerTurn=3,
    )
    return started


def finished_lichess(ongoing: Game, done: Game, end_ms: int) -> Game:
    """The same game once it has ended at `end_ms`, dated by its creation as before."""
    ended = dict(ongoing)
    ended.update(lastMoveAt=end_ms, status=done["status"], players=done["players"])
    if "winner" in done:
        ended["winner"] = done["winner"]
    return ended


def lichess_game(who: Profile, b: bytes, end_ms: int, prev_ms: int) -> Game:
    """One game as a lichess ndjson export line holds it."""
    klass, white, mine, theirs, rating, other = _shape(who, b)
    rating, other = rating + 250, other + 250
    opp, line = _opponent(b, who.name), _OPENINGS[b[4] % len(_OPENINGS)]
    ai = b[23] < 8
    rated = b[10] % 10 > 1 and not ai
    lo, hi = _SECONDS[klass]
    length = (lo + (b[26] * 256 + b[27]) % (hi - lo)) * (86_400_000 if klass == "daily" else 1000)
    # a game starts after the previous one ended: createdAt order matches the end order
    created = end_ms - max(1, min(length, end_ms - prev_ms - 1))
    me: dict[str, Any] = {"user": {"name": who.display, "id": who.name}, "rating": rating}
    them: dict[str, Any] = {"user": {"name": opp, "id": opp.lower()}, "rating": other}
    if ai:
        them = {"aiLevel": 1 + b[24] % 8}
    if rated:
        diff = 3 + b[28] % 8 if mine == "win" else -3 - b[28] % 8 if theirs == "win" else 0
        me["ratingDiff"], them["ratingDiff"] = diff, -diff
    speed = "correspondence" if klass == "daily" else klass
    game: Game = {"id": base64.b64encode(b[48:54]).translate(_ALNUM).decode(), "rated": rated}
    game.update(variant="standard", speed=speed, perf=speed, createdAt=created, lastMoveAt=end_ms)
    game["status"] = _ENDINGS[theirs if mine == "win" else mine][1]
    game["source"] = "ai" if ai else _SOURCES[b[22] % 8]
    game["players"] = {"white": me, "black": them} if white else {"white": them, "black": me}
    if mine != theirs:
        game["winner"] = "white" if white == (mine == "win") else "black"
    if b[25] % 8:
        game["opening"] = {"eco": line.eco, "name": line.name, "ply": len(line.san)}
    game["moves"] = " ".join(line.san)
    if klass == "daily":
        game["daysPerTurn"] = 1 + b[15] % 3
    else:
        base, inc = _control(klass, b)
        game["clock"] = {"initial": base, "increment": inc, "totalTime": base + 40 * inc}
    return game
