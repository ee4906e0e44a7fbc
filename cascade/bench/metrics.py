"""Figures that compare ladders with single models: intervals, savings and the frontier.

Every figure comes from per-task vectors (was the delivered answer right, what did it cost), so
the same replay always gives the same numbers: the bootstrap uses a fixed seed.

- **Bootstrap 95 % intervals**: tasks are resampled with replacement ``rounds`` times; the
  interval is the 2.5th and 97.5th percentile of the pass rate and of the cost per task.
- **Savings at equal pass rate**: against the cheapest single model whose pass rate is at least
  the ladder's (or the best model, when the ladder beats them all), the share of its cost the
  ladder saves. Negative when the ladder costs more.
- **Share of the oracle's savings**: ``(best - ladder) / (best - oracle)`` in cost, where *best* is
  the single model with the highest pass rate. 1.0 means the ladder saves as much as knowing in
  advance which cheap model is right; it is only reported when the ladder's pass rate is at least
  the best model's, since saving by answering worse is no saving.
- **Area under the frontier**: the best pass rate reachable at each cost, averaged over the
  log-cost range of the single models. Higher is better; comparing the area with and without the
  ladders shows what the ladders add.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "Point",
    "bootstrap",
    "cost_span",
    "frontier",
    "frontier_area",
    "oracle_share",
    "savings",
]


@dataclass(frozen=True, slots=True)
class Interval:
    """A 95 % bootstrap interval."""

    low: float
    high: float

    def to_json(self) -> list[float]:
        """``[low, high]``."""
        return [round(self.low, 8), round(self.high, 8)]


def bootstrap(
    passed: Sequence[bool], costs: Sequence[float], *, rounds: int = 1000, seed: int = 0
) -> tuple[Interval, Interval]:
    """95 % intervals of the pass rate and the cost per task, by resampling tasks.

    >>> rate, cost = bootstrap([True, False] * 50, [1.0, 3.0] * 50)
    >>> 0.38 < rate.low < 0.5 < rate.high < 0.62 and cost.low < 2.0 < cost.high
    True
    """
    count = len(passed)
    if count == 0:
        return Interval(0.0, 0.0), Interval(0.0, 0.0)
    rng = np.random.default_rng(seed)
    right = np.asarray(passed, dtype=np.float64)
    spent = np.asarray(costs, dtype=np.float64)
    rates, means = [], []
    for start in range(0, rounds, _CHUNK):
        picks = rng.integers(0, count, size=(min(_CHUNK, rounds - start), count))
        rates.append(right[picks].mean(axis=1))
        means.append(spent[picks].mean(axis=1))
    return _interval(np.concatenate(rates)), _interval(np.concatenate(means))


_CHUNK = 100
"""Resamples drawn at once: 100 rounds of 10,000 tasks is 8 MB of indices."""


def _interval(values: Any) -> Interval:
    low, high = np.percentile(values, [2.5, 97.5])
    return Interval(float(low), float(high))


@dataclass(frozen=True, slots=True)
class Point:
    """One model or ladder on the cost/pass-rate plane (cost per task)."""

    name: str
    cost: float
    pass_rate: float


def savings(ladder: Point, models: Sequence[Point]) -> float | None:
    """The share of cost saved against the cheapest model at least as good as ``ladder``.

    When the ladder beats every model, it is compared with the best one.

    >>> savings(Point("l", 1.0, 0.9), [Point("a", 4.0, 0.92), Point("b", 0.5, 0.6)])
    0.75
    >>> savings(Point("l", 1.0, 0.99), [Point("a", 4.0, 0.92), Point("b", 0.5, 0.6)])
    0.75
    """
    if not models:
        return None
    good = [m for m in models if m.pass_rate >= ladder.pass_rate]
    if good:
        cheapest = min(good, key=lambda m: m.cost)
    else:
        cheapest = max(models, key=lambda m: (m.pass_rate, -m.cost))
    return 1 - ladder.cost / cheapest.cost if cheapest.cost > 0 else None


def oracle_share(ladder: Point, models: Sequence[Point], oracle: Point) -> float | None:
    """The share of the oracle's savings (against the best single model) the ladder captures.

    >>> best = Point("best", 10.0, 0.9)
    >>> oracle_share(Point("l", 4.0, 0.9), [best], Point("oracle", 2.0, 0.95))
    0.75

    ``None`` when there is no model row (no model answered every task, as in imported traffic).
    """
    if not models:
        return None
    best = max(models, key=lambda m: (m.pass_rate, -m.cost))
    if ladder.pass_rate < best.pass_rate or best.cost <= oracle.cost:
        return None
    return (best.cost - ladder.cost) / (best.cost - oracle.cost)


def frontier(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both cost and pass rate, cheapest first."""
    ordered = sorted(points, key=lambda p: (p.cost, -p.pass_rate))
    found: list[Point] = []
    for point in ordered:
        if not found or point.pass_rate > found[-1].pass_rate:
            found.append(point)
    return found


def frontier_area(points: Sequence[Point], span: tuple[float, float]) -> float:
    """The best pass rate reachable at each cost, averaged over ``span`` on a log-cost axis.

    >>> frontier_area([Point("a", 1.0, 0.5), Point("b", 10.0, 0.9)], (1.0, 100.0))
    0.7
    """
    low, high = (math.log10(max(v, 1e-12)) for v in span)
    if high <= low:
        return max((p.pass_rate for p in points), default=0.0)
    steps = frontier(points)
    area = 0.0
    for index, point in enumerate(steps):
        start = max(low, math.log10(max(point.cost, 1e-12)))
        end = high if index + 1 == len(steps) else math.log10(max(steps[index + 1].cost, 1e-12))
        end = min(end, high)
        if end > start:
            area += (end - start) * point.pass_rate
    return round(area / (high - low), 6)


def cost_span(models: Mapping[str, Point]) -> tuple[float, float]:
    """The cost range of the single models (per task), the frontier area's axis."""
    costs = [p.cost for p in models.values() if p.cost > 0]
    return (min(costs), max(costs)) if costs else (0.0, 0.0)
