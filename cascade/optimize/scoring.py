"""Every ladder's right answers, cost and p95 latency per part, by array arithmetic.

The gates' per-task arrays (:func:`cascade.optimize.gates.simulate`) are stacked once; a
ladder's figures on each part are then sums over the parts' one-hot matrix. A two-tier ladder
passes on what its gate does not accept; a three-tier ladder's second tier is refunded a voter
the first tier already asked. Routed ladders (a start-tier router at a threshold) send the
tasks whose chance at a tier is below it straight past that tier, as
:func:`cascade.route.router.start_at` does at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cascade.optimize.gates import Gate, GateArrays
from cascade.optimize.table import Bools, Floats, Ints, KindTable

__all__ = ["Stacked", "score_ladders"]


@dataclass(frozen=True, slots=True)
class Stacked:
    """Every gate's per-task arrays, stacked (gates by tasks), and the parts' one-hot matrix."""

    accept: Floats
    paid: Floats
    kept: Floats
    asked: Floats
    voter_paid: Floats
    voting: Ints
    owner: Ints
    onehot: Floats
    seconds: Floats
    use: Bools
    """The tasks latency quantiles are taken on."""

    @classmethod
    def of(
        cls,
        gates: tuple[Gate, ...],
        arrays: list[GateArrays],
        onehot: Floats,
        table: KindTable,
        use: Bools,
    ) -> Stacked:
        """Stack the arrays of ``gates``; ``use``: the tasks latency quantiles are taken on."""
        shape = (len(gates), onehot.shape[0])
        zero = np.zeros(shape[1])
        return cls(
            np.array([a.accepted for a in arrays], dtype=np.float64).reshape(shape),
            np.array([a.cost for a in arrays], dtype=np.float64).reshape(shape),
            np.array([a.right for a in arrays], dtype=np.float64).reshape(shape),
            np.array([a.asked for a in arrays], dtype=np.float64),
            np.array([a.paid for a in arrays], dtype=np.float64),
            np.flatnonzero([bool(g.voters) for g in gates]),
            np.array([g.model for g in gates], dtype=np.intp),
            onehot,
            np.array(
                [a.seconds if a.seconds is not None else zero for a in arrays], dtype=np.float64
            ).reshape(shape),
            use,
        )

    def p95(self, seconds: Floats) -> Floats:
        """Per row of ``seconds`` (ladders by tasks): the p95 over the :attr:`use` tasks."""
        if not self.use.any():
            return np.zeros(seconds.shape[0])
        return np.asarray(np.quantile(seconds[:, self.use], 0.95, axis=1), dtype=np.float64)


def score_ladders(
    table: KindTable,
    stacked: Stacked,
    tops: Sequence[int],
    max_tiers: int,
    any_order: bool,
    skip: Floats | None,
) -> tuple[list[Ints], list[Floats], list[Floats], list[Floats]]:
    """Every ladder's tiers, and its right answers, cost and p95 per part.

    With ``skip`` (per gate and task: 1 where the router skips the gate's model), the routed
    ladders instead: a task skips the first tier where its model is skipped, and then the
    second too where that one's is; a ladder no task starts past is left out (the unrouted one
    is the same), as is the top alone.
    """
    found = _Found()
    price = table.cost.mean(axis=1)
    for top in tops:
        alone = _Inner(table.correct[top].astype(np.float64), table.cost[top], table.seconds[top])
        if skip is None:
            found.add_rows(np.array([[-1, -1, top]], dtype=np.intp), alone.pick(None), stacked)
        if max_tiers < 2 or not stacked.owner.size:
            continue
        owner = stacked.owner
        usable = owner != top
        if not any_order:
            usable &= price[owner] <= price[top]
        inner = _Inner.then(stacked, alone)
        start = inner if skip is None else inner.skipped(skip, alone)
        index = np.flatnonzero(usable if skip is None else usable & skip.any(axis=1))
        two = np.column_stack([index, np.full(index.size, -1), np.full(index.size, top)])
        found.add_rows(two, start.pick(index), stacked)
        if max_tiers < 3:
            continue
        for first in index:
            later = (owner != owner[first]) & (any_order | (price[owner] >= price[owner[first]]))
            second = np.flatnonzero(usable & later)
            if second.size:
                rights, costs, waited = _routed_three(
                    stacked, int(first), second, inner, start, skip
                )
                found.add(np.column_stack([np.full(second.size, first), second,
                                           np.full(second.size, top)]),
                          rights, costs, stacked.p95(waited))  # fmt: skip
    return found.tiers, found.rights, found.costs, found.p95s


@dataclass(slots=True)
class _Found:
    """The ladders scored so far: their tiers, and per part their right answers, cost and p95."""

    tiers: list[Ints] = field(default_factory=list)
    rights: list[Floats] = field(default_factory=list)
    costs: list[Floats] = field(default_factory=list)
    p95s: list[Floats] = field(default_factory=list)

    def add(self, tiers: Ints, rights: Floats, costs: Floats, p95: Floats) -> None:
        """A block of ladders."""
        self.tiers.append(tiers)
        self.rights.append(rights)
        self.costs.append(costs)
        self.p95s.append(p95)

    def add_rows(self, tiers: Ints, rows: _Inner, stacked: Stacked) -> None:
        """A block of ladders from their per-task figures (a row each)."""
        self.add(tiers, rows.right @ stacked.onehot, rows.cost @ stacked.onehot,
                 stacked.p95(rows.seconds))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Inner:
    """Per task (and gate): a ladder's right answers, cost and seconds."""

    right: Floats
    cost: Floats
    seconds: Floats

    @classmethod
    def then(cls, stacked: Stacked, top: _Inner) -> _Inner:
        """Every gate's two-tier ladder: the gate, then ``top`` on what it passes on."""
        passed_on = 1.0 - stacked.accept
        return cls(stacked.kept + passed_on * top.right, stacked.paid + passed_on * top.cost,
                   stacked.seconds + passed_on * top.seconds)  # fmt: skip

    def pick(self, rows: Any) -> _Inner:
        """Some of its rows (``None``: the one-row ladder of 1-D figures)."""
        return _Inner(self.right[rows], self.cost[rows], self.seconds[rows])

    def skipped(self, skip: Floats, top: _Inner) -> _Inner:
        """The same ladders, the tasks in ``skip`` sent straight to ``top``."""
        go = 1.0 - skip
        return _Inner(go * self.right + skip * top.right, go * self.cost + skip * top.cost,
                      go * self.seconds + skip * top.seconds)  # fmt: skip


