"""Client message validation edge cases (the fuzz test covers the breadth)."""

from __future__ import annotations

import json

import pytest

from hub import protocol as p


@pytest.mark.parametrize("name", ["ab\n", "ab\r\n", "\nab", "a", "x" * 51, "ab cd", "äb", "ab\x00"])
def test_username_must_match_whole(name: str) -> None:
    text = json.dumps({"type": "import", "source": "lichess", "username": name})
    with pytest.raises(p.ProtocolError) as refused:
        p.decode(text)
    assert refused.value.code == "invalid_username"


@pytest.mark.parametrize("name", ["ab", "A-b_9", "x" * 50])
def test_valid_usernames(name: str) -> None:
    message = p.decode(json.dumps({"type": "import", "source": "chesscom", "username": name}))
    assert isinstance(message, p.Import) and message.username == name


def test_import_may_ask_for_a_repair() -> None:
    plain = p.decode('{"type":"import","source":"chesscom","username":"ab"}')
    repair = p.decode('{"type":"import","source":"chesscom","username":"ab","repair":true}')
    assert isinstance(plain, p.Import) and plain.repair is False
    assert isinstance(repair, p.Import) and repair.repair is True
    with pytest.raises(p.ProtocolError) as refused:
        p.decode('{"type":"import","source":"chesscom","username":"ab","repair":"yes"}')
    assert refused.value.code == "invalid_message"


def test_done_carries_the_receipt() -> None:
    done = json.loads(p.encode(p.Done("i", 3, 10, 2, 1.5, False, 1)))
    assert done == {
        "type": "done",
        "import_id": "i",
        "games_new": 3,
        "games_total": 10,
        "pages": 2,
        "duration_s": 1.5,
        "complete": False,
        "gaps": 1,
    }
