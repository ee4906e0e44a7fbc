"""Choose a ladder that holds on new tasks, with a stated guarantee (Learn then Test).

The training tasks of each kind are split in two, each kind with its own seeded stream: the
*selection* part, on which every ladder is scored and the candidates are put in order, and the
*certification* part, which decides.

**The sequence.** On the selection part, the cheapest mix (one ladder per kind) at each pass
rate it reaches is found by dynamic programming; but a mix chosen for reaching a rate there
does worse on new tasks, as every choice made in sample does. So the selection part is cut in
folds, the choice at each rate is made on all folds but one and checked on the one left out,
and the median gap between in-sample and cross-validated rates (:func:`optimism`) is taken off
every in-sample rate. The candidates are the cheapest choices whose corrected rate reaches a
few levels above the target, spaced by half a standard error of a rate measured on the
certification part, from three standard errors above the target down to it: from the safest
to the cheapest. The best mix in sample goes first when no level picked it.

**The test.** Fixed-sequence testing walks that sequence on the certification part: a
candidate is *certified* when the exact one-sided Clopper-Pearson lower bound of its pass rate,
at level ``confidence``, reaches the target, and the walk stops at the first that is not. The
cheapest certified candidate is chosen.

**Auto.** With no target given, the sequence is one of (target, mix) pairs instead, fixed from
the selection part alone (:func:`auto_sequence`): the best mix in sample with targets climbing
by half a point up to the highest the selection part expects to certify, then the cheaper
candidates at that top target. The walk stops at the first failure; the highest target
certified is the one stated, with the cheapest mix certified at it. Every certified pair holds
at once with the stated probability, so the chosen one does.

**What it guarantees.** The sequence is fixed before the certification part is looked at, so by
fixed-sequence testing, with probability at least ``confidence`` over the draw of the training
tasks, *every* certified candidate's pass rate on new tasks from the same distribution (the
same mix of kinds) reaches the target; the chosen one in particular. This assumes the tasks
are exchangeable draws from that distribution, and says nothing of tasks unlike them.

Nothing here looks at held-out tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from scipy.stats import beta

from cascade.optimize.search import Ladders, Mix, Parts, mixes
from cascade.optimize.table import Floats

__all__ = [
    "CERTIFY",
    "SELECT",
    "Candidate",
    "Certified",
    "Count",
    "Pair",
    "auto_sequence",
    "certify",
    "describe_guarantee",
    "lower_bound",
    "optimism",
    "reachable_target",
    "sequence",
    "walk",
]

FOLDS = 5
"""The selection part is cut in this many folds, to cross-validate the sequence."""
SELECT = tuple(range(FOLDS))
CERTIFY = FOLDS
"""The parts of the training tasks: the selection folds, then the certification part."""


def lower_bound(right: int, total: int, confidence: float) -> float:
    """The exact (Clopper-Pearson) one-sided lower confidence bound of a pass rate.

    >>> round(lower_bound(95, 100, 0.9), 4), lower_bound(0, 10, 0.9)
    (0.9092, 0.0)
    """
    if total <= 0 or right <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, right, total - right + 1))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One mix of the sequence, as each part of the training tasks scores it."""

    picks: Mapping[str, int]
    selected_rate: float
    """Its pass rate on the selection part."""
    certified_rate: float
    """Its pass rate on the certification part."""
    bound: float
    """The lower bound of its pass rate from the certification part, at the confidence."""
    cost_per_task: float
    """Its cost per task over the whole training split."""
    simulated_rate: float = 0.0
    """Its pass rate on the certification part as the simulation counts it (which
    :attr:`certified_rate` equals unless another count was used)."""
    target: float = 0.0
    """The target it was tested against."""
    kinds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Per kind: its own pass rate on the certification part, and that rate's lower bound."""


@dataclass(frozen=True, slots=True)
class Certified:
    """The outcome of the walk: what was certified, and what to choose."""

    target: float
    confidence: float
    sequence: tuple[Candidate, ...]
    """Every candidate tested, in order; the walk stopped after the last one."""
    certified: tuple[Candidate, ...]
    planned: tuple[tuple[float, Mix], ...] = ()
    """The whole sequence of (target, mix) pairs, fixed before the certification part was read."""

    @property
    def chosen(self) -> Candidate | None:
        """The cheapest certified candidate, if any."""
        return min(self.certified, key=lambda c: c.cost_per_task, default=None)

    @property
    def best_bound(self) -> Candidate | None:
        """When nothing reaches the target: the first candidate, whose bound alone is valid."""
        return self.sequence[0] if self.sequence else None


def _score(found: Mapping[str, Ladders], mix: Mix, parts: Parts) -> tuple[float, int, float]:
    columns = list(parts)
    right = sum(float(found[k].rights[i, columns].sum()) for k, i in mix.picks.items())
    cost = sum(float(found[k].costs[i, columns].sum()) for k, i in mix.picks.items())
    return right, sum(int(found[k].sizes[columns].sum()) for k in mix.picks), cost


