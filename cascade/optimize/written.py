"""The chosen ladders written as policy files, then replayed through the engine to check them.

A library: it writes files and returns figures, and never prints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade.audit.plan import AuditPlan
from cascade.bench.evaluate import LadderScore, score_models, score_oracle, score_policy
from cascade.bench.suite import ByKind, default_validators, policy_cascades
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.optimize.baselines import best_and_cheapest_equal
from cascade.optimize.checks import relocated
from cascade.optimize.pipeline import Optimized, Options
from cascade.optimize.routing import ladder_router, rescored
from cascade.optimize.watch import Watch, audits_served, watch_served
from cascade.optimize.write import policy_text, tier_tables
from cascade.store.verdicts import VerdictCache

__all__ = [
    "Calibration",
    "calibrate",
    "check_written",
    "out_paths",
    "policy_arg",
    "policy_header",
    "router_path",
    "write_policies",
]


def out_paths(out: Path, kinds: list[str], name: str) -> dict[str, Path]:
    """One policy file per kind: ``out`` itself for one kind, else ``out/<kind>.toml``."""
    if len(kinds) == 1 and out.suffix == ".toml":
        return {kinds[0]: out}
    if out.suffix == ".toml":
        raise ConfigError(
            f"--out {out}: {name} has {len(kinds)} task kinds ({', '.join(kinds)}), one policy "
            "file each; give a folder, or choose one kind with --kind"
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    return {kind: out / f"{kind}.toml" for kind in kinds}


def policy_arg(paths: Mapping[str, Path]) -> Path:
    """What ``--policy`` takes for the written files: the one file, or their folder."""
    only = next(iter(paths.values()))
    return only if len(paths) == 1 else only.parent


def policy_header(
    found: Optimized, facts: Mapping[str, Any], options: Options
) -> dict[str, list[str]]:
    """Per kind, the header of its policy file: how it was chosen, what its guarantee covers."""
    return {kind: _header(found, facts, options, kind) for kind in found.kinds}


def _header(found: Optimized, facts: Mapping[str, Any], options: Options, kind: str) -> list[str]:
    chosen = facts["guarantee"]["chosen"]
    statement = facts["guarantee"]["statement"]
    pooled = len(found.kinds) > 1 and not options.per_kind
    own = chosen["kinds"].get(kind, {})
    if options.per_kind and len(found.kinds) > 1:
        figures = [
            f"This file's own claim: {kind}'s pass rate on new tasks is at least "
            f"{facts['target_pass_rate']:.1%}, with the stated probability. On its "
            f"certification tasks it passed {own.get('certification_pass_rate', 0.0):.1%}; "
            f"its own {options.confidence:.0%} lower bound, {own.get('lower_bound', 0.0):.1%}, "
            "is not covered by the guarantee, since the data chose this ladder.",
        ]
    else:
        figures = [
            f"On the {facts['certification_tasks']} certification tasks it passed "
            f"{chosen['certification_pass_rate']:.1%}; its own {options.confidence:.0%} lower "
            f"bound, {chosen['chosen_lower_bound']:.1%}, is not covered by the guarantee, since "
            "the data chose this ladder.",
        ]
    return [
        "Written by cascade optimize:",
        f"  {facts['command']}",
        f"Chosen on {facts['train_tasks']} training tasks: the cheapest ladders whose pass rate "
        f"is certified to reach {facts['target_pass_rate']:.1%}{_auto_note(found, options)}. "
        f"{statement[0].upper()}{statement[1:]}.",
        f"The certified figure is the target, {facts['target_pass_rate']:.1%}, for these files "
        "as written (replayed through the engine on the certification tasks).",
        *figures,
        *_means(facts),
        "Trying again with other seeds, targets or settings on the same data spends the "
        "guarantee again: each try is another chance for one to hold by luck.",
        *(
            [
                f"These figures are pooled over the kinds {', '.join(sorted(found.kinds))}, in "
                "the mix of the recorded tasks: the guarantee is for that mix, not for this "
                "file's kind alone, whose own pass rate may be lower (--per-kind certifies "
                "each kind's own)."
            ]
            if pooled
            else []
        ),
        "Every tier but the last must pass its checks; the last is trusted.",
        "Model names are the dataset's: give them their provider prefix for live runs.",
        "Check it on the tasks the optimizer never saw:",
        f"  cascade bench {facts['dataset_path']} --policy THIS --split held-out"
        + "".join(f" --kind {k}" for k in options.kinds)
        + f" --holdout {options.holdout:g} --seed {options.seed}",
    ]


def _means(facts: Mapping[str, Any]) -> list[str]:
    """What a pass is, when the dataset says what "correct" means (``cascade truth``)."""
    if "truth" not in facts:
        return []
    return [f"A pass is a correct answer, and correct means: {facts['truth']['means']}."]


def _auto_note(found: Optimized, options: Options) -> str:
    """How ``auto`` came to its target: the top of its sequence, or the walk stopped below it."""
    if options.target is not None:
        return ""
    result = found.result
    top = max((t for t, _ in result.planned), default=result.target)
    if result.target >= top - 1e-12:
        return " (the highest the selection part expected to certify)"
    return (
        " (the highest target of its sequence that certified: the walk stopped below "
        f"{top:.1%}, the highest the selection part expected to certify)"
    )


def write_policies(
    found: Optimized,
    picks: Mapping[str, int],
    paths: Mapping[str, Path],
    headers: Mapping[str, Sequence[str]],
    options: Options,
    calibration: Calibration | None = None,
) -> list[Path]:
    """Write one policy file per kind, under its header in ``headers``; return the paths.

    ``calibration`` gives each kind's acceptance rates by tier on the training tasks, written as
    its ``[drift] acceptance`` (the baseline of its drift alarms), and a kind's audit of its
    served model with its calibrated disagreement (see :func:`calibrate`).
    """
    acceptance = calibration.acceptance if calibration is not None else {}
    watches = calibration.watches if calibration is not None else {}
    routed = any(found.found[k].threshold(i) for k, i in picks.items())
    notes = [*([_CALIBRATED] if acceptance else []), *([_ROUTED] if routed else [])]
    user = found.user
    for kind, path in paths.items():
        watch = watches.get(kind)
        header = [*headers[kind], *notes, *([watch.note()] if watch else []), ""]
        tables: dict[str, Any] = {}  # [drift] and [audit], over the user's own
        rates: dict[str, list[float] | list[int]] = {}
        if acceptance.get(kind):
            rates["acceptance"] = acceptance[kind]
        if watch is not None:
            tables["audit"] = watch.audit
            if watch.disagreement:
                rates |= {"disagreement": watch.disagreement,
                          "disagreement_audits": watch.audits}  # fmt: skip
        if rates:
            base = user.data.get("drift", {}) if user is not None and user.task_type == kind else {}
            tables["drift"] = {**base, **rates}
        route = _write_router(found, kind, picks[kind], path)
        if user is None or user.task_type != kind:
            tiers = _batched(tier_tables(found.found[kind], picks[kind]), found, options)
            text = policy_text(kind, tiers, header, tables, route)
        else:
            tiers = tier_tables(found.found[kind], picks[kind], user.tiers)
            tiers = _batched(tiers, found, options)
            for tier in tiers:
                if "validators" in tier:
                    tier["validators"] = [relocated(v, user.path, path) for v in tier["validators"]]
            text = policy_text(kind, tiers, header, {**user.data, **tables}, route)
        write_atomic(path, text)
    return list(paths.values())


def router_path(path: Path) -> Path:
    """Where the router of the policy file ``path`` is written: beside it."""
    return path.with_name(f"{path.stem}.router.json")


def _write_router(found: Optimized, kind: str, index: int, path: Path) -> dict[str, Any] | None:
    """Write ladder ``index``'s router beside ``path``, if it has one; its ``[route]`` table."""
    ladders = found.found[kind]
    threshold = ladders.threshold(index)
    if not threshold:
        return None
    target = router_path(path)
    router = ladder_router(ladders, index, found.routers[kind].router)
    write_atomic(target, json.dumps(router.to_json()) + "\n")
    return {"file": target.name, "threshold": round(threshold, 6)}


