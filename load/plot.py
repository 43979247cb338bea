"""One PNG per run: queue length, running imports, position-update latency and hub footprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from load.extra import missing

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ModuleNotFoundError as exc:
    raise missing(exc) from None


def _xy(points: list[list[float]], column: int = 1) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[column] for p in points]


def draw(report: dict[str, Any], series: dict[str, Any], path: Path) -> Path:
    footprint = series.get("footprint", {})
    rows = 4 if footprint else 3
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows), sharex=True)
    title = (
        f"{report['scenario']}: {report['options']['sockets']} sockets, "
        f"{report['completion']['done']} done, {report['completion']['lost']} lost"
    )
    fig.suptitle(title)

    ax = axes[0]
    ax.step(*_xy(series["queue"]), where="post", color="tab:blue")
    ax.set_ylabel("waiting imports")
    ax.grid(alpha=0.3)

    ax = axes[1]
    ax.step(*_xy(series["running"]), where="post", color="tab:green")
    configured = report.get("max_concurrent_configured")
    if configured:
        ax.axhline(configured, color="tab:red", linestyle="--", linewidth=1, label="configured")
        ax.legend(loc="upper right")
    ax.set_ylabel("running imports")
    ax.grid(alpha=0.3)

    ax = axes[2]
    if series["latency_worst_s"]:
        t, worst = _xy(series["latency_worst_s"])
        ax.plot(t, [w * 1000 for w in worst], ".", markersize=2, label="last waiter")
        t, mean = _xy(series["latency_mean_s"])
        ax.plot(t, [m * 1000 for m in mean], ".", markersize=2, label="mean waiter")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.legend(loc="upper right")
    ax.set_ylabel("position update ms")
    ax.grid(alpha=0.3)

    if footprint:
        ax = axes[3]
        twin = ax.twinx()
        for name, samples in footprint.items():
            if not samples:
                continue
            ax.plot([s[0] for s in samples], [s[1] for s in samples], label=f"{name} RSS MB")
            twin.plot(
                [s[0] for s in samples],
                [s[2] for s in samples],
                linestyle=":",
                label=f"{name} CPU %",
            )
        ax.set_ylabel("RSS MB")
        twin.set_ylabel("CPU %")
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)

    axes[-1].set_xlabel("seconds since the imports were sent")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