def _routed_three(
    stacked: Stacked,
    first: int,
    second: Ints,
    inner: _Inner,
    start: _Inner,
    skip: Floats | None,
) -> tuple[Floats, Floats, Floats]:
    """``first`` then each of ``second`` then the top: right answers and cost per part, seconds.

    Routed (``skip``), the tasks that skip ``first`` start at the second as ``start`` says.
    """
    go = 1.0 if skip is None else 1.0 - skip[first]
    rights, costs = _three_tiers(stacked, first, second, inner, go)
    # A voter's answer the first tier already has is not waited for again; counting it is the
    # slower side, so the bound still holds.
    passed_on = 1.0 - stacked.accept[first]
    waited = go * (stacked.seconds[first] + passed_on * inner.seconds[second])
    if skip is not None:
        jumped = skip[first][:, None] * stacked.onehot  # the tasks that start at the second
        rights = rights + start.right[second] @ jumped
        costs = costs + start.cost[second] @ jumped
        waited = waited + skip[first] * start.seconds[second]
    return rights, costs, waited


def _three_tiers(
    stacked: Stacked, first: int, second: Ints, inner: _Inner, go: Floats | float
) -> tuple[Floats, Floats]:
    """Per part, the right answers and cost of ``first`` then each of ``second`` then the top.

    Only over the tasks ``go`` starts at ``first`` (all, unrouted).
    """
    weights = (go * (1.0 - stacked.accept[first]))[:, None] * stacked.onehot  # passed on
    cost_second = inner.cost[second]
    refunded = np.intersect1d(second, stacked.voting, assume_unique=True)
    if refunded.size:
        # A voter the first tier already asked (or its own model) is not paid again.
        refund = np.einsum("smt,mt->st", stacked.voter_paid[refunded], stacked.asked[first])
        cost_second = cost_second.copy()
        cost_second[np.searchsorted(second, refunded)] -= refund
    rights = (go * stacked.kept[first]) @ stacked.onehot + inner.right[second] @ weights
    costs = (go * stacked.paid[first]) @ stacked.onehot + cost_second @ weights
    return rights, costs