_ROUTED = (
    "[route] starts a task at the first tier whose chance of a right answer reaches its "
    "threshold: the router was fit on the selection part and certified with the ladder "
    "(the certification tasks were new to it); refit it, and the guarantee is gone."
)
_CALIBRATED = ("[drift] acceptance is each tier's acceptance rate on the training tasks, "
               "replayed: the baseline of the policy's drift alarms.")  # fmt: skip


def _batched(
    tiers: list[dict[str, Any]], found: Optimized, options: Options
) -> list[dict[str, Any]]:
    """The tiers, those of the models priced as batch calls made batch tiers."""
    batch: dict[str, Any] = {"mode": "batch"}
    if options.batch_discount != 0.5:
        batch["batch_discount"] = options.batch_discount
    models = found.facts["batch_pricing"]
    return [tier | batch if str(tier["model"]).split("/")[-1] in models else tier
            for tier in tiers]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Calibration:
    """What one replay of the written policies on their training tasks measured, per kind."""

    acceptance: dict[str, list[float]]
    """Each kind's ``[drift] acceptance``: its acceptance rate by tier (see :func:`calibrate`)."""
    watches: dict[str, Watch]
    """Each kind's audit of its served model and calibrated disagreement (see
    :mod:`cascade.optimize.watch`); none when the dataset names no served model."""


