"""What the benchmarks share: result files, the table, timing helpers."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from load.extra import missing

try:
    from rich.console import Console
    from rich.table import Table
except ModuleNotFoundError as exc:
    raise missing(exc) from None

RESULTS = Path("load/results")


def machine() -> dict[str, Any]:
    import os

    from load.procs import hub_source

    return {
        "hub_source": hub_source(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def write(name: str, result: dict[str, Any], out: Path = RESULTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-bench-{name}.json"
    path.write_text(json.dumps({"bench": name, "machine": machine(), **result}, indent=1))
    return path


def show(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    Console().print(table)


def spread(figures: dict[str, Any], low: str = "p50", high: str = "p99") -> str:
    """Two figures of a `load.stats.summary`, e.g. "12.3 / 456.7"."""
    return f"{_fmt(figures.get(low))} / {_fmt(figures.get(high))}"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
