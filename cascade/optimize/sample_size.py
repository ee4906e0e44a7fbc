"""How large a sample a certification needs, said before any model is paid to answer it.

``cascade optimize`` certifies a ladder on its certification tasks with an exact
(Clopper-Pearson) lower bound: a ladder that passes a share ``rate`` of ``n`` tasks is certified
at ``target`` when the bound of its passes (``rate * n``, rounded down) in ``n`` reaches it. The
closer ``rate`` is to ``target``, the more tasks that takes. The certification tasks are a part
of the sample: with optimize's defaults, 30 % is held out and half of the rest orders the
candidates, so the sample is about ``n / 0.35``.

The figures are for the first candidate of the walk (the cheapest the selection part expects to
certify); a ladder that passes more of the tasks than the rate assumed needs fewer.

>>> certification_tasks(0.9, 0.9, 0.95), sample_for(0.9, 0.9, 0.95)
(78, 223)
>>> rate_needed(0.9, 0.9, 223)
0.949
>>> certification_tasks(0.9, 0.9, 0.9) is None
True
"""

from __future__ import annotations

import math

from scipy.stats import beta

from cascade.optimize.certify import lower_bound

__all__ = ["CERTIFYING", "certification_tasks", "rate_needed", "sample_for"]

CERTIFYING = (1 - 0.3) * (1 - 0.5)
"""The share of a sample that certifies, with ``cascade optimize``'s default ``--holdout 0.3``
and ``--select 0.5``."""

_MOST = 10_000_000


def _bound(tasks: float, rate: float, confidence: float) -> float:
    """The lower bound of ``rate * tasks`` passes in ``tasks`` (passes need not be whole)."""
    passed = rate * tasks
    return float(beta.ppf(1.0 - confidence, passed, tasks - passed + 1))


def certification_tasks(target: float, confidence: float, rate: float) -> int | None:
    """The fewest certification tasks on which a ladder passing ``rate`` is certified.

    ``None`` when no number is enough (``rate`` is not above ``target``).
    """
    if not 0 < target < 1 or not 0 < confidence < 1 or not target < rate <= 1:
        return None
    if rate == 1:  # every task passed: the bound is (1 - confidence) ** (1 / n)
        return math.ceil(math.log(1 - confidence) / math.log(target))
    low, high = 1, 1
    while _bound(high, rate, confidence) < target:
        low, high = high, high * 2
        if high > _MOST:
            return None
    while low < high:  # the bound grows with the tasks: the first that reaches the target
        middle = (low + high) // 2
        if _bound(middle, rate, confidence) >= target:
            high = middle
        else:
            low = middle + 1
    # Passes are whole: from there, the first count whose whole passes certify.
    tasks = high
    while lower_bound(math.floor(rate * tasks + 1e-9), tasks, confidence) < target:
        tasks += 1
    return tasks


def sample_for(target: float, confidence: float, rate: float) -> int | None:
    """The sample (tasks asked about) whose certification part is that many tasks."""
    needed = certification_tasks(target, confidence, rate)
    return None if needed is None else math.ceil(needed / CERTIFYING)


def rate_needed(target: float, confidence: float, sample: int) -> float | None:
    """The lowest pass rate (to a tenth of a point) with which ``sample`` tasks certify ``target``.

    ``None`` when even a ladder that passes every task needs more. The bound of whole passes
    is not monotone in the rate, so this is the search's answer, good to about a tenth of a
    point.
    """
    enough = sample_for(target, confidence, 1.0)
    if enough is None or enough > sample:
        return None
    low, high = math.floor(target * 1000) + 1, 1000  # in tenths of a point
    while low < high:
        middle = (low + high) // 2
        needed = sample_for(target, confidence, middle / 1000)
        if needed is not None and needed <= sample:
            high = middle
        else:
            low = middle + 1
    return high / 1000
