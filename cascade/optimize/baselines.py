"""The single models a ladder is set beside: the best, and the cheapest one as good as the best.

A ladder is set beside both, so that a single cheap model as good as the best is never hidden
behind the best's price. "As good" means a pass rate within the best model's 95 % bootstrap
interval (:func:`cascade.bench.metrics.bootstrap`, as ``cascade bench`` reports it), on the same
tasks. ``cascade optimize``'s report and ``benchmarks/guarantee.py`` both use
:func:`best_and_cheapest_equal`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cascade.bench.evaluate import ReplayScore
from cascade.bench.metrics import bootstrap

__all__ = ["best_and_cheapest_equal"]


def best_and_cheapest_equal(scores: Mapping[str, ReplayScore]) -> tuple[str, str]:
    """The best model (the cheaper of a tie), and the cheapest whose pass rate is in its interval.

    >>> scores = {
    ...     "big": ReplayScore.of([True] * 9 + [False], [1.0] * 10, [0.0] * 10),
    ...     "small": ReplayScore.of([True] * 8 + [False] * 2, [0.1] * 10, [0.0] * 10),
    ...     "tiny": ReplayScore.of([True] * 2 + [False] * 8, [0.01] * 10, [0.0] * 10),
    ... }
    >>> best_and_cheapest_equal(scores)
    ('big', 'small')
    """
    best = max(scores, key=lambda m: (scores[m].pass_rate, -scores[m].cost_usd))
    low = bootstrap(scores[best].rights, scores[best].costs)[0].low
    equal = [m for m in scores if scores[m].pass_rate >= low - 1e-9]
    cheapest = min(equal, key=lambda m: (scores[m].cost_per_task, m))
    return best, cheapest