def levels(target: float, certifying: int, *, start: float = 3.0, step: float = 0.5) -> list[float]:
    """The selection pass rates at which candidates are taken, from the safest down.

    They are spaced by ``step`` standard errors of a pass rate measured on the ``certifying``
    tasks, from ``start`` of them above the target down to the target: few enough tests that
    chance rarely stops the walk, close enough that the cheaper candidates are reached.

    >>> [round(x, 3) for x in levels(0.9, 100)]
    [0.99, 0.975, 0.96, 0.945, 0.93, 0.915, 0.9]
    """
    error = math.sqrt(target * (1 - target) / max(1, certifying))
    count = round(start / step)
    return [min(1.0, target + error * step * (count - j)) for j in range(count + 1)]


Count = Callable[[Mix], Mapping[str, tuple[float, int]]]
"""Per kind, a mix's right answers and tasks on the certification part, however counted."""


def certify(
    found: Mapping[str, Ladders],
    target: float | None,
    confidence: float,
    count: Count | None = None,
    *,
    per_kind: bool = False,
) -> Certified:
    """Walk the sequence of (target, mix) pairs the selection part orders; see the module's doc.

    With no ``target`` (``auto``), the sequence climbs targets (see :func:`auto_sequence`).
    ``count`` counts a mix's right answers on the certification part; by default, the
    simulation's. ``cascade optimize`` passes a replay of each candidate's written policy
    through the engine (:mod:`cascade.optimize.certify_written`), so what is certified is what
    is written.
    """
    planned = sequence(found, target, confidence)
    return walk(found, planned, confidence, count, per_kind=per_kind)


Pair = tuple[float, Mix]
"""A hypothesis of the sequence: this mix's pass rate reaches this target."""


def sequence(found: Mapping[str, Ladders], target: float | None, confidence: float) -> list[Pair]:
    """The (target, mix) pairs to test in order, from the selection part alone.

    For a given ``target``: the candidates at a few levels above it, safest first. With none,
    :func:`auto_sequence`.
    """
    if target is None:
        return auto_sequence(found, confidence)
    certifying, rates, estimated, full = _selection(found)
    shift = optimism(rates, estimated, target)
    picks = [int(r[-1]) for level in levels(target, certifying)
             if (r := np.flatnonzero(rates - shift >= level - 1e-12)).size]  # fmt: skip
    if full and (not picks or picks[0] != 0):
        picks.insert(0, 0)  # the safest first: the best in sample, when no level picked it
    return [(target, full[p]) for p in dict.fromkeys(picks)]


def auto_sequence(found: Mapping[str, Ladders], confidence: float) -> list[Pair]:
    """``auto``: a climb of targets with the surest mix, then cheaper mixes at the top one.

    The top target is the highest the selection part expects the certification part to
    confirm (:func:`reachable_target`). The sequence first pairs the best mix in sample with
    targets climbing by half a point from 15 points below the top (at least half a point) up
    to it, then tests the cheaper candidates :func:`sequence` orders for the top target, safest
    first. So the walk ends at the top target with the cheapest mix it certifies there, or, if
    the best mix falls short of the top, at the highest target it did certify: ``auto`` comes
    back empty only when even the lowest pair fails, and never states a target of 0.
    """
    certifying, rates, estimated, full = _selection(found)
    if not full:
        return []
    top = reachable_target(rates, estimated, certifying, confidence)
    low = max(0.005, round(top - 0.15, 4))
    steps = max(0, round((top - low) / 0.005))
    climb = [(round(low + 0.005 * step, 4), full[0]) for step in range(steps + 1)]
    return [*climb[:-1], *sequence(found, max(top, 0.005), confidence)]


def _selection(found: Mapping[str, Ladders]) -> tuple[int, Floats, Floats, list[Mix]]:
    """The certification part's size; every mix's in-sample and cross-validated rates."""
    certifying = sum(int(f.sizes[CERTIFY]) for f in found.values())
    selecting = sum(int(f.sizes[list(SELECT)].sum()) for f in found.values())
    full = mixes(found, SELECT)
    rates = np.array([m.right / max(1, selecting) for m in full])
    return certifying, rates, np.array(_cross_validated(found, full)), full


def walk(
    found: Mapping[str, Ladders],
    planned: Sequence[Pair],
    confidence: float,
    count: Count | None = None,
    *,
    per_kind: bool = False,
) -> Certified:
    """Fixed-sequence testing: certify the pairs in order, and stop at the first that fails.

    The target of the outcome is the highest certified (the first planned when none is), and
    its certified mixes are those certified at that target. With ``per_kind``, a pair is
    certified only when every kind's own bound reaches its target (an intersection-union
    test: no share of the error rate is split among the kinds).
    """
    tested: list[Candidate] = []
    passed: list[Candidate] = []
    for target, mix in planned:
        candidate = _candidate(found, mix, confidence, count, target)
        tested.append(candidate)
        bound = min(b for _, b in candidate.kinds.values()) if per_kind else candidate.bound
        if bound < target:
            break
        passed.append(candidate)
    reached = max((c.target for c in passed), default=planned[0][0] if planned else 1.0)
    certified = tuple(c for c in passed if c.target == reached)
    return Certified(reached, confidence, tuple(tested), certified, tuple(planned))


