"""Every ladder of a task kind, scored at once on each part of the tasks, and the best mixes.

A ladder is zero, one or two gated tiers (see :mod:`cascade.optimize.gates`), then a trusted
last tier: a strong model (one whose own pass rate is within the 95 % interval of the best
model's) whose answer is taken as it is, so the worst case of every ladder is a model that
could do the job alone. A ladder may also have a start-tier router: given each model's chance
of answering each task right (see :mod:`cascade.optimize.routing`) and a threshold, a task
starts at the first tier whose chance reaches it, as a policy's ``[route]`` does.

Gates are simulated once per task; ladders are then scored by array arithmetic on per-part
sums (the right answers and the cost of each ladder on each part of the tasks: the part it is
chosen on, the part it is certified on, ...; see :mod:`cascade.optimize.scoring`). A later
tier that asks a voter the task already has an answer from is refunded that voter's cost, as
the engine reuses the answer.

:func:`frontier` keeps, per kind, the ladders nothing cheaper beats on a part, and
:func:`mixes` finds, by dynamic programming over the count of right answers, the cheapest
combination of one ladder per kind for every reachable overall pass rate.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cascade.errors import ConfigError
from cascade.optimize.gates import Gate, candidate_gates, pareto, simulate
from cascade.optimize.scoring import Stacked, score_ladders
from cascade.optimize.table import Bools, Floats, Ints, KindTable

__all__ = [
    "Ladders",
    "Mix",
    "Parts",
    "Routing",
    "frontier",
    "ladders",
    "mixes",
    "strong_models",
]


@dataclass(frozen=True, slots=True)
class Ladders:
    """Every ladder of one kind, scored per part of its tasks.

    ``tiers[i]`` is (first gate, second gate, last model): gate indices into :attr:`gates`, -1
    for none, and the last tier's model index. ``rights[i, p]`` and ``costs[i, p]`` are ladder
    ``i``'s right answers and cost on part ``p``; ``sizes[p]`` the tasks in part ``p``.
    ``thresholds[i]`` is its router's threshold (0: no router).
    """

    table: KindTable
    gates: tuple[Gate, ...]
    tiers: Ints
    rights: npt.NDArray[np.float32]
    costs: npt.NDArray[np.float32]
    sizes: Ints
    searched: int
    """Gates simulated before the ones that no other beats were kept."""
    p95_s: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    """Per ladder: the p95 of its task latency on the tasks it is chosen on (the selection part;
    recorded calls, one after another)."""
    thresholds: Floats = field(default_factory=lambda: np.zeros(0))
    """Per ladder: its router's threshold, exactly as tried (0: none)."""
    fronts: dict[int, tuple[Ints, Ints, Floats]] = field(default_factory=dict)
    """Frontiers already found, by the parts they were found on."""

    def threshold(self, index: int) -> float:
        """Ladder ``index``'s router threshold; 0 when it has no router."""
        return float(self.thresholds[index]) if self.thresholds.size else 0.0


@dataclass(frozen=True, slots=True)
class Routing:
    """Start-tier routers to try: each model's chance per task, and the thresholds."""

    chances: Floats
    """Per (model, task): the chance the model's answer is right, as the router predicts it."""
    thresholds: Sequence[float]


def strong_models(table: KindTable, use: Bools | None = None) -> list[int]:
    """Models whose pass rate on the ``use`` tasks is within the 95 % interval of the best's."""
    correct = table.correct if use is None else table.correct[:, use]
    rates = correct.mean(axis=1)
    best = float(rates.max())
    spread = 1.96 * math.sqrt(best * (1 - best) / max(1, correct.shape[1]))
    return [m for m, rate in enumerate(rates) if rate >= best - spread - 1e-12]


def ladders(
    table: KindTable,
    parts: Ints,
    *,
    choose_on: Parts = (0,),
    last: Sequence[int] | None = None,
    max_tiers: int = 3,
    any_order: bool = False,
    gates: Sequence[Gate] | None = None,
    max_p95_s: float | None = None,
    no_voters: Collection[int] = (),
    routing: Routing | None = None,
) -> Ladders:
    """Score every ladder of up to ``max_tiers`` tiers on each part of ``table``'s tasks.

    ``parts[t]`` is task ``t``'s part (-1: none). Candidate gates and their thresholds come
    from the parts ``choose_on`` alone, and so do the strong last models when ``last`` is not
    given.
    Tiers go cheapest first (by mean cost per task) unless ``any_order``. With ``gates``, those
    are scored, every one, instead of the candidates the search would try. With ``max_p95_s``,
    only the ladders whose p95 task latency on the ``choose_on`` parts' tasks is within it are
    kept (the certification part never chooses). Models in ``no_voters`` are
    never asked for a second opinion (a batch tier's model: its calls are priced at the batch
    price, and a validator's calls are not batch calls). With ``routing``, each ladder of two
    or more tiers is also scored with a router at each of its thresholds.
    """
    count = int(parts.max()) + 1 if parts.size else 1
    onehot = np.zeros((parts.size, count), dtype=np.float64)
    placed = parts >= 0
    onehot[np.flatnonzero(placed), parts[placed]] = 1.0
    use = np.isin(parts, choose_on)
    tops = list(last) if last is not None else strong_models(table, use)
    candidates = _gates_to_try(table, use, gates, max_tiers, no_voters)
    every = [simulate(table, gate) for gate in candidates]
    kept = pareto(every, use) if gates is None else list(range(len(every)))
    chosen = tuple(candidates[i] for i in kept)
    arrays = [every[i] for i in kept]
    stacked = Stacked.of(chosen, arrays, onehot, table, use)  # latency read where it chooses
    tiers, rights, costs, p95s = score_ladders(table, stacked, tops, max_tiers, any_order, None)
    levels = [np.zeros(sum(len(t) for t in tiers))]
    for threshold in () if routing is None else routing.thresholds:
        assert routing is not None
        skip = (routing.chances[stacked.owner] < threshold).astype(np.float64)
        more = score_ladders(table, stacked, tops, max_tiers, any_order, skip)
        tiers, rights, costs = tiers + more[0], rights + more[1], costs + more[2]
        p95s += more[3]
        levels.append(np.full(sum(len(t) for t in more[0]), threshold, dtype=np.float64))
    p95 = np.concatenate(p95s).astype(np.float32)
    keep = _fast_enough(p95, max_p95_s, table.kind, any_last=last is not None)
    return Ladders(
        table,
        chosen,
        np.concatenate(tiers).astype(np.intp)[keep],
        np.concatenate(rights).astype(np.float32)[keep],
        np.concatenate(costs).astype(np.float32)[keep],
        onehot.sum(axis=0).astype(np.intp),
        len(candidates),
        p95[keep],
        np.concatenate(levels)[keep],
    )


