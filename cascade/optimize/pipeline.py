"""``cascade optimize`` as a library: choose ladders with a stated guarantee, check them held out.

The steps, in order:

1. split the dataset: ``holdout`` of each kind is set aside and never looked at until the end;
2. judge every recorded answer of the training split once (:mod:`cascade.optimize.table`) and
   score every ladder on both parts of the training split (:mod:`cascade.optimize.search`);
3. order the cheapest mixes on the selection part and certify them in turn on the other part
   (:mod:`cascade.optimize.certify`): the cheapest certified mix is the choice, and it carries
   the guarantee stated there;
4. the chosen ladders are written as policy files (with their start-tier router, where the
   choice has one: :mod:`cascade.optimize.routing`), which are then loaded like any policy and
   replayed through the real engine, on the training split (where they must match the
   simulation) and on the held-out split.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade.bench.batch import batch_rates, priced_as_batch
from cascade.bench.dataset import Dataset, kind_stream, load_dataset, split_ids
from cascade.bench.suite import select_kinds
from cascade.engine import first_messages
from cascade.errors import ConfigError
from cascade.optimize.certify import (
    CERTIFY,
    FOLDS,
    SELECT,
    Certified,
    certify,
    describe_guarantee,
)
from cascade.optimize.checks import UserPolicy, user_policy
from cascade.optimize.routing import THRESHOLDS, KindRouter, kind_router, rows_of
from cascade.optimize.search import Ladders, Routing, ladders
from cascade.optimize.table import KindTable, kind_table
from cascade.store.verdicts import VerdictCache
from cascade.types import Message, Task

__all__ = ["MAX_REASKS", "Optimized", "Options", "guarantee_facts", "kind_parts", "search"]

MAX_REASKS = 5
"""Each re-ask budget multiplies the ladders searched; past a few, recorded alternatives run out."""


@dataclass(frozen=True, slots=True)
class Options:
    """What ``cascade optimize`` was asked for; see ``cascade optimize --help``."""

    target: float | None
    """The pass rate to certify; ``None`` lets the selection part set the highest it can."""
    out: str
    holdout: float = 0.3
    seed: int = 0
    confidence: float = 0.9
    select: float = 0.5
    """The share of each kind's training tasks that orders the candidates; the rest certifies."""
    max_tiers: int = 3
    max_reasks: int = 2
    any_last_tier: bool = True
    """Whether any model may end a ladder (a single cheap model included), not only strong ones."""
    any_order: bool = False
    kinds: tuple[str, ...] = ()
    policy: str | None = None
    cache: bool = True
    as_json: bool = False
    max_p95_s: float | None = None
    """Keep only ladders whose p95 task latency on the selection part is within this."""
    batch_tiers: tuple[str, ...] = ()
    """Models whose calls are priced as batch calls, and whose tiers are written batch tiers."""
    batch_discount: float = 0.5
    router: bool = False
    """Whether ladders may also have a start-tier router (fit on the selection part)."""
    per_kind: bool = False
    """Whether each kind's own pass rate must be certified, not only the pooled mix's."""
    audit_share: float = 0.05
    """On a dataset of served traffic: the share of accepted answers the written ``[audit]``
    asks the served model again (0: write no audit; see :mod:`cascade.optimize.watch`)."""

    def check(self) -> None:
        """Raise a :class:`ConfigError` naming the first option out of range."""
        if self.target is not None and not 0.0 < self.target <= 1.0:
            raise ConfigError(
                f"--target-pass-rate must be above 0 and at most 1, not {self.target}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"--confidence must be above 0 and below 1, not {self.confidence}")
        if not 0.0 < self.select < 1.0:
            raise ConfigError(f"--select must be above 0 and below 1, not {self.select}")
        if not 1 <= self.max_tiers <= 3:
            raise ConfigError(f"--max-tiers must be 1, 2 or 3, not {self.max_tiers}")
        if not 0 <= self.max_reasks <= MAX_REASKS:
            raise ConfigError(f"--max-reasks must be from 0 to {MAX_REASKS}, not {self.max_reasks}")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"--holdout must be at least 0 and below 1, not {self.holdout}")
        if not 0.0 <= self.audit_share <= 1.0:
            raise ConfigError(f"--audit-share must be from 0 to 1, not {self.audit_share:g}")
        if self.max_p95_s is not None and not self.max_p95_s > 0:
            raise ConfigError(f"--max-p95-latency must be above 0 seconds, not {self.max_p95_s:g}")

    def command(self, dataset: str) -> str:
        """The command line that makes this choice again, every option that shaped it included."""
        words = [
            f"cascade optimize {dataset} --target-pass-rate "
            f"{'auto' if self.target is None else f'{self.target:g}'} --out {self.out}",
            *(f"--kind {k}" for k in self.kinds),
            f"--confidence {self.confidence:g} --holdout {self.holdout:g} --seed {self.seed}",
        ]
        words += [f"--select {self.select:g}"] if self.select != 0.5 else []
        words += [f"--max-tiers {self.max_tiers}"] if self.max_tiers != 3 else []
        words += [f"--max-reasks {self.max_reasks}"] if self.max_reasks != 2 else []
        words += [] if self.any_last_tier else ["--strong-last-tier"]
        words += ["--any-order"] if self.any_order else []
        words += [f"--policy {self.policy}"] if self.policy else []
        words += [f"--max-p95-latency {self.max_p95_s:g}"] if self.max_p95_s is not None else []
        words += [f"--batch-tier {model}" for model in self.batch_tiers]
        words += [f"--batch-discount {self.batch_discount:g}"] if self.batch_discount != 0.5 else []
        words += ["--router"] if self.router else []
        words += ["--per-kind"] if self.per_kind else []
        words += [f"--audit-share {self.audit_share:g}"] if self.audit_share != 0.05 else []
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Optimized:
    """What the search found: the ladders per kind, the certification, and the facts behind it."""

    data: Dataset
    kinds: list[str]
    train: set[str]
    held: set[str]
    found: dict[str, Ladders]
    result: Certified
    facts: dict[str, Any]
    user: UserPolicy | None
    routers: dict[str, KindRouter]
    """Per kind: its start-tier router, when the search tried one."""