def reachable_target(rates: Floats, estimated: Floats, certifying: int, confidence: float) -> float:
    """The highest target the selection part expects the certification part to confirm.

    The best corrected in-sample rate, less the one-sided margin of a rate measured on the
    certifying tasks and half a standard error more, rounded down to half a point: aimed high,
    for quality first, so that on small suites it is certified about half the time. It is made
    from the selection part alone, so a target set this way keeps the guarantee.

    >>> reachable_target(np.array([0.95, 0.93]), np.array([0.92, 0.92]), 400, 0.9)
    0.905
    """
    if rates.size == 0:
        return 1.0
    best = float(rates[0]) - optimism(rates, estimated, float(rates[0]) - 0.05)
    error = math.sqrt(max(best * (1 - best), 1e-6) / max(1, certifying))
    margin = (float(NormalDist().inv_cdf(confidence)) + 0.5) * error
    return max(0.0, math.floor((best - margin) * 200) / 200)


def optimism(rates: Floats, estimated: Floats, target: float) -> float:
    """How much an in-sample pass rate overstates what choosing at it buys out of fold.

    The median, over the choices that reach the target in sample, of in-sample minus
    cross-validated rate (at least 0): one figure, steadier than any single fold's.

    >>> optimism(np.array([0.95, 0.93, 0.9]), np.array([0.9, 0.91, 0.9]), 0.92)
    0.035
    """
    region = rates >= target - 1e-12
    if not region.any():
        region = np.ones(rates.size, dtype=np.bool_)
    if not region.any():
        return 0.0
    return round(max(0.0, float(np.median(rates[region] - estimated[region]))), 12)


def _cross_validated(found: Mapping[str, Ladders], full: list[Mix]) -> list[float]:
    """For each mix of ``full``, the out-of-fold rate of choosing at its in-sample rate."""
    selecting = sum(int(f.sizes[list(SELECT)].sum()) for f in found.values())
    rates = [m.right / max(1, selecting) for m in full]
    right = np.zeros(len(full))
    for held in SELECT:
        rest = tuple(p for p in SELECT if p != held)
        size = sum(int(f.sizes[list(rest)].sum()) for f in found.values())
        choices = mixes(found, rest)
        reached = np.array([m.right for m in choices], dtype=np.float64)
        for index, rate in enumerate(rates):
            # The cheapest choice that reaches the rate: the last one still at or above it.
            at = max(0, int(np.searchsorted(-reached, -(rate * size - 1e-9), side="right")) - 1)
            right[index] += _score(found, choices[at], (held,))[0] if choices else 0.0
    return list(right / max(1, selecting))


def _candidate(
    found: Mapping[str, Ladders],
    mix: Mix,
    confidence: float,
    count: Count | None,
    target: float,
) -> Candidate:
    s_right, s_total, s_cost = _score(found, mix, SELECT)
    c_right, c_total, c_cost = _score(found, mix, (CERTIFY,))
    simulated = c_right / max(1, c_total)
    if count is None:
        kinds = {
            k: (float(found[k].rights[i, CERTIFY]), int(found[k].sizes[CERTIFY]))
            for k, i in mix.picks.items()
        }
    else:
        kinds = dict(count(mix))
        c_right = sum(r for r, _ in kinds.values())
        c_total = sum(t for _, t in kinds.values())
    return Candidate(
        mix.picks,
        s_right / max(1, s_total),
        c_right / max(1, c_total),
        lower_bound(round(c_right), c_total, confidence),
        (s_cost + c_cost) / max(1, s_total + c_total),
        simulated,
        target,
        {k: (r / max(1, t), lower_bound(round(r), t, confidence)) for k, (r, t) in kinds.items()},
    )


def describe_guarantee(
    target: float, confidence: float, kinds: Sequence[str], *, per_kind: bool = False
) -> str:
    """The guarantee in one sentence, for the policy header and the report."""
    if per_kind and len(kinds) > 1:
        return (
            f"with probability at least {confidence:.0%} over the draw of the training tasks, "
            f"the pass rate on new tasks drawn like them is at least {target:.1%} for each kind "
            f"({', '.join(kinds)}) on its own"
        )
    mix = "" if len(kinds) <= 1 else f" (in the same mix of {', '.join(kinds)})"
    return (
        f"with probability at least {confidence:.0%} over the draw of the training tasks, the "
        f"pass rate on new tasks drawn like them{mix} is at least {target:.1%}"
    )
