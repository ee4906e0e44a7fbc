"""Simulate every ladder of a task kind at once, and choose the cheapest mix that is good enough.

A ladder is one or two gated tiers, then a trusted last tier. A gated tier is a model plus its
gate: the kind's answer-format check (or not), then nothing more, a confidence threshold, or a
second model's agreement; and its re-ask budget, where the dataset recorded other answers of
the model to serve re-asks with (``alt_outputs``). The last tier is a strong model (one whose
own pass rate is within the 95 % interval of the best model's) whose answer is taken as it is,
so the worst case of every ladder is a model that could do the job alone.

All ladders are scored by array arithmetic on per-fold sums: the right answers and the cost of
each ladder on each fold of the training split. From those sums:

- :func:`choose` takes, for each kind, the frontier of its ladders (nothing cheaper is as good)
  and finds the cheapest combination of one ladder per kind whose overall pass rate reaches the
  target, by dynamic programming over the count of right answers;
- :func:`cross_validate` makes that choice on all folds but one and checks it on the one left
  out, for each fold in turn, which gives the pass rate the choice really buys out of sample;
- :func:`calibrate` raises the in-sample target until that out-of-fold pass rate reaches the
  user's target. The raise is the margin the final choice, made on all folds, must clear.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from cascade.optimize.table import Bools, Floats, KindTable

__all__ = [
    "Calibration",
    "Choice",
    "Gate",
    "Ladders",
    "calibrate",
    "choose",
    "cross_validate",
    "evaluate",
    "ladders",
    "strong_models",
]

Ints = npt.NDArray[np.intp]
_QUANTILES = tuple(q / 10 for q in range(1, 10))


@dataclass(frozen=True, slots=True)
class Gate:
    """A model and what its answer must pass before it is accepted."""

    model: int
    format: bool
    threshold: float | None = None
    partner: int | None = None
    reasks: int = 0
    """How many times the model is asked again, with the checks' feedback, before escalating."""


@dataclass(frozen=True, slots=True)
class Ladders:
    """Every ladder of one kind, scored per fold of the training split.

    ``tiers[i]`` is (first gate, second gate, last model): gate indices into :attr:`gates`, -1
    for none, and the last tier's model index.
    """

    table: KindTable
    gates: tuple[Gate, ...]
    tiers: Ints
    rights: npt.NDArray[np.float32]
    costs: npt.NDArray[np.float32]
    fold_sizes: Ints
    frontiers: dict[bytes, tuple[Ints, Ints, Floats]] = field(default_factory=dict)
    """Frontiers already found, by the folds they were found on."""


def strong_models(table: KindTable) -> list[int]:
    """Models whose pass rate is within the 95 % interval of the best model's."""
    rates = table.correct.mean(axis=1)
    best = float(rates.max())
    spread = 1.96 * math.sqrt(best * (1 - best) / max(1, table.correct.shape[1]))
    return [m for m, rate in enumerate(rates) if rate >= best - spread - 1e-12]


def _gates(table: KindTable) -> list[Gate]:
    """Every gate worth trying: a format check alone, thresholds at deciles, agreements.

    Each comes with every re-ask budget the model's recorded answers can serve, except a
    threshold on re-asked answers that carry no confidence, which could never pass.
    """
    formats = (False, True) if table.format_ok is not None else (False,)
    gates: list[Gate] = []
    for model in range(len(table.models)):
        scores = table.confidence[model]
        known = scores[~np.isnan(scores)]
        thresholds = (
            sorted({float(f"{v:.4g}") for v in np.quantile(known, _QUANTILES)})
            if known.size
            else []
        )
        for checked in formats:
            if checked:
                gates.append(Gate(model, True))
            gates += [Gate(model, checked, threshold=t) for t in thresholds]
            gates += [
                Gate(model, checked, partner=p) for p in range(len(table.models)) if p != model
            ]
    budgets = [range(1, int(table.reasks[m]) + 1) for m in range(len(table.models))]
    unscored = [len(table.turns) < 2 or np.isnan(table.turns[1].confidence[m]).all()
                for m in range(len(table.models))]  # fmt: skip
    gates += [
        replace(gate, reasks=r)
        for gate in gates
        if not (gate.threshold is not None and unscored[gate.model])
        for r in budgets[gate.model]
    ]
    return gates