def search(dataset: str, options: Options) -> Optimized:
    """Split, judge, score every ladder and certify; nothing is written and nothing printed."""
    options.check()
    data = load_dataset(dataset)
    pricing: dict[str, str] = {}
    if options.batch_tiers:
        rates = batch_rates(options.batch_tiers, data.backend, options.batch_discount)
        data = priced_as_batch(data, rates)
        pricing = {model: rate.source() for model, rate in rates.items()}
    kinds = select_kinds(data, options.kinds)
    train, held = split_ids(data, options.holdout, options.seed)  # per kind, whatever is chosen
    data = data.subset({t.id for t in data.tasks if t.type in kinds})
    train &= {t.id for t in data.tasks}
    held &= {t.id for t in data.tasks}
    cache = VerdictCache() if options.cache else None
    user = user_policy(options.policy, kinds) if options.policy else None
    started = time.perf_counter()
    found: dict[str, Ladders] = {}
    routers: dict[str, KindRouter] = {}
    notes: list[str] = []
    training = data.subset(train)
    for kind in kinds:
        found[kind], left_out, route = _kind_ladders(training, kind, options, user, cache, pricing)
        notes += left_out
        if route is not None:
            routers[kind] = route
    result = certify(found, options.target, options.confidence, per_kind=options.per_kind)
    selecting = sum(int(f.sizes[list(SELECT)].sum()) for f in found.values())
    facts: dict[str, Any] = {
        "dataset": data.name,
        "dataset_path": dataset,
        "command": options.command(dataset),
        "tasks": len(data.tasks),
        "train_tasks": len(train),
        "held_out_tasks": len(held),
        "selection_tasks": selecting,
        "certification_tasks": len(train) - selecting,
        "seed": options.seed,
        "target_pass_rate": result.target,
        "target_set_by": "you" if options.target is not None else "the selection part (auto)",
        "confidence": options.confidence,
        "max_reasks": options.max_reasks,
        "max_p95_latency_s": options.max_p95_s,
        "batch_pricing": pricing,
        "gates_searched": sum(f.searched for f in found.values()),
        "ladders_searched": sum(len(f.tiers) for f in found.values()),
        "router_thresholds": list(THRESHOLDS) if options.router else [],
        "candidates_tested": len(result.sequence),
        "certified_candidates": len(result.certified),
        "search_s": round(time.perf_counter() - started, 3),
        "notes": notes,
    }
    if cache is not None:
        facts["sandbox_verdicts"] = {"cached": cache.hits, "run": cache.misses}
    return Optimized(data, kinds, train, held, found, result, facts, user, routers)


