"""Bad WebSocket frames for the protocol fuzz test: hypothesis strategies and an oracle.

Every frame starts from one of the protocol's shapes (import, resume, cancel,
watch_queue) and is then broken: fields dropped, retyped, replaced by hostile
text or joined by extra ones; or the JSON itself is cut, nested too deep,
replaced by something that is not JSON, sent as a binary frame, made too big
or made invalid UTF-8. `expected` says, independently of the hub's code, which
`error` codes a frame may get, or None for a frame that is in fact valid.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from hypothesis import strategies as st

# text: a text frame; binary: a binary frame; bad_utf8: bytes sent as a text frame
Kind = Literal["text", "binary", "bad_utf8"]
Frame = tuple[Kind, str | bytes]

SOURCES = ("chesscom", "lichess")
NAME = re.compile(r"[A-Za-z0-9_-]{2,50}")  # the README's username rule, matched whole
FIELDS: dict[str, tuple[str, ...]] = {
    "import": ("source", "username"),
    "resume": ("ticket",),
    "cancel": ("ticket",),
    "watch_queue": (),
}
ERROR_CODES = {
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "unknown_source",
    "invalid_username",
    "unknown_ticket",
    "binary_frame",
}

INJECTIONS = (
    "'; DROP TABLE games; --",
    "x' OR '1'='1",
    '" OR 1=1 --',
    "1); DELETE FROM imports; --",
    "chesscom' UNION SELECT cursor FROM players --",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</textarea><svg onload=alert(1)>",
    "javascript:alert(1)",
    "{{7*7}}",
    "${jndi:ldap://example.invalid/a}",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "\u202eevil\u202c",
    "\u200b\u200b",
    "\ufeff",
    "__proto__",
    "constructor",
    "null",
    "NaN",
)
TYPE_VARIANTS = ("Import", "IMPORT", " import", "import ", "watch-queue", "watchQueue", "", "ping")

NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
names = st.text(NAME_CHARS, min_size=2, max_size=50)  # from_regex is ten times slower
tickets = st.text(NAME_CHARS, max_size=40)
huge = st.tuples(st.text(min_size=1, max_size=3), st.integers(100, 3500)).map(
    lambda t: (t[0] * t[1])[: t[1]]
)
controls = st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=8)
surrogates = st.sampled_from(["\ud800", "a\udfffb", "\udc00\udc00"])  # never valid UTF-8
near_names = st.one_of(
    names.map(lambda n: n + "\n"),
    names.map(lambda n: " " + n),
    names.map(lambda n: n + "é"),
    names.map(lambda n: n + "\x00"),
    names.map(lambda n: n.upper() + "!"),
    st.sampled_from(["a", "x" * 51, "ab cd", "ab/cd", "ab.cd", "ab%0a", "ab\r\n"]),
)
nasty = st.one_of(
    st.text(max_size=40),
    controls,
    st.sampled_from(INJECTIONS),
    huge,
    surrogates,
    near_names,
    st.text(st.characters(min_codepoint=0x10000), max_size=10),  # astral plane
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**100), 2**100),
    st.floats(allow_nan=False, allow_infinity=False),
    nasty,
)
junk = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=4,
)
shapes = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("import"), "source": st.sampled_from(SOURCES), "username": names}
    ),
    st.fixed_dictionaries({"type": st.just("resume"), "ticket": tickets}),
    st.fixed_dictionaries({"type": st.just("cancel"), "ticket": tickets}),
    st.fixed_dictionaries({"type": st.just("watch_queue")}),
)

# One field wrong and the rest right: the shapes closest to slipping through.
near_valid = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("import"),
            "source": st.sampled_from(SOURCES),
            "username": near_names | nasty,
        }
    ),
    st.fixed_dictionaries({"type": st.just("import"), "source": nasty, "username": names}),
    st.fixed_dictionaries({"type": st.sampled_from(("resume", "cancel")), "ticket": nasty}),
)


@st.composite
def broken(draw: st.DrawFn) -> dict[str, Any]:
    """A protocol message with one to three things wrong with it."""
    message: dict[str, Any] = dict(draw(shapes))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("drop", "retype", "nasty", "extra", "type")))
        keys = sorted(message)
        if op == "drop" and keys:
            del message[draw(st.sampled_from(keys))]
        elif op == "retype" and keys:
            message[draw(st.sampled_from(keys))] = draw(junk)
        elif op == "nasty" and keys:
            message[draw(st.sampled_from(keys))] = draw(nasty)
        elif op == "extra":
            message[draw(st.text(max_size=10))] = draw(junk)
        else:
            message["type"] = draw(st.one_of(st.sampled_from(TYPE_VARIANTS), nasty, junk))
    return message


def dumps(value: Any, ascii_only: bool = True, compact: bool = False) -> str:
    separators = (",", ":") if compact else None
    text = json.dumps(value, ensure_ascii=ascii_only, separators=separators, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate travels as a \u escape
        text = json.dumps(value, allow_nan=False)
    return text


def _deep(depth: int, brackets: bool, wrapped: bool) -> str:
    body = "[" * depth + "]" * depth if brackets else '{"a":' * depth + "1" + "}" * depth
    return '{"type":"resume","ticket":' + body + "}" if wrapped else body


def _insert(text: str, at: int, junk_bytes: bytes) -> bytes:
    raw = text.encode()
    at %= len(raw) + 1
    return raw[:at] + junk_bytes + raw[at:]


shape_text = shapes.map(dumps)
NOT_JSON = (
    "", " ", "\n", "{", "}", "[", '"', "nul", "tru", "01", "1.", ".5", "+1", "0x10", "NaN",
    "Infinity", "-Infinity", "1e400", "{type:'import'}", "{'type': 'watch_queue'}",
    '{"type":"import",}', "[1,]", '{"a" 1}', '{"type":"watch_queue"} // hi',
    '/* */{"type":"watch_queue"}', '\ufeff{"type":"watch_queue"}', '{"type":"watch_queue"}}',
    '{"type":"resume","ticket":"\\ud800"}', '{"type":"resume","ticket":"\\x41"}',
)  # fmt: skip
text_frames = st.one_of(
    st.builds(dumps, broken(), st.booleans(), st.booleans()),  # the bulk: broken shapes
    st.builds(dumps, near_valid, st.booleans()),
    st.builds(dumps, junk.filter(lambda v: not isinstance(v, dict))),  # JSON, not an object
    st.tuples(shape_text, st.integers(0, 200)).map(lambda t: t[0][: t[1] % len(t[0])]),  # cut
    st.tuples(shape_text, st.text(min_size=1, max_size=5)).map(lambda t: t[0] + t[1]),
    st.sampled_from(NOT_JSON),
    st.text(max_size=200),
    st.builds(_deep, st.integers(1, 800) | st.integers(1200, 2000), st.just(True), st.booleans()),
    st.builds(_deep, st.integers(1, 600), st.just(False), st.booleans()),
)
frames: st.SearchStrategy[Frame] = st.one_of(
    text_frames.map(lambda t: ("text", t)),
    st.one_of(st.binary(max_size=300), shape_text.map(str.encode)).map(lambda b: ("binary", b)),
)
# Frames that close their socket: each is sent on a socket of its own.
oversized: st.SearchStrategy[Frame] = st.one_of(
    st.integers(4097, 20000).map(lambda n: ("text", dumps({"type": "resume", "ticket": "x" * n}))),
    st.tuples(st.text(min_size=1, max_size=3), st.integers(4097, 9000)).map(
        lambda t: ("text", dumps({"type": "import", "source": "lichess", "username": t[0] * t[1]}))
    ),
    st.integers(4097, 9000).map(lambda n: ("binary", b"\x00" * n)),
    st.integers(2049, 3000).map(lambda n: ("text", "[" * n + "]" * n)),
)
bad_utf8: st.SearchStrategy[Frame] = st.builds(
    lambda text, at, junk_bytes: ("bad_utf8", _insert(text, at, junk_bytes)),
    shape_text,
    st.integers(0, 10_000),
    st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80"]),
)


def size(frame: Frame) -> int:
    payload = frame[1]
    return len(payload.encode() if isinstance(payload, str) else payload)


def _reject(token: str) -> Any:
    raise ValueError(f"not JSON: {token}")


def _finite(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _has_surrogate(value: Any) -> bool:
    stack = [value]  # no recursion: the value may be nested 800 deep
    while stack:
        item = stack.pop()
        if isinstance(item, str) and any("\ud800" <= c <= "\udfff" for c in item):
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
    return False


def expected(frame: Frame) -> set[str] | None:
    """The error codes the hub may answer, from the README's rules; None if `frame` is valid."""
    kind, payload = frame
    if kind == "binary":
        return {"binary_frame"}
    assert isinstance(payload, str)
    try:
        value = json.loads(payload, parse_constant=_reject, parse_float=_finite)
    except RecursionError:
        return {"invalid_json", "invalid_message"}
    except ValueError:
        return {"invalid_json"}
    if _has_surrogate(value):  # not representable in UTF-8, so not valid JSON text
        return {"invalid_json"}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return {"invalid_message"}
    fields = FIELDS.get(value["type"])
    if fields is None:
        return {"unknown_type"}
    codes: set[str] = set()
    if set(value) - {"type", *fields}:
        codes.add("invalid_message")
    for name in fields:
        field = value.get(name)
        if not isinstance(field, str):
            codes.add("invalid_message")  # missing or not a string
        elif name == "source" and field not in SOURCES:
            codes.add("unknown_source")
        elif name == "username" and not NAME.fullmatch(field):
            codes.add("invalid_username")
        elif name == "ticket" and not 1 <= len(field) <= 200:
            codes.add("invalid_message")
    if codes:
        return codes
    if value["type"] in ("resume", "cancel"):
        return {"unknown_ticket"}  # well formed, but no such ticket was ever handed out
    return None
