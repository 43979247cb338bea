"""The `hub` command line: its version, and help with a default for every option."""

from __future__ import annotations

import re

import pytest

from hub.__main__ import _parser, main, version


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"hub {version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version())


@pytest.mark.parametrize("command", ["serve", "sim"])
def test_every_option_has_help_and_a_default(command: str) -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = sub.choices
    assert isinstance(commands, dict)
    options = [a for a in commands[command]._actions if a.option_strings and a.dest != "help"]
    assert options
    for action in options:
        assert action.help, action.option_strings
        assert "default" in action.help, action.option_strings
