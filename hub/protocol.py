"""WebSocket protocol v1: message types, decoding and validation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

PROTOCOL = 1
# `\Z`, not `$`: in Python `$` also matches before a final newline, so "ab\n" would pass.
USERNAME_PATTERN = r"^[A-Za-z0-9_-]{2,50}\Z"
SOURCES = ("chesscom", "lichess")

Source = Literal["chesscom", "lichess"]
Username = Annotated[str, msgspec.Meta(pattern=USERNAME_PATTERN)]
TicketText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class _Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    pass


# -- client -> hub ----------------------------------------------------------


class Import(_Message, tag="import"):
    source: Source
    username: Username
    # Read again only the units the player's receipt shows as failed or short.
    repair: bool = False


class Resume(_Message, tag="resume"):
    ticket: TicketText


class Cancel(_Message, tag="cancel"):
    ticket: TicketText


class WatchQueue(_Message, tag="watch_queue"):
    pass


ClientMessage = Import | Resume | Cancel | WatchQueue
_CLIENT_TYPES: dict[str, type[ClientMessage]] = {
    "import": Import,
    "resume": Resume,
    "cancel": Cancel,
    "watch_queue": WatchQueue,
}


# -- hub -> client ----------------------------------------------------------


class _Out(msgspec.Struct, tag_field="type"):
    pass


class Hello(_Out, tag="hello"):
    protocol: int
    slots_total: int
    slots_free: int
    queued: int


class TicketMsg(_Out, tag="ticket"):
    ticket: str
    import_id: str
    source: str
    username: str
    joined: bool


class PauseInfo(msgspec.Struct, frozen=True):
    reason: str
    since: float


class Queued(_Out, tag="queued", omit_defaults=True):
    import_id: str
    position: int
    ahead: int
    eta_s: float
    slots_total: int
    slots_free: int
    eta_low_s: float
    eta_high_s: float
    paused: PauseInfo | None = None  # present while the import's source is paused


class Started(_Out, tag="started"):
    import_id: str
    waited_s: float


class Waiting(msgspec.Struct, frozen=True):
    reason: str
    retry_in_s: float


class Progress(_Out, tag="progress", omit_defaults=True):
    import_id: str
    page: int
    pages: int
    games: int
    eta_s: float | None
    waiting: Waiting | None = None


class Done(_Out, tag="done"):
    import_id: str
    games_new: int
    games_total: int
    pages: int
    duration_s: float
    complete: bool  # the receipt: every unit read and the site's own count agrees
    gaps: int  # units that could not be read (GET .../receipt lists them)


class Failed(_Out, tag="failed"):
    import_id: str
    code: str
    message: str


class Error(_Out, tag="error", omit_defaults=True):
    code: str
    message: str
    import_id: str | None = None  # when it ends an import the client holds a ticket for


class RunningRow(msgspec.Struct, frozen=True):
    import_id: str
    source: str
    player: str
    page: int
    pages: int | None


class WaitingRow(msgspec.Struct, frozen=True):
    position: int
    source: str
    player: str
    import_id: str


class PausedRow(msgspec.Struct, frozen=True):
    source: str
    reason: str
    since: float


class EtaAccuracy(msgspec.Struct, frozen=True):
    """How the hub's estimates turned out over its last admissions; null below 20 samples."""

    samples: int
    median_error_pct: float | None
    p90_error_pct: float | None
    interval_hit_pct: float | None


class Board(_Out, tag="queue"):
    slots_total: int
    slots_free: int
    running: list[RunningRow]
    waiting: list[WaitingRow]  # the first rows of the line
    waiting_total: int  # the whole line, which may be longer than `waiting`
    eta_accuracy: EtaAccuracy
    paused: list[PausedRow]


ServerMessage = Hello | TicketMsg | Queued | Started | Progress | Done | Failed | Error | Board


class ProtocolError(Exception):
    """A bad client message; answered with an `error` and the socket stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(message: ServerMessage) -> str:
    return _encoder.encode(message).decode()


def mask(username: str) -> str:
    """Show a player on the public board without naming them."""
    return username[:2] + "…"


def decode(data: str | bytes) -> ClientMessage:
    """Parse one client frame or raise ProtocolError with a stable code."""
    try:
        raw: Any = _decoder.decode(data)
    except (msgspec.DecodeError, RecursionError):
        # msgspec raises RecursionError, not DecodeError, on deeply nested input.
        raise ProtocolError("invalid_json", "The message is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_message", "A message must be a JSON object.")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "A message needs a string field `type`.")
    cls = _CLIENT_TYPES.get(kind)
    if cls is None:
        known = ", ".join(_CLIENT_TYPES)
        raise ProtocolError("unknown_type", f"Unknown message type; expected one of {known}.")
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.endswith("`$.source`") and isinstance(raw.get("source"), str):
            raise ProtocolError(
                "unknown_source", "Unknown source; expected chesscom or lichess."
            ) from None
        if text.endswith("`$.username`") and isinstance(raw.get("username"), str):
            raise ProtocolError(
                "invalid_username",
                "A username is 2 to 50 letters, digits, underscores or hyphens.",
            ) from None
        raise ProtocolError("invalid_message", text) from None
