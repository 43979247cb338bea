"""How good the estimates have been: the window that grades them and corrects the next ones."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


class Accuracy:
    """How the hub's own estimates turned out, over the last `window` admissions.

    Each sample compares the wait a waiter was told (once its size was known,
    or a second after its ticket) with the wait it had. Ratios are taken of
    (wait + 1 s), so that a sub-second wait does not dominate: their median
    corrects the next estimates, their p10 and p90 bound them.
    """

    __slots__ = ("_factors", "min_samples", "samples")

    def __init__(self, window: int = 200, min_samples: int = 20) -> None:
        self.samples: deque[tuple[float, float, float, float, float]] = deque(maxlen=window)
        self.min_samples = min_samples
        self._factors: tuple[float, float, float] | None = None

    def record(self, raw: float, shown: float, low: float, high: float, real: float) -> None:
        """One admission: the raw and published estimate, its interval, and the real wait."""
        self.samples.append((raw, shown, low, high, real))
        self._factors = None

    def factors(self) -> tuple[float, float, float]:
        """(low, middle, high) multipliers of (raw estimate + 1 s)."""
        if self._factors is None:
            if len(self.samples) < self.min_samples:
                self._factors = (0.5, 1.0, 2.0)
            else:
                ratios = sorted((real + 1.0) / (raw + 1.0) for raw, _, _, _, real in self.samples)
                self._factors = (
                    _quantile(ratios, 0.1),
                    _quantile(ratios, 0.5),
                    _quantile(ratios, 0.9),
                )
        return self._factors

    def correct(self, raw: float) -> tuple[float, float, float]:
        """(low, estimate, high) for a raw estimate; low <= estimate <= high."""
        if raw == float("inf"):
            return raw, raw, raw
        low, mid, high = self.factors()
        if len(self.samples) < self.min_samples:
            return raw * low, raw, raw * high
        return tuple(max((raw + 1.0) * f - 1.0, 0.0) for f in (low, mid, high))  # type: ignore[return-value]

    def summary(self) -> dict[str, float | int | None]:
        """The figures the board publishes; null while there are too few samples."""
        n = len(self.samples)
        if n < self.min_samples:
            return {
                "samples": n,
                "median_error_pct": None,
                "p90_error_pct": None,
                "interval_hit_pct": None,
            }
        errors = sorted(abs(shown - real) / max(real, 1.0) for _, shown, _, _, real in self.samples)
        hits = sum(1 for _, _, low, high, real in self.samples if low <= real <= high)
        return {
            "samples": n,
            "median_error_pct": round(100 * _quantile(errors, 0.5), 1),
            "p90_error_pct": round(100 * _quantile(errors, 0.9), 1),
            "interval_hit_pct": round(100 * hits / n, 1),
        }


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks of a sorted sequence."""
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
