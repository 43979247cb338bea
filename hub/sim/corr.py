"""Correspondence games still in progress, for `corr…` players on lichess, and their ending."""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from hub.sim.games import Game, digest, finished_lichess, lichess_game, ongoing_lichess
from hub.sim.players import Growth, Line, month_start_ms, player_months, profile, span_ms

# A game finished by /_sim/finish ends at least this long after the player's last import,
# far beyond any look-back an importer might keep.
LATE_MS = 30 * 86_400_000
_DAY_MS = 86_400_000
_encoder = msgspec.json.Encoder()


class CorrGame(NamedTuple):
    id: str
    created_ms: int
    ongoing: Game  # as the export shows it while in progress
    result: Game  # how it ends: status, players with rating changes, winner


def corr_games(name: str, now: float, growth: Growth) -> list[CorrGame]:
    """3 to 5 games in progress, created before the last month when there are several."""
    lower = name.lower()
    months = player_months(lower, now, growth)
    if not months:
        return []
    count = 3 + digest(f"corr|{lower}")[0] % 3
    now_ms = int(now * 1000)
    games: list[CorrGame] = []
    for i in range(count):
        month = months[i * max(len(months) - 1, 1) // count]
        seed = bytearray(digest(f"corr|{lower}|{i}"))
        seed[23] = max(seed[23], 8)  # nobody plays the computer by correspondence
        start, span = month_start_ms(month), max(span_ms(month, now), 1)
        created = start + span * (2 * i + 1) // (2 * count + 2) + seed[40]
        moved = min(created + _DAY_MS * (1 + seed[41] % 5), now_ms)
        base = lichess_game(profile(lower, month), bytes(seed), created + 1, created)
        games.append(CorrGame(base["id"], created, ongoing_lichess(base, created, moved), base))
    return games


class Corr:
    """Which correspondence games have ended, and when each player was last read."""

    def __init__(self) -> None:
        self.ended: dict[str, dict[str, int]] = {}  # player -> game id -> end ms
        self.last_read: dict[str, int] = {}  # player -> ms of the last export or id lookup
        self.owner: dict[str, str] = {}  # game id -> player, for lookups by id

    def games(self, name: str, now: float, growth: Growth) -> list[Game]:
        """Every correspondence game of the player as it stands now, by creation."""
        lower = name.lower()
        ended = self.ended.get(lower, {})
        out: list[Game] = []
        for game in corr_games(lower, now, growth):
            self.owner[game.id] = lower
            end = ended.get(game.id)
            if end is None:
                out.append(game.ongoing)
            else:
                out.append(finished_lichess(game.ongoing, game.result, end))
        return out

    def lines(self, name: str, now: float, growth: Growth, ongoing: bool) -> list[Line]:
        """Export lines of the player's correspondence games; those in progress if asked."""
        return [
            (g["createdAt"], g["id"], _encoder.encode(g) + b"\n")
            for g in self.games(name, now, growth)
            if ongoing or g["status"] != "started"
        ]

    def finished(self, name: str, now: float, growth: Growth) -> list[Game]:
        return [g for g in self.games(name, now, growth) if g["status"] != "started"]

    def playing(self, name: str, now: float, growth: Growth) -> int:
        return sum(g["status"] == "started" for g in self.games(name, now, growth))

    def finish(self, name: str, count: int, now: float, growth: Growth) -> list[str]:
        """End the `count` oldest games still in progress; their ids."""
        lower = name.lower()
        now_ms = int(now * 1000)
        end = max(now_ms, self.last_read.get(lower, now_ms) + LATE_MS)
        ended = self.ended.setdefault(lower, {})
        going = [g["id"] for g in self.games(lower, now, growth) if g["status"] == "started"]
        for game in going[:count]:
            ended[game] = end
        return going[:count]

    def read(self, name: str, now: float) -> None:
        """An importer read the player now."""
        self.last_read[name.lower()] = int(now * 1000)

    def clear(self) -> None:
        self.ended.clear()
        self.last_read.clear()
