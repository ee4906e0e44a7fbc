"""Replay a recorded dataset through policies and ladders: the figures ``cascade bench`` shows.

A library: :func:`bench` returns the figures, and never prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.audit.plan import AuditPlan
from cascade.bench.batch import BatchRate, batch_rates
from cascade.bench.dataset import Dataset, load_dataset, split_ids
from cascade.bench.evaluate import (
    answered,
    score_models,
    score_oracle,
    score_policy,
    score_unpriced,
)
from cascade.bench.export import Exported, dataset_from_store
from cascade.bench.metrics import Point, cost_span, frontier_area, oracle_share, savings
from cascade.engine import Cascade, Plan, Settings
from cascade.errors import ConfigError
from cascade.policy import load_policies
from cascade.retry import RetryPolicy
from cascade.store.verdicts import VerdictCache
from cascade.types import Attempt, Tier, Verdict
from cascade.validators.base import Validator, run_validator
from cascade.validators.calls import function_call
from cascade.validators.code import compiles
from cascade.validators.code_tests import passes_tests
from cascade.validators.combine import all_of

__all__ = [
    "Benched",
    "ByKind",
    "WhatIf",
    "bench",
    "default_validators",
    "policy_cascades",
    "replaying",
    "select_kinds",
]


class ByKind:
    """Run the validator registered for each task's kind; kinds without one pass unchecked."""

    def __init__(self, validators: Mapping[str, Validator]) -> None:
        self._validators = dict(validators)

    def __repr__(self) -> str:
        return f"by_kind({', '.join(f'{k}={v!r}' for k, v in self._validators.items())})"

    async def __call__(self, attempt: Attempt) -> Verdict:
        """Judge ``attempt`` with its kind's validator."""
        validator = self._validators.get(attempt.task.type)
        if validator is None:
            return Verdict(True, reason=f"no validator for kind {attempt.task.type!r}")
        return await run_validator(validator, attempt)


def default_validators(cache: VerdictCache | None = None) -> dict[str, Validator]:
    """The built-in checks each task kind gets in a benchmark: the call, or the visible tests."""
    tests = passes_tests(missing="fail", cache=cache)
    return {"function_call": function_call(), "code": all_of(compiles(), tests)}


def _parse_ladder(text: str, data: Dataset) -> tuple[Tier, ...]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in models if data.backend.resolve(m) is None]
    if not models or unknown:
        raise ConfigError(
            f"--ladder {text!r}: unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"{data.name} has {', '.join(data.models)}"
        )
    # Replays never fail transiently, so there is nothing to wait for between retries.
    return tuple(Tier(m, retries=0) for m in models)


def policy_cascades(
    path: str, data: Dataset, validate: Validator, cache: VerdictCache | None = None
) -> dict[str, Cascade]:
    """One cascade per task type a policy file (or folder) serves, on the replayed models."""
    policies = load_policies(path, cache=cache)
    cascades = {}
    for policy in policies:
        unknown = [m for t in policy.ladder if not t.is_human for m in t.models
                   if data.backend.resolve(m) is None]  # fmt: skip
        if unknown:
            raise ConfigError(
                f"--policy {policy.path}: {data.name} has no recorded outputs of"
                f" {', '.join(unknown)}; it has {', '.join(data.models)}"
            )
        plan, spec = policy.plan, policy.spec
        if not spec.validators and not any(t.validators for t in spec.tiers):
            # a policy with no checks of its own gets the defaults
            plan = dataclasses.replace(plan, validate=validate)
        cascades[policy.task_type] = Cascade(plan, settings=replaying(data))
    if len(policies) == 1:  # one file serves every task of the dataset, whatever its kind
        return {"*": next(iter(cascades.values()))}
    return cascades


def replaying(data: Dataset) -> Settings:
    """How a replay runs: on the dataset's backend, unlogged, with no wait between retries."""
    return Settings(backend=data.backend, log=False, retry=_NO_WAIT)


_NO_WAIT = RetryPolicy(base_s=0.0, jitter=0.0)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Rows :func:`bench` adds beside each ladder and policy.

    With ``deadline_s``, each is also replayed with that deadline per task, its tiers' expected
    latencies being the p90 of their recorded ones (of the training split, when the held-out
    one is replayed). With ``batch_tiers``, each is also replayed with those models' calls
    priced as batch calls (see :mod:`cascade.bench.batch`), at ``batch_discount`` of the
    recorded cost where litellm knows no batch price.
    """

    deadline_s: float | None = None
    batch_tiers: tuple[str, ...] = ()
    batch_discount: float = 0.5
    audit: AuditPlan | None = None
    """A shadow audit of each row's accepted answers: what it would find and cost."""