def calibrate(
    found: Optimized, paths: Mapping[str, Path], options: Options, served: str | None = None
) -> Calibration:
    """Each written policy replayed once on its training tasks: its drift baselines.

    The acceptance rate of tier k is the share of the tasks asked there that it accepted (a
    router may start a task past it), as a run's drift alarms count it; the last, trusted tier
    is left out (it accepts all), as is a tier no training task reached, and every one after it.
    With ``served``, the same replay audits every accepted answer against that model's recorded
    answer: the policy's calibrated disagreement (:func:`cascade.optimize.watch.watch_served`).
    """
    cache = VerdictCache() if options.cache else None
    plan = None if served is None else AuditPlan(share=1.0, model=served)
    rates: dict[str, list[float]] = {}
    audited: dict[str, LadderScore] = {}
    for kind, path in paths.items():
        ids = {t.id for t in found.data.tasks if t.type == kind and t.id in found.train}
        train = found.data.subset(ids)
        cascades = policy_cascades(str(path), train, ByKind(default_validators(cache)), cache)
        audit = plan if audits_served(found, kind) else None
        score = asyncio.run(score_policy(train, cascades, audit=audit))
        if audit is not None:
            audited[kind] = score
        found_rates = []
        for accepted, reached in zip(
            score.accepted_by_tier[:-1], score.reached_by_tier, strict=False
        ):
            if reached <= 0:
                break
            found_rates.append(round(min(0.999, max(0.001, accepted / reached)), 4))
        rates[kind] = found_rates
    watches = {} if served is None else watch_served(found, audited, options, served)
    return Calibration(rates, watches)


def check_written(found: Optimized, policy: str, options: Options) -> dict[str, Any]:
    """Replay the written policies through the engine on both splits."""
    cache = VerdictCache() if options.cache else None
    data = found.data
    cascades = policy_cascades(policy, data, ByKind(default_validators(cache)), cache)
    on_train = asyncio.run(score_policy(data.subset(found.train), cascades))
    chosen = found.result.chosen
    assert chosen is not None  # only a chosen ladder is checked
    right = cost = 0.0
    for kind, index in chosen.picks.items():
        ladders = found.found[kind]
        if ladders.threshold(index):
            # The written router reads its own selection tasks in sample, as the replay does.
            kind_right, kind_cost = rescored(ladders, index, found.routers[kind].written)
        else:
            kind_right = float(ladders.rights[index].sum(dtype=np.float64))
            kind_cost = float(ladders.costs[index].sum(dtype=np.float64))
        right, cost = right + kind_right, cost + kind_cost
    tasks = max(1, found.facts["train_tasks"])
    facts: dict[str, Any] = {
        "train": _figures(on_train),
        "simulated_train": {
            "pass_rate": round(right / tasks, 6),
            "cost_per_task_usd": round(cost / tasks, 10),
        },
    }
    if found.held:
        held_data = data.subset(found.held)
        facts["held_out"] = _figures(asyncio.run(score_policy(held_data, cascades)))
        models = score_models(held_data)
        facts["held_out_models"] = {m: s.to_json() for m, s in sorted(models.items())}
        facts["held_out_oracle"] = score_oracle(held_data).to_json()
        best, cheapest = best_and_cheapest_equal(models)
        facts |= {"held_out_best_model": best, "held_out_cheapest_equal_model": cheapest}
    return facts


def _figures(score: LadderScore) -> dict[str, Any]:
    found = score.to_json()
    keep = ("pass_rate", "pass_rate_ci95", "cost_per_task_usd", "cost_per_task_ci95")
    return {k: found[k] for k in (*keep, "accepted_by_tier", "escalation_rate", "latency_p95_s")}
