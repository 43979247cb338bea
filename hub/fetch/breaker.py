"""The circuit breaker of each upstream as plain state: attempts and answers in, changes out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Turn(Enum):
    """What one attempt of a request may do."""

    GO = "go"  # closed: as usual
    PROBE = "probe"  # open: this attempt is the one probe of its interval
    REFUSE = "refuse"  # open: wait for the probe


@dataclass(frozen=True, slots=True)
class Opened:
    """The upstream stopped answering; `again` when a probe found it still down."""

    upstream: str
    again: bool = False


@dataclass(frozen=True, slots=True)
class Closed:
    """The upstream answered again."""

    upstream: str


Change = Opened | Closed


@dataclass(slots=True)
class _State:
    failures: int = 0  # in a row, while closed
    open: bool = False
    next_probe: float = 0.0
    probing: bool = False
    openings: int = 0


class Breaker:
    """Opens after `failures` failed attempts in a row to one upstream.

    A failure is an attempt the upstream did not answer: a 5xx, a timeout, a
    lost connection. A 429 neither counts nor resets the count (the site is
    answering, but not to us); any other answer, 404 included, resets it.
    While open, every attempt is refused except one probe every `probe_s`;
    the first answer closes the breaker. The clock is passed in.
    """

    def __init__(self, upstreams: Iterable[str], failures: int = 5, probe_s: float = 30.0) -> None:
        self.failures = failures
        self.probe_s = probe_s
        self._states = {upstream: _State() for upstream in upstreams}

    def is_open(self, upstream: str) -> bool:
        return self._states[upstream].open

    def openings(self, upstream: str) -> int:
        return self._states[upstream].openings

    def next_probe(self, upstream: str) -> float | None:
        """When the next probe may go (the caller's clock), or None while closed."""
        state = self._states[upstream]
        return state.next_probe if state.open else None

    def attempt(self, upstream: str, now: float) -> Turn:
        state = self._states[upstream]
        if not state.open:
            return Turn.GO
        if state.probing or now < state.next_probe:
            return Turn.REFUSE
        state.probing = True
        state.next_probe = now + self.probe_s
        return Turn.PROBE

    def answered(self, upstream: str) -> list[Change]:
        state = self._states[upstream]
        state.failures = 0
        state.probing = False
        if not state.open:
            return []
        state.open = False
        return [Closed(upstream)]

    def failed(self, upstream: str, now: float, turn: Turn) -> list[Change]:
        state = self._states[upstream]
        if state.open:
            if turn is not Turn.PROBE:
                return []  # sent before the breaker opened
            state.probing = False
            return [Opened(upstream, again=True)]
        state.failures += 1
        if state.failures < self.failures:
            return []
        state.open = True
        state.probing = False
        state.next_probe = now + self.probe_s
        state.openings += 1
        return [Opened(upstream)]

    def settled(self, upstream: str, turn: Turn) -> None:
        """The attempt ended without a verdict (a 429, a cancel): the probe slot frees."""
        if turn is Turn.PROBE:
            self._states[upstream].probing = False
