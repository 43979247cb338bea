"""Per-import facts derived from what one user's sockets recorded."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from load.client import User
from load.latency import Waiter


@dataclass
class Import:
    """One user's import, reduced to the times the statistics need (monotonic seconds)."""

    user: User
    sent: float | None
    ticket_at: float | None
    first_queued: float | None
    first_position: int | None
    first_eta: float | None
    start: float | None  # `started` arrival, or an estimate when it was only replayed
    start_estimated: bool
    end: float | None  # `done`/`failed` arrival, or an estimate when only replayed
    outcome: str  # done, failed:<code>, lost, connect_failed, not_sent
    failed_before_start: bool
    duration_s: float | None  # the hub's own start-to-finish time, from `done`
    waited_s: float | None = None  # the hub's own join-to-start time, from `started`
    ended_away_since: float | None = None  # it ended while no socket was open, after this
    left_by: float | None = None  # ... and it had left the line by then

    @property
    def departure(self) -> float | None:
        """When it left the line: admitted, or failed while waiting."""
        if self.start is not None:
            return self.start
        if self.ended_away_since is not None:
            return self.left_by  # some time after `ended_away_since`
        return self.end if self.failed_before_start else None


def derive(user: User) -> Import:
    sent = user.sent_at
    ticket = user.first("ticket")
    ticket_at = ticket[0] if ticket else None
    first_queued = user.q_times[0] if len(user.q_times) else None
    first_position = user.q_positions[0] if len(user.q_positions) else None
    first_eta = user.q_etas[0] if len(user.q_etas) else None
    live_start = user.first("started", live=True)
    any_start = user.first("started")
    start: float | None = None
    estimated = False
    if live_start is not None:
        start = live_start[0]
    elif any_start is not None and sent is not None:
        # Seen only as the answer to a resume: the hub's waited_s (from its join, which
        # follows the request at once) puts it back in time.
        start = sent + float(any_start[1].get("waited_s", 0.0))
        estimated = True
    final = None
    for kind in ("done", "failed"):
        hit = user.first(kind)
        if hit is not None and (final is None or hit[0] < final[0]):
            final = hit
    end: float | None = None
    duration = None
    outcome = "lost"
    failed_before_start = False
    ended_away_since = None
    if final is not None:
        t, message, replayed = final
        if replayed and start is None and user.gaps:
            # It was admitted and ended while the socket was away: when, is not known.
            ended_away_since = user.gaps[-1][0]
        if message["type"] == "done":
            outcome = "done"
            duration = float(message.get("duration_s", 0.0))
            end = start + duration if replayed and start is not None else t
        else:
            outcome = f"failed:{message.get('code', '?')}"
            failed_before_start = start is None
            end = t
    if user.state == "connect_failed":
        outcome = "connect_failed"
    elif sent is None and outcome == "lost":
        outcome = "not_sent"
    return Import(
        user=user,
        sent=sent,
        ticket_at=ticket_at,
        first_queued=first_queued,
        first_position=first_position,
        first_eta=first_eta,
        start=start,
        start_estimated=estimated,
        end=end,
        outcome=outcome,
        failed_before_start=failed_before_start,
        duration_s=duration,
        ended_away_since=ended_away_since,
        waited_s=None if any_start is None else float(any_start[1].get("waited_s", 0.0)),
    )


def bound_unseen_starts(imports: list[Import]) -> None:
    """Narrow when an import that started and ended while its socket was away left the line.

    Within one upstream of one hub admission is FIFO (the report checks it on the starts it
    saw), so such an import started after the last seen start ranked before it and before
    the first seen start ranked after it.
    """
    lines: dict[tuple[int, str], list[Import]] = {}
    for imp in request_order(imports):
        lines.setdefault((imp.user.hub, imp.user.source), []).append(imp)
    for line in lines.values():
        latest = -math.inf
        for imp in line:
            if imp.ended_away_since is not None:
                imp.ended_away_since = max(imp.ended_away_since, latest)
            elif imp.start is not None:
                latest = max(latest, imp.start)
        earliest = math.inf
        for imp in reversed(line):
            if imp.ended_away_since is not None:
                bound = imp.user.gaps[-1][1] if imp.user.gaps else math.inf
                imp.left_by = min(bound, earliest)
                if imp.left_by < imp.ended_away_since:  # FIFO did not hold: fall back
                    imp.left_by = bound
            elif imp.start is not None:
                earliest = min(earliest, imp.start)


def request_order(imports: list[Import]) -> list[Import]:
    """Imports the hub acknowledged, in the order they were asked for."""
    asked = [i for i in imports if i.sent is not None and i.ticket_at is not None]
    return sorted(asked, key=lambda i: (i.sent, i.user.index))


def waiters(line: list[Import]) -> list[Waiter]:
    """The latency model's view of one line, ranked by request order."""
    out = []
    for rank, imp in enumerate(request_order(line)):
        u = imp.user
        positions = list(zip(u.q_times, u.q_positions, strict=True))
        out.append(
            Waiter(
                rank=rank,
                first_queued=imp.first_queued,
                positions=positions,
                departure=imp.departure,
                started=imp.start is not None or imp.ended_away_since is not None,
                gaps=list(u.gaps),
                left_since=imp.ended_away_since,
            )
        )
    return out


def outcomes(imports: list[Import]) -> dict[str, int]:
    counts = Counter(i.outcome for i in imports)
    return dict(sorted(counts.items()))