def _gates_to_try(
    table: KindTable,
    use: Bools,
    gates: Sequence[Gate] | None,
    max_tiers: int,
    no_voters: Collection[int],
) -> list[Gate]:
    """The gates given, or the candidates the search tries (none for one-tier ladders).

    A candidate that would ask a model in ``no_voters`` for its opinion is left out.
    """
    if gates is not None:
        return list(gates)
    if max_tiers <= 1:
        return []
    return [g for g in candidate_gates(table, use) if not set(g.voters) & set(no_voters)]


def _fast_enough(
    p95: npt.NDArray[np.float32], max_p95_s: float | None, kind: str, *, any_last: bool
) -> Bools:
    """Which ladders' p95 is within ``max_p95_s`` (all, without one); none is an error."""
    keep = np.ones(p95.size, dtype=np.bool_) if max_p95_s is None else p95 <= max_p95_s
    if not keep.any():
        raise ConfigError(
            f"--max-p95-latency {max_p95_s:g}: no ladder of kind {kind!r} is that fast on "
            f"the training tasks; the fastest has a p95 of {float(p95.min()):.3g} s"
            + (
                ""
                if any_last
                else " (with --strong-last-tier, ladders end at a model about as good as the "
                "best one)"
            )
        )
    return keep


Parts = tuple[int, ...]
"""A set of parts of the tasks, whose sums are taken together."""


def frontier(found: Ladders, parts: Parts) -> tuple[Ints, Ints, Floats]:
    """The ladders nothing cheaper beats on ``parts``: (index, right answers, cost)."""
    key = hash(parts)
    cached = found.fronts.get(key)
    if cached is not None:
        return cached
    columns = list(parts)
    right = np.rint(found.rights[:, columns].sum(axis=1, dtype=np.float64)).astype(np.intp)
    cost = found.costs[:, columns].sum(axis=1, dtype=np.float64)
    sizes = (found.tiers[:, :2] >= 0).sum(axis=1)
    routed = found.thresholds > 0 if found.thresholds.size else np.zeros(right.size, np.bool_)
    order = np.lexsort((routed, sizes, -right, cost))  # cheapest, best, fewest tiers, no router
    best_so_far = np.maximum.accumulate(right[order])
    keep = np.ones(order.size, dtype=np.bool_)
    keep[1:] = best_so_far[1:] > best_so_far[:-1]
    picked = order[keep]
    found.fronts[key] = (picked, right[picked], cost[picked])
    return found.fronts[key]


@dataclass(frozen=True, slots=True)
class Mix:
    """One ladder per kind, with its right answers and cost on the part it was chosen on."""

    picks: Mapping[str, int]
    right: int
    cost: float


def mixes(found: Mapping[str, Ladders], parts: Parts) -> list[Mix]:
    """For each reachable count of right answers on ``parts``, the cheapest mix that reaches it.

    Returned from the most right answers down; a mix that a cheaper one with as many right
    answers beats is left out, so costs fall along the list.
    """
    kinds = list(found)
    fronts = [frontier(found[k], parts) for k in kinds]
    total = int(sum(found[k].sizes[list(parts)].sum() for k in kinds))
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
    found_mixes: list[Mix] = []
    cheapest = np.inf
    for score in range(total, -1, -1):
        if not np.isfinite(best[score]) or best[score] >= cheapest:
            continue
        cheapest = float(best[score])
        picks: dict[str, int] = {}
        at = score
        for kind, (index, right, _), pick in zip(
            reversed(kinds), reversed(fronts), reversed(steps), strict=True
        ):
            j = int(pick[at])
            picks[kind] = int(index[j])
            at -= int(right[j])
        found_mixes.append(Mix(dict(sorted(picks.items())), score, cheapest))
    return found_mixes
