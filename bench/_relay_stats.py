"""Order statistics and table rows shared by the relay bench's phases."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Median, 95th percentile and maximum of a sample (nearest-rank percentiles)."""

    median: float
    p95: float
    max: float
    count: int

    def text(self, unit: str = "ms", digits: int = 1) -> str:
        values = " / ".join(f"{value:.{digits}f}" for value in (self.median, self.p95, self.max))
        return f"{values} {unit} (n={self.count})"


def spread(values: Sequence[float]) -> Spread | None:
    """The spread of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return Spread(_rank(ordered, 0.50), _rank(ordered, 0.95), ordered[-1], len(ordered))


def _rank(ordered: list[float], quantile: float) -> float:
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


@dataclass
class Row:
    """One printed figure: what, its value, the bar it is held to (if any) and the verdict."""

    figure: str
    value: str
    bar: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.passed is None else ("PASS" if self.passed else "FAIL")


def render(title: str, rows: Sequence[Row]) -> str:
    """A fixed-width table; rows without a bar are figures for reading, not judged."""
    width = max(len(row.figure) for row in rows)
    value_width = max(len(row.value) for row in rows)
    bar_width = max([len(row.bar) for row in rows] + [3])
    lines = [title, "-" * len(title)]
    for row in rows:
        bar = row.bar or "-"
        line = f"  {row.figure:<{width}}  {row.value:<{value_width}}  {bar:<{bar_width}}  {row.verdict}"
        lines.append(line.rstrip())
    return "\n".join(lines)