def _gate_arrays(table: KindTable, gate: Gate) -> tuple[Bools, Floats, Bools]:
    """What a gated tier does to each task, as the engine runs it.

    Returns whether some ask's answer passed, what the tier cost (each ask, plus the partner's
    call on the asks whose free checks passed: the partner is asked only after them), and
    whether the answer it accepted is right.
    """
    count = table.cost.shape[1]
    asking = np.ones(count, dtype=np.bool_)
    accepted = np.zeros(count, dtype=np.bool_)
    right = np.zeros(count, dtype=np.bool_)
    cost = np.zeros(count, dtype=np.float64)
    for answers in table.turns[: gate.reasks + 1]:
        passed = asking.copy()
        if gate.format:
            assert answers.format_ok is not None
            passed &= answers.format_ok[gate.model]
        if gate.threshold is not None:
            scores = answers.confidence[gate.model]
            passed &= ~np.isnan(scores) & (np.nan_to_num(scores, nan=-np.inf) >= gate.threshold)
        cost += asking * table.cost[gate.model]
        if gate.partner is not None:
            cost += passed * table.cost[gate.partner]
            passed &= answers.agree[gate.model, gate.partner]
        right |= passed & answers.correct[gate.model]
        accepted |= passed
        asking &= ~passed
    return accepted, cost, right


def ladders(
    table: KindTable,
    folds: Ints,
    *,
    last: Sequence[int],
    max_tiers: int = 3,
    any_order: bool = False,
) -> Ladders:
    """Score every ladder of up to ``max_tiers`` tiers ending at one of ``last``, per fold.

    Tiers go cheapest first (by mean cost per task) unless ``any_order``.
    """
    count = int(folds.max()) + 1 if folds.size else 1
    onehot = np.zeros((folds.size, count), dtype=np.float64)
    onehot[np.arange(folds.size), folds] = 1.0
    gates = _gates(table) if max_tiers > 1 else []
    owner = np.array([g.model for g in gates], dtype=np.intp)
    arrays = [_gate_arrays(table, g) for g in gates]
    shape = (len(gates), folds.size)
    accept = np.array([a for a, _, _ in arrays], dtype=np.float64).reshape(shape)
    paid = np.array([c for _, c, _ in arrays], dtype=np.float64).reshape(shape)
    kept = np.array([r for _, _, r in arrays], dtype=np.float64).reshape(shape)
    kept_r = kept @ onehot  # right answers a gated tier delivers itself, per fold
    paid_f = paid @ onehot
    tiers: list[Ints] = []
    rights: list[Floats] = []
    costs: list[Floats] = []
    price = table.cost.mean(axis=1)
    for top in last:
        r_top = table.correct[top].astype(np.float64)
        c_top = table.cost[top]
        tiers.append(np.array([[-1, -1, top]], dtype=np.intp))
        rights.append((r_top @ onehot)[None, :])
        costs.append((c_top @ onehot)[None, :])
        if max_tiers < 2:
            continue
        usable = owner != top
        if not any_order:
            usable &= price[owner] <= price[top]
        passed_on = 1.0 - accept  # (K, T): the task goes on to the next tier
        inner_r = kept + passed_on * r_top  # two-tier ladders, per task
        inner_c = paid + passed_on * c_top
        index = np.flatnonzero(usable)
        tiers.append(np.column_stack([index, np.full(index.size, -1), np.full(index.size, top)]))
        rights.append((inner_r @ onehot)[index])
        costs.append((inner_c @ onehot)[index])
        if max_tiers < 3:
            continue
        for first in index:
            weights = passed_on[first][:, None] * onehot  # the tasks the first tier passes on
            later = (owner != owner[first]) & (any_order | (price[owner] >= price[owner[first]]))
            second = np.flatnonzero(usable & later)
            tiers.append(
                np.column_stack([np.full(second.size, first), second, np.full(second.size, top)])
            )
            rights.append(kept_r[first] + inner_r[second] @ weights)
            costs.append(paid_f[first] + inner_c[second] @ weights)
    return Ladders(
        table,
        tuple(gates),
        np.concatenate(tiers).astype(np.intp),
        np.concatenate(rights).astype(np.float32),
        np.concatenate(costs).astype(np.float32),
        np.bincount(folds, minlength=count).astype(np.intp),
    )


@dataclass(frozen=True, slots=True)
class Choice:
    """One ladder per kind, with its pass rate and cost per task on the folds it was chosen on."""

    picks: Mapping[str, int]
    pass_rate: float
    cost_per_task: float


def _frontier(found: Ladders, use: Bools) -> tuple[Ints, Ints, Floats]:
    """The ladders nothing cheaper beats on ``use`` folds: (index, right answers, cost)."""
    key = use.tobytes()
    cached = found.frontiers.get(key)
    if cached is None:
        cached = found.frontiers[key] = _new_frontier(found, use)
    return cached


def _new_frontier(found: Ladders, use: Bools) -> tuple[Ints, Ints, Floats]:
    right = np.rint(found.rights[:, use].sum(axis=1, dtype=np.float64)).astype(np.intp)
    cost = found.costs[:, use].sum(axis=1, dtype=np.float64)
    asks = np.array([1 + g.reasks for g in found.gates] + [0], dtype=np.intp)
    sizes = 1 + asks[found.tiers[:, 0]] + asks[found.tiers[:, 1]]  # index -1: no tier
    order = np.lexsort((sizes, -right, cost))  # cheapest, then best, then fewest asks
    best_so_far = np.maximum.accumulate(right[order])
    keep = np.ones(order.size, dtype=np.bool_)
    keep[1:] = best_so_far[1:] > best_so_far[:-1]
    picked = order[keep]
    return picked, right[picked], cost[picked]


