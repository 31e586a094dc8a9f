"""Duration statistics, as the metrics and reports give them: count, mean, median and the 90th
percentile (linear interpolation between closest ranks), in hours; an empty set gives ``None``
everywhere, which reports show as "n/a"."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

HOUR = 3600.0


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile by linear interpolation between closest ranks (numpy's default,
    Excel's PERCENTILE.INC). ``None`` for an empty set; the value itself for one element."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, not {p}")
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True)
class DurationStats:
    """count, mean, median and p90 of a set of durations (hours). Empty -> None ("n/a")."""

    count: int
    mean: float | None
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, hours: Iterable[float]) -> "DurationStats":
        xs = [float(h) for h in hours]
        if not xs:
            return cls(0, None, None, None)
        return cls(len(xs), sum(xs) / len(xs), median(xs), percentile(xs, 90))

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {"count": self.count, "mean": r(self.mean), "median": r(self.median), "p90": r(self.p90),
                "unit": "hours"}


def hours_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / HOUR
