"""The load tool without its extra installed: help works, a run says what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Installed first on sys.meta_path by a sitecustomize module, so `rich` and `matplotlib`
# look absent whether or not this machine has them.
BLOCKER = """
import sys

class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("rich", "matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Absent())
"""


def without_extra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_blocker_blocks(tmp_path: Path) -> None:
    done = without_extra(tmp_path, "-c", "import rich")
    assert done.returncode != 0 and "No module named 'rich'" in done.stderr


def test_help_without_the_extra(tmp_path: Path) -> None:
    done = without_extra(tmp_path, "-m", "load", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage: python -m load" in done.stdout and "--sockets" in done.stdout
    assert "pip install -e '.[load]'" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "load", "--sockets", "1", "--no-plot"],
        ["-m", "load", "--sockets", "1"],
        ["-m", "load.bench.slowloris", "--connections", "1"],
        ["-m", "load.baseline.compare"],
    ],
)
def test_a_run_without_the_extra_names_the_install_command(tmp_path: Path, args: list[str]) -> None:
    done = without_extra(tmp_path, *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "is not installed" in lines[0] and "pip install -e '.[load]'" in lines[0]
