"""The operator's settings of the line as one JSON document, for the store and the fleet."""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec

from hub.queue.core import Controls
from hub.queue.holds import Pause

log = logging.getLogger("hub")


class _Pause(msgspec.Struct, frozen=True):
    source: str
    reason: str
    since: float
    by: str
    until: float | None = None


AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]


class _Controls(msgspec.Struct, frozen=True):
    slots: AtLeastOne | None  # None: the configured caps hold
    lanes: dict[str, AtLeastOne] | None
    pauses: list[_Pause]


_decoder = msgspec.json.Decoder(_Controls)


def encode(controls: Controls, lapsing: bool = True) -> str:
    """The document; `lapsing=False` leaves out pauses that lapse by themselves.

    A single hub keeps those only while it runs: their deadlines are on its
    monotonic clock, and a restarted hub has a fresh breaker.
    """
    pauses = [
        _Pause(source, p.reason, p.since, p.by, p.until)
        for source, p in controls.pauses
        if lapsing or p.until is None
    ]
    doc = _Controls(controls.slots, controls.lanes, pauses)
    return msgspec.json.encode(doc).decode()


def decode(text: str) -> Controls | None:
    """The saved controls, or None (and a warning) when the document cannot be read."""
    try:
        doc = _decoder.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        log.warning("ignoring unreadable saved controls: %s", exc)
        return None
    pauses = tuple((p.source, Pause(p.reason, p.since, p.by, p.until)) for p in doc.pauses)
    return Controls(doc.slots, doc.lanes, pauses)