def _kind_ladders(
    training: Dataset,
    kind: str,
    options: Options,
    user: UserPolicy | None,
    cache: VerdictCache | None,
    batch_models: Collection[str] = (),
) -> tuple[Ladders, list[str], KindRouter | None]:
    """Every ladder of one kind, scored on its selection folds and certification part.

    With ``options.router``, also with a router fit on the selection folds (and that router).
    """
    checks = None
    if user is not None and user.task_type == kind:
        checks = user.checks([t for t in training.tasks if t.type == kind], cache)
    table, left_out = kind_table(
        training, kind, max_reasks=options.max_reasks, checks=checks, cache=cache
    )
    parts = kind_parts(len(table.task_ids), kind, options)
    last = list(range(len(table.models))) if options.any_last_tier else None
    route = _router(training, table, parts, user) if options.router else None
    found = ladders(
        table,
        parts,
        choose_on=SELECT,
        last=last,
        max_tiers=options.max_tiers,
        any_order=options.any_order,
        max_p95_s=options.max_p95_s,
        no_voters=[i for i, m in enumerate(table.models) if m in batch_models],
        routing=None if route is None else Routing(route.chances, THRESHOLDS),
    )
    return found, left_out, route


def _router(
    training: Dataset, table: KindTable, parts: np.ndarray, user: UserPolicy | None
) -> KindRouter:
    """The kind's router, on what each task sends as the written policy will send it."""
    prompt, examples = "{input}", tuple[Message, ...]()
    if user is not None and user.task_type == table.kind:
        prompt, examples = user.prompt, user.examples

    def sent(task: Task) -> tuple[Message, ...]:
        return (*examples, *first_messages(task, prompt))

    tasks = {t.id: t for t in training.tasks}
    return kind_router(table, rows_of(tasks, table.task_ids, sent), parts)


def kind_parts(count: int, kind: str, options: Options) -> np.ndarray:
    """The parts of a kind's ``count`` training tasks (in its table's order), from the seed."""
    return selection_parts(count, kind_stream(options.seed, kind, 1), options.select)


def selection_parts(
    count: int, rng: np.random.Generator, select: float, rest: int = CERTIFY
) -> np.ndarray:
    """Each task's part: ``select`` of them in the selection folds, the others in ``rest``."""
    order = rng.permutation(count)
    parts = np.full(count, rest, dtype=np.intp)
    chosen = order[: round(select * count)]
    parts[chosen] = np.arange(chosen.size) % FOLDS
    return parts


def guarantee_facts(optimized: Optimized, options: Options) -> dict[str, Any]:
    """The guarantee the choice carries, or why there is none, for the report."""
    result = optimized.result
    chosen = result.chosen
    statement = describe_guarantee(
        result.target, options.confidence, optimized.kinds, per_kind=options.per_kind
    )
    if chosen is None:
        best = result.best_bound
        return {
            "certified": False,
            "statement": f"nothing certified: no ladder reached the bound ({statement})",
            "best": None if best is None else _candidate(optimized.found, best),
        }
    return {
        "certified": True,
        "statement": statement,
        "chosen": _candidate(optimized.found, chosen),
    }


def _candidate(found: Mapping[str, Ladders], candidate: Any) -> dict[str, Any]:
    from cascade.optimize.write import describe  # noqa: PLC0415  # tomli_w only when writing

    return {
        "ladders": {k: describe(found[k], i) for k, i in candidate.picks.items()},
        "selection_pass_rate": round(candidate.selected_rate, 6),
        "certification_pass_rate": round(candidate.certified_rate, 6),
        # Not a certified figure: the data chose this candidate, so only the target is covered.
        "chosen_lower_bound": round(candidate.bound, 6),
        "kinds": {
            kind: {"certification_pass_rate": round(rate, 6), "lower_bound": round(bound, 6)}
            for kind, (rate, bound) in candidate.kinds.items()
        },
        "cost_per_task_usd": round(candidate.cost_per_task, 10),
    }