@dataclass(frozen=True, slots=True)
class Benched:
    """What :func:`bench` found: the figures (``cascade bench --json``), and on what."""

    results: dict[str, Any]
    data: Dataset
    exported: Exported | None = None
    """When the dataset was a run store: what was taken from it."""


def bench(
    dataset: str,
    ladders: Sequence[str],
    *,
    policies: Sequence[str] = (),
    concurrency: int = 64,
    split: tuple[str, float, int] = ("all", 0.3, 0),
    gold: str | None = None,
    kinds: Sequence[str] = (),
    cache: bool = True,
    whatif: WhatIf | None = None,
) -> Benched:
    """Score every model, the oracle, each ladder and each policy.

    ``split`` is (``all``, ``train`` or ``held-out``, held-out share, seed), as optimize draws it.
    ``dataset`` may be a run store, judged against ``gold``. ``kinds`` narrows the tasks.
    ``cache`` keeps the verdicts of sandboxed tests (see :class:`VerdictCache`). ``whatif``
    adds rows beside each ladder and policy (see :class:`WhatIf`).
    """
    whatif = whatif or WhatIf()
    exported = None
    if Path(dataset).is_file():  # a run store: its tasks that every tier answered
        data, exported = dataset_from_store(dataset, gold)
    elif gold is not None:
        raise ConfigError(f"--gold is for run stores; {dataset} is a dataset with its own grading")
    else:
        data = load_dataset(dataset)
    part, holdout, seed = split
    if part != "all":
        train, held = split_ids(data, holdout, seed)
        data = data.subset(train if part == "train" else held)
        # a deadline plans by latencies seen in training, never by the held-out tasks' own
        data = dataclasses.replace(data, backend=data.backend.timed_on(train))
    if kinds:
        data = data.subset({t.id for t in data.tasks if t.type in select_kinds(data, kinds)})
    verdicts = VerdictCache() if cache else None
    runs, pricing = _policy_batches(_runs(data, ladders, policies, verdicts), data)
    runs, more = _what_if(runs, whatif, data)
    pricing |= more
    results = _figures(data, part, holdout, seed)
    if pricing:
        results["batch_pricing"] = pricing
    for name, cascades in runs.items():
        score = asyncio.run(
            score_policy(data, cascades, concurrency=concurrency, audit=whatif.audit)
        )
        results["ladders"][name] = score.to_json()
    _add_summary(results)
    return Benched(results, data, exported)


def _runs(
    data: Dataset, ladders: Sequence[str], policies: Sequence[str], verdicts: VerdictCache | None
) -> dict[str, dict[str, Cascade]]:
    """The cascades of each policy and each bare ladder, by the name their row gets."""
    validate = ByKind(default_validators(verdicts))
    runs: dict[str, dict[str, Cascade]] = {}
    for path in policies:
        name = Path(path).stem
        if name in runs:  # two policies of the same name: say which folder each is from
            name = f"{Path(path).parent.name}/{name}"
        runs[name] = policy_cascades(path, data, validate, verdicts)
    for text in ladders:
        cascade = Cascade(Plan(_parse_ladder(text, data), validate), settings=replaying(data))
        runs[" → ".join(t.model for t in cascade.ladder)] = {"*": cascade}
    return runs


def _what_if(
    runs: dict[str, dict[str, Cascade]], whatif: WhatIf, data: Dataset
) -> tuple[dict[str, dict[str, Cascade]], dict[str, str]]:
    """``runs`` with the rows ``whatif`` adds, and where each batch price comes from."""
    deadline_s = whatif.deadline_s
    if deadline_s is not None:
        runs |= {f"{name}, deadline {deadline_s:g} s": _within(cascades, deadline_s)
                 for name, cascades in runs.items()}  # fmt: skip
    if not whatif.batch_tiers:
        return runs, {}
    rates = batch_rates(whatif.batch_tiers, data.backend, whatif.batch_discount)
    label = ", ".join(rates)
    runs |= {f"{name}, batch {label}": _batched(cascades, data, rates)
             for name, cascades in runs.items()}  # fmt: skip
    return runs, {model: rate.source() for model, rate in rates.items()}


