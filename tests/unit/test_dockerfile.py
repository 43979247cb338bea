"""The Dockerfile, read by a small parser: two stages, slim base, wheels, non-root, health."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-cased: FROM, RUN, COPY...
    args: str  # the rest, continuation lines joined
    line: int  # where it starts, 1-based


def parse(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blanks dropped.

    As Docker does, a comment line inside a continued instruction is skipped, and
    a trailing backslash (the default escape character) continues the instruction.
    """
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        keyword, _, args = " ".join(p for p in parts if p).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    if parts:
        raise ValueError(f"instruction at line {start} ends with a continuation")
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM; each stage starts with its FROM."""
    grouped: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            grouped.append([ins])
        elif not grouped:
            if ins.keyword != "ARG":  # only ARG may come before the first FROM
                raise ValueError(f"{ins.keyword} before FROM at line {ins.line}")
        else:
            grouped[-1].append(ins)
    return grouped


def command(args: str) -> list[str]:
    """An exec-form (JSON array) or shell-form command as a word list."""
    if args.startswith("["):
        words = json.loads(args)
        assert isinstance(words, list) and all(isinstance(w, str) for w in words)
        return words
    return shlex.split(args)


def options(args: str) -> tuple[dict[str, str], str]:
    """Leading `--flag=value` options of COPY or HEALTHCHECK, and the rest."""
    found: dict[str, str] = {}
    rest = args
    while match := re.match(r"--([a-z-]+)=(\S+)\s+", rest):
        found[match[1]] = match[2]
        rest = rest[match.end() :]
    return found, rest


# -- the parser itself ---------------------------------------------------------------


def test_parser_joins_continuations_and_skips_comments() -> None:
    text = (
        "# syntax comment\n"
        "FROM python:3.11-slim AS build\n"
        "\n"
        "RUN pip install \\\n"
        "    # a comment inside the continuation\n"
        "    a b \\\n"
        "    c\n"
        'CMD ["hub", "serve"]\n'
    )
    got = parse(text)
    assert [(i.keyword, i.args, i.line) for i in got] == [
        ("FROM", "python:3.11-slim AS build", 2),
        ("RUN", "pip install a b c", 4),
        ("CMD", '["hub", "serve"]', 8),
    ]
    assert command(got[2].args) == ["hub", "serve"]
    assert [len(s) for s in stages(got)] == [3]


def test_parser_refuses_a_dangling_continuation() -> None:
    with pytest.raises(ValueError, match="continuation"):
        parse("FROM python:3.11-slim\nRUN true \\\n")


def test_options() -> None:
    assert options("--from=build /wheels /wheels") == ({"from": "build"}, "/wheels /wheels")
    assert options("--interval=10s --timeout=3s CMD x")[0] == {"interval": "10s", "timeout": "3s"}


# -- the project's Dockerfile ------------------------------------------------------


@pytest.fixture(scope="module")
def built() -> list[list[Instruction]]:
    return stages(parse(DOCKERFILE.read_text()))


def test_two_stages_on_a_slim_python(built: list[list[Instruction]]) -> None:
    assert len(built) == 2
    for stage in built:
        image = stage[0].args.split()[0]
        assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-\w+)?", image), image


def test_wheels_built_first_and_installed_from_them(built: list[list[Instruction]]) -> None:
    build, final = built
    build_name = build[0].args.split()[-1] if " AS " in build[0].args.upper() else "0"
    wheel_runs = [i.args for i in build if i.keyword == "RUN" and "pip wheel" in i.args]
    assert len(wheel_runs) == 1
    match = re.search(r"(?:--wheel-dir|-w)[= ](\S+)", wheel_runs[0])
    assert match, wheel_runs[0]
    wheel_dir = match[1]
    copies = [options(i.args) for i in final if i.keyword == "COPY"]
    assert any(
        opts.get("from") == build_name and rest.split()[0] == wheel_dir for opts, rest in copies
    ), copies
    installs = [i.args for i in final if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and "--find-links" in installs[0]
    assert not any(i.keyword == "RUN" and "pip wheel" in i.args for i in final)


def test_runs_as_a_user_who_is_not_root(built: list[list[Instruction]]) -> None:
    final = built[1]
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage never switches user"
    name = users[-1].args.split(":")[0]
    assert name not in ("root", "0")
    cmd = next(i for i in final if i.keyword in ("CMD", "ENTRYPOINT"))
    assert users[-1].line < cmd.line


def exposed_port(final: list[Instruction]) -> str:
    exposes = [i for i in final if i.keyword == "EXPOSE"]
    assert len(exposes) == 1 and len(exposes[0].args.split()) == 1, exposes
    return exposes[0].args.split("/")[0]


def test_exactly_one_exposed_port(built: list[list[Instruction]]) -> None:
    assert exposed_port(built[1]).isdigit()


def test_healthcheck_probes_healthz_on_that_port(built: list[list[Instruction]]) -> None:
    final = built[1]
    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    _, rest = options(checks[0].args)
    keyword, _, probe = rest.partition(" ")
    assert keyword.upper() == "CMD"
    text = " ".join(command(probe))
    assert re.search(rf"https?://(127\.0\.0\.1|localhost):{exposed_port(final)}/healthz\b", text)


def test_command_serves_on_all_interfaces(built: list[list[Instruction]]) -> None:
    final = built[1]
    entry = [command(i.args) for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [command(i.args) for i in final if i.keyword == "CMD"]
    words = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
    assert words[:2] == ["hub", "serve"], words
    assert "--host" in words and words[words.index("--host") + 1] == "0.0.0.0"
    if "--port" in words:
        assert words[words.index("--port") + 1] == exposed_port(final)
