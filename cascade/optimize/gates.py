"""Gates: what a tier's answer must pass before it is accepted, simulated as the engine runs it.

A gate is a model plus its checks, all blind to gold:

- any subset of the kind's free or sandboxed checks (format, compiles, tests, a user's own);
- a confidence threshold (the tier then pays for the confidence: ``cost_usd`` where a dataset
  records an answer-only cost apart);
- an opinion: agreement with one other model, a vote of two others (two of three answers must
  agree, and the majority's answer is delivered), or self-consistency (more samples of the
  same model, two of them agreeing with the answer or with each other);
- a re-ask budget, served from the recorded ``alt_outputs``.

Each check is a conjunction: the engine runs the free checks first and asks for an opinion only
when they pass, and so does :func:`simulate`. A voter's answer that the task already has is
reused at no cost (the engine keeps every answer of the task), which :func:`simulate` reports
in :attr:`GateArrays.asked` and :attr:`GateArrays.paid` so that a later tier can be refunded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from cascade.optimize.table import Bools, Floats, KindTable

__all__ = ["Gate", "GateArrays", "candidate_gates", "pareto", "simulate"]

_QUANTILES = tuple(q / 10 for q in range(1, 10))
_VOTE_POOL = 4
"""Votes are drawn from the cheapest few other models: dear voters never pay for themselves."""


@dataclass(frozen=True, slots=True)
class Gate:
    """A model and what its answer must pass (see the module's doc)."""

    model: int
    checks: int = 0
    """A bit per check of the table, in its order."""
    threshold: float | None = None
    voters: tuple[int, ...] = ()
    """One model: agreement; two: a vote, two of three, asked in this order."""
    samples: int = 0
    """More samples of the model itself: two of the answers must agree (self-consistency)."""
    reasks: int = 0


@dataclass(frozen=True, slots=True)
class GateArrays:
    """What a gated tier does to each task: over the table's tasks (columns)."""

    accepted: Bools
    right: Bools
    """Whether the answer it accepted is right (False where it accepted none)."""
    cost: Floats
    asked: Bools
    """``asked[m, t]``: the task now has model ``m``'s first answer (the tier's own, a voter's)."""
    paid: Floats
    """``paid[m, t]``: what the tier paid to ask model ``m`` as a voter."""
    seconds: Floats | None = None
    """Per task: the recorded seconds of the tier's calls, one after another (its asks, then
    the voters and samples it asked); a voter's answer the task already had takes none."""


def simulate(table: KindTable, gate: Gate) -> GateArrays:
    """Run ``gate`` on every task of ``table``, as the engine would."""
    count = len(table.task_ids)
    m = gate.model
    asking = np.ones(count, dtype=np.bool_)
    accepted = np.zeros(count, dtype=np.bool_)
    right = np.zeros(count, dtype=np.bool_)
    cost = np.zeros(count, dtype=np.float64)
    asked = np.zeros((len(table.models), count), dtype=np.bool_)
    asked[m] = True
    paid = np.zeros((len(table.models), count), dtype=np.float64)
    state = _State(table, gate, asked, paid, np.zeros(count), np.zeros(count))
    seconds = table.seconds
    for slot in table.turns[: gate.reasks + 1]:
        state.seconds += asking * seconds[m]
        ok = asking.copy()
        for check in _bits(gate.checks):
            ok &= slot.passes[check, m]
        if gate.threshold is not None:
            scores = slot.confidence[m]
            ok &= ~np.isnan(scores) & (np.nan_to_num(scores, nan=-np.inf) >= gate.threshold)
            cost += asking * slot.cost_confidence[m]
        else:
            cost += asking * slot.cost[m]
        passed, good = state.opinion(ok, slot.answer[m], slot.correct[m])
        right |= passed & good
        accepted |= passed
        asking &= ~passed
    total = cost + paid.sum(axis=0) + state.samples
    return GateArrays(accepted, right, total, asked, paid, state.seconds)


@dataclass(slots=True)
class _State:
    """The answers a task has gathered so far in one gate, and what they cost."""

    table: KindTable
    gate: Gate
    asked: Bools
    paid: Floats
    samples: Floats
    """What the extra samples of a self-consistency check cost (never reused by other tiers)."""
    seconds: Floats
    """The recorded seconds of the tier's calls so far, per task."""

    def opinion(self, ok: Bools, own: np.ndarray, own_right: Bools) -> tuple[Bools, Bools]:
        """Which tasks pass the opinion after the free checks ``ok``; is their answer right."""
        gate = self.gate
        if gate.samples:
            return self._self_consistency(ok, own, own_right)
        if not gate.voters:
            return ok, own_right
        first = self.table.turns[0]
        one = gate.voters[0]
        self._ask(one, ok)
        agreed = ok & (own >= 0) & (own == first.answer[one])
        if len(gate.voters) == 1:
            return agreed, own_right
        two = gate.voters[1]
        other = first.answer[one]
        more = ok & ~agreed & ((own >= 0) | (other >= 0))
        self._ask(two, more)
        with_own = more & (own >= 0) & (own == first.answer[two])
        without = more & ~with_own & (other >= 0) & (other == first.answer[two])
        good = np.where(without, first.correct[one], own_right)
        return agreed | with_own | without, good

    def _ask(self, voter: int, where: Bools) -> None:
        """Ask ``voter`` on the tasks ``where`` that do not have its answer yet."""
        new = where & ~self.asked[voter]
        self.paid[voter] += new * self.table.turns[0].cost[voter]
        self.seconds += new * self.table.seconds[voter]
        self.asked[voter] |= where

    def _self_consistency(
        self, ok: Bools, own: np.ndarray, own_right: Bools
    ) -> tuple[Bools, Bools]:
        m, samples = self.gate.model, self.table.samples
        first = samples[0]
        self.samples += ok * first.cost[m]
        self.seconds += ok * self.table.seconds[m]
        agreed = ok & (own >= 0) & (own == first.answer[m])
        if self.gate.samples == 1:
            return agreed, own_right
        second = samples[1]
        other = first.answer[m]
        more = ok & ~agreed & ((own >= 0) | (other >= 0))
        self.samples += more * second.cost[m]
        self.seconds += more * self.table.seconds[m]
        with_own = more & (own >= 0) & (own == second.answer[m])
        without = more & ~with_own & (other >= 0) & (other == second.answer[m])
        good = np.where(without, first.correct[m], own_right)
        return agreed | with_own | without, good


def _bits(mask: int) -> Iterator[int]:
    index = 0
    while mask:
        if mask & 1:
            yield index
        mask >>= 1
        index += 1


def candidate_gates(table: KindTable, use: Bools) -> list[Gate]:
    """Every gate worth trying, with thresholds at deciles of the ``use`` tasks' confidence.

    Each comes with every re-ask budget the model's recorded answers can serve, except a
    threshold on re-asked answers that carry no confidence, which could never pass.
    """
    checks = len(table.checks)
    masks = list(range(1 << checks))
    if checks > 3:  # every subset would be too many: none, each alone, all
        masks = [0, *(1 << c for c in range(checks)), (1 << checks) - 1]
    price = table.cost.mean(axis=1)
    gates: list[Gate] = []
    for model in range(len(table.models)):
        scores = table.turns[0].confidence[model][use]
        known = scores[~np.isnan(scores)]
        thresholds: list[float | None] = [None]
        if known.size:
            thresholds += sorted({float(f"{v:.4g}") for v in np.quantile(known, _QUANTILES)})
        for mask, threshold, (voters, samples) in itertools.product(
            masks, thresholds, _opinions(table, model, price)
        ):
            if mask or threshold is not None or voters or samples:
                gates.append(Gate(model, mask, threshold, voters, samples))
    unscored = [
        len(table.turns) < 2 or np.isnan(table.turns[1].confidence[m]).all()
        for m in range(len(table.models))
    ]
    gates += [
        replace(gate, reasks=r)
        for gate in gates
        if not gate.samples and not (gate.threshold is not None and unscored[gate.model])
        for r in range(1, int(table.reasks[gate.model]) + 1)
    ]
    return gates


def _opinions(table: KindTable, model: int, price: Floats) -> list[tuple[tuple[int, ...], int]]:
    """(voters, samples) pairs: none, each agreement, votes of cheap pairs, self-consistency."""
    found: list[tuple[tuple[int, ...], int]] = [((), 0)]
    if not table.opinions:
        return found
    others = [p for p in np.argsort(price, kind="stable") if p != model]
    found += [((int(p),), 0) for p in others]
    pool = [int(p) for p in others[:_VOTE_POOL]]
    found += [((a, b), 0) for a, b in itertools.combinations(pool, 2)]
    found += [((), s) for s in range(1, len(table.samples) + 1)]
    return found


def pareto(arrays: list[GateArrays], use: Bools) -> list[int]:
    """The gates no other beats on ``use``: as cheap, as few wrong accepts, as many accepts."""
    if not arrays:
        return []
    cost = np.array([a.cost[use].sum() for a in arrays])
    accepted = np.array([a.accepted[use].sum() for a in arrays], dtype=np.float64)
    wrong = accepted - np.array([a.right[use].sum() for a in arrays], dtype=np.float64)
    keep = []
    for index in range(len(arrays)):
        no_worse = (cost <= cost[index]) & (wrong <= wrong[index]) & (accepted >= accepted[index])
        better = (cost < cost[index]) | (wrong < wrong[index]) | (accepted > accepted[index])
        if not (no_worse & better).any():
            keep.append(index)
    return keep