def _policy_batches(
    runs: dict[str, dict[str, Cascade]], data: Dataset
) -> tuple[dict[str, dict[str, Cascade]], dict[str, str]]:
    """Policies with batch tiers priced so, each beside the same policy run synchronously."""
    found: dict[str, dict[str, Cascade]] = {}
    pricing: dict[str, str] = {}
    for name, cascades in runs.items():
        rates: dict[str, BatchRate] = {}
        for cascade in cascades.values():
            for tier in cascade.ladder:
                if tier.batch is not None:
                    rates |= batch_rates([tier.model], data.backend, tier.batch.discount)
        if not rates:
            found[name] = cascades
            continue
        found[name] = _batched(cascades, data, rates)
        found[f"{name}, synchronous"] = cascades
        pricing |= {model: rate.source() for model, rate in rates.items()}
    return found, pricing


def _within(cascades: Mapping[str, Cascade], deadline_s: float) -> dict[str, Cascade]:
    """The same cascades with a deadline on every task."""
    if not deadline_s > 0:
        raise ConfigError(f"--deadline must be a number of seconds above 0, not {deadline_s:g}")
    return {kind: Cascade(dataclasses.replace(c.plan, deadline_s=deadline_s), settings=c.settings)
            for kind, c in cascades.items()}  # fmt: skip


def _batched(
    cascades: Mapping[str, Cascade], data: Dataset, rates: Mapping[str, BatchRate]
) -> dict[str, Cascade]:
    """The same cascades, some models' calls priced as batch calls."""
    backend = data.backend.repriced({model: rate.cost for model, rate in rates.items()})
    return {kind: Cascade(c.plan, settings=dataclasses.replace(c.settings, backend=backend))
            for kind, c in cascades.items()}  # fmt: skip


def _figures(data: Dataset, part: str, holdout: float, seed: int) -> dict[str, Any]:
    """The figures of every model and the oracle, before any ladder is added."""
    split = "all tasks"
    if part != "all":
        split = f"{part} split: {holdout:.0%} of each kind held out with seed {seed}"
    return {
        "dataset": data.name,
        "split": split,
        "kinds": sorted({t.type for t in data.tasks}),
        "tasks": len(data.tasks),
        "models": {m: s.to_json() for m, s in score_models(data).items()},
        "partial_models": {m: n for m, n in answered(data).items() if n < len(data.tasks)},
        "unpriced_models": {
            m: {"pass_rate": round(s.pass_rate, 6)} for m, s in score_unpriced(data).items()
        },
        "oracle": score_oracle(data).to_json(),
        "ladders": {},
    }


def select_kinds(data: Dataset, wanted: Sequence[str]) -> list[str]:
    """The task kinds asked for, each checked to be in ``data``; all of them when none are."""
    present = sorted({t.type for t in data.tasks})
    if not wanted:
        return present
    unknown = [k for k in wanted if k not in present]
    if unknown:
        raise ConfigError(
            f"--kind {', '.join(unknown)}: {data.name} has no such tasks; "
            f"its kinds are {', '.join(present)}"
        )
    return sorted(set(wanted))


def _add_summary(results: dict[str, Any]) -> None:
    """Savings, the oracle's share and the frontier area (see :mod:`cascade.bench.metrics`)."""
    models = {
        n: Point(n, s["cost_per_task_usd"], s["pass_rate"]) for n, s in results["models"].items()
    }
    oracle = Point("oracle", results["oracle"]["cost_per_task_usd"], results["oracle"]["pass_rate"])
    ladders = []
    for name, score in results["ladders"].items():
        point = Point(name, score["cost_per_task_usd"], score["pass_rate"])
        ladders.append(point)
        saved = savings(point, list(models.values()))
        share = oracle_share(point, list(models.values()), oracle)
        score["savings_vs_equal_model"] = None if saved is None else round(saved, 6)
        score["oracle_savings_share"] = None if share is None else round(share, 6)
    span = cost_span(models)
    results["frontier_area"] = {
        "models": frontier_area(list(models.values()), span),
        "models_and_ladders": frontier_area([*models.values(), *ladders], span),
    }
