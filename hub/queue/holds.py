"""Pauses of the line: each source's holds by holder, and the one its waiters are shown."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Who holds a pause: the operator (admin API), or an upstream's breaker.
OPERATOR = "operator"
BREAKER = "breaker"


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    since: float  # unix seconds: shown to waiters as it is
    by: str = OPERATOR
    until: float | None = None  # the core's clock: unless renewed, the pause lapses then


class Holds:
    """A source is paused while any holder holds it; waiters see its oldest hold.

    Each holder pauses and resumes on its own: the operator's resume leaves a
    breaker's pause in place, and the other way round. No clock is read here.
    """

    def __init__(self, sources: Iterable[str]) -> None:
        self.sources = list(sources)
        self._held: dict[tuple[str, str], Pause] = {}  # (source, holder) -> pause
        self.shown: dict[str, Pause] = {}

    def __iter__(self) -> Iterator[tuple[str, Pause]]:
        """(source, pause) of every hold, oldest first."""
        for (source, _), pause in sorted(self._held.items(), key=lambda item: item[1].since):
            yield source, pause

    def hold(self, source: str, pause: Pause) -> None:
        """Pause `source` for `pause.by`; holding again renews it and keeps its `since`."""
        held = self._held.get((source, pause.by))
        if held is not None:
            pause = Pause(pause.reason, held.since, pause.by, pause.until)
        self._held[source, pause.by] = pause
        self._show()

    def lift(self, source: str, by: str) -> None:
        self._held.pop((source, by), None)
        self._show()

    def lapse(self, now: float) -> bool:
        """Drop the holds whose deadline passed; whether any did."""
        lapsed = [k for k, p in self._held.items() if p.until is not None and p.until <= now]
        for key in lapsed:
            del self._held[key]
        if lapsed:
            self._show()
        return bool(lapsed)

    def replace(self, holds: Iterable[tuple[str, Pause]]) -> None:
        self._held = {(s, p.by): p for s, p in holds if s in self.sources}
        self._show()

    def _show(self) -> None:
        shown: dict[str, Pause] = {}
        for source, pause in self:
            shown.setdefault(source, pause)
        self.shown = {source: shown[source] for source in self.sources if source in shown}
