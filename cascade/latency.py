"""How long a model takes to answer: the p90 a task with a deadline plans its next ask by.

The expected latency of a tier is, in order: what the backend knows of the model before
calling it (a replay: the p90 of the dataset's recorded latencies), the p90 of the model's
answered calls in this run once :data:`ENOUGH` have been seen, or the tier's own
``expected_latency_s``. ``None`` when none of them says.

>>> seen = Latencies()
>>> for tenth in range(1, 21):
...     seen.add("m", tenth / 10)
>>> seen.p90("m")
1.81
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from cascade.types import Tier

__all__ = ["ENOUGH", "Latencies", "p90"]

ENOUGH = 20
"""Answered calls of a model a run must have seen before their p90 is trusted."""
_WINDOW = 512
"""Only the latest calls count: a provider's speed drifts over a long run."""


def p90(values: Iterable[float]) -> float | None:
    """The 90th percentile (linear interpolation, as numpy's default); ``None`` with no values."""
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    import statistics  # noqa: PLC0415  # with fractions and decimal, ~4 ms: not with cascade

    return round(statistics.quantiles(data, n=10, method="inclusive")[8], 6)


class Latencies:
    """The latest answered-call latencies of each model, and their p90."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def add(self, model: str, seconds: float) -> None:
        """Keep one answered call's latency."""
        seen = self._seen.get(model)
        if seen is None:
            seen = self._seen[model] = deque(maxlen=_WINDOW)
        seen.append(seconds)

    def p90(self, model: str) -> float | None:
        """The p90 of ``model``'s latest calls, once :data:`ENOUGH` were seen."""
        seen = self._seen.get(model)
        if seen is None or len(seen) < ENOUGH:
            return None
        return p90(seen)

    def expected_s(self, tier: Tier, known: float | None) -> float | None:
        """The seconds ``tier`` is expected to take; ``known`` is the backend's own figure."""
        if known is not None:
            return known
        measured = self.p90(tier.model)
        return measured if measured is not None else tier.expected_latency_s
