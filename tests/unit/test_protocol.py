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