def choose(found: Mapping[str, Ladders], use: Bools, target: float) -> Choice | None:
    """The cheapest ladder per kind whose overall pass rate on ``use`` folds reaches ``target``."""
    kinds = list(found)
    fronts = [_frontier(found[k], use) for k in kinds]
    total = int(sum(found[k].fold_sizes[use].sum() for k in kinds))
    if total == 0:
        return None
    best = np.full(total + 1, np.inf)
    best[0] = 0.0
    steps: list[Ints] = []
    for _, right, cost in fronts:
        nxt = np.full(total + 1, np.inf)
        pick = np.full(total + 1, -1, dtype=np.intp)
        for j in range(right.size):
            shifted = np.full(total + 1, np.inf)
            shifted[right[j] :] = best[: total + 1 - right[j]] + cost[j]
            better = shifted < nxt
            nxt[better], pick[better] = shifted[better], j
        best = nxt
        steps.append(pick)
    need = math.ceil(target * total - 1e-9)
    reachable = np.flatnonzero(np.isfinite(best[need:]))
    if reachable.size == 0:
        return None
    score = need + int(reachable[np.argmin(best[need:][reachable])])
    picks: dict[str, int] = {}
    at = score
    for kind, (index, right, _), pick in zip(
        reversed(kinds), reversed(fronts), reversed(steps), strict=True
    ):
        j = int(pick[at])
        picks[kind] = int(index[j])
        at -= int(right[j])
    return Choice(picks, score / total, float(best[score]) / total)


def evaluate(found: Mapping[str, Ladders], picks: Mapping[str, int], use: Bools) -> Choice:
    """The pass rate and cost per task of chosen ladders on ``use`` folds."""
    right = sum(float(found[k].rights[i, use].sum()) for k, i in picks.items())
    cost = sum(float(found[k].costs[i, use].sum()) for k, i in picks.items())
    total = sum(int(found[k].fold_sizes[use].sum()) for k in picks)
    return Choice(picks, right / max(1, total), cost / max(1, total))


@dataclass(frozen=True, slots=True)
class Calibration:
    """What nested cross-validation found: the in-sample target to choose at, and why."""

    wanted: float
    """The user's target."""
    target: float
    """The in-sample pass rate the choice must reach: the user's target plus the margin."""
    out_of_fold: float | None
    """The pooled out-of-fold pass rate of choosing at :attr:`target`, or ``None`` if no
    choice reached it on every fold."""
    drops: tuple[float, ...]
    """Per fold: the in-sample pass rate of the choice minus its out-of-fold one."""

    @property
    def margin(self) -> float:
        """How far above the user's target the choice is made."""
        return self.target - self.wanted


def cross_validate(
    found: Mapping[str, Ladders], target: float
) -> tuple[float | None, tuple[float, ...]]:
    """Choose at ``target`` on all folds but one, check on that one, for each fold in turn.

    Returns the pooled out-of-fold pass rate (``None`` when some fold's choice cannot reach
    the target) and each fold's drop from in-sample to out-of-fold pass rate.
    """
    folds = next(iter(found.values())).fold_sizes.size
    right = total = 0.0
    drops: list[float] = []
    for held in range(folds):
        use = np.arange(folds) != held
        choice = choose(found, use, target)
        if choice is None:
            return None, tuple(drops)
        out = evaluate(found, choice.picks, ~use)
        size = sum(int(found[k].fold_sizes[~use].sum()) for k in found)
        right, total = right + out.pass_rate * size, total + size
        drops.append(choice.pass_rate - out.pass_rate)
    return (right / total if total else None), tuple(drops)


def calibrate(
    draws: Sequence[Mapping[str, Ladders]], target: float, *, step: float = 0.0025
) -> Calibration:
    """The lowest in-sample target whose choices pass ``target`` out of fold.

    ``draws`` are the same ladders scored on different random fold assignments (repeated
    cross-validation), which steadies the estimate. In-sample targets are tried upwards from
    ``target`` in steps of ``step``; the first whose out-of-fold pass rate, pooled over every
    fold of every draw, reaches ``target`` wins. When none does, the last one that every fold
    could reach is returned, so the caller can say how far short it falls.
    """
    tried = target
    last = Calibration(target, target, None, ())
    while tried <= 1.0 + 1e-9:
        rates: list[float | None] = []
        drops: list[float] = []
        for found in draws:
            rate, drop = cross_validate(found, tried)
            rates.append(rate)
            drops += drop
        if any(rate is None for rate in rates):
            break
        pooled = float(np.mean([r for r in rates if r is not None]))
        last = Calibration(target, tried, pooled, tuple(drops))
        if pooled >= target - 1e-12:
            break
        tried = round(tried + step, 6)
    return last
