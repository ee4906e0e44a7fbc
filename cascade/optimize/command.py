"""``cascade optimize``: choose ladders on a training split, write them, check them held out.

The steps, in order:

1. split the dataset: ``holdout`` of each kind is set aside and never looked at until the end;
2. judge every recorded answer of the training split once (:mod:`cascade.optimize.table`) and
   score every ladder on its folds (:mod:`cascade.optimize.search`);
3. nested cross-validation measures how much the choice loses out of sample; the final choice
   must reach the target plus that margin in sample;
4. the chosen ladders are written as policy files, which are then loaded like any policy and
   replayed through the real engine, on the training split (where they must match the
   simulation) and on the held-out split, which is the figure to trust.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cascade.bench.command import ByKind, default_validators, policy_cascades
from cascade.bench.dataset import Dataset, load_dataset, split_ids
from cascade.bench.evaluate import LadderScore, score_models, score_oracle, score_policy
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.optimize.search import Choice, Ladders, calibrate, choose, ladders, strong_models
from cascade.optimize.table import kind_table
from cascade.optimize.write import describe, policy_text, tier_tables

__all__ = ["MAX_REASKS", "Options", "optimize"]

MAX_REASKS = 5
"""Each re-ask budget multiplies the ladders searched; past a few, recorded alternatives run out."""


@dataclass(frozen=True, slots=True)
class Options:
    """What ``cascade optimize`` was asked for; see ``cascade optimize --help``."""

    target: float
    out: str
    holdout: float = 0.3
    folds: int = 5
    repeats: int = 3
    seed: int = 0
    max_tiers: int = 3
    max_reasks: int = 2
    any_last_tier: bool = False
    any_order: bool = False
    kinds: tuple[str, ...] = ()
    as_json: bool = False

    def check(self) -> None:
        """Raise a :class:`ConfigError` naming the first option out of range."""
        if not 0.0 < self.target <= 1.0:
            raise ConfigError(
                f"--target-pass-rate must be above 0 and at most 1, not {self.target}"
            )
        if not 1 <= self.max_tiers <= 3:
            raise ConfigError(f"--max-tiers must be 1, 2 or 3, not {self.max_tiers}")
        if not 0 <= self.max_reasks <= MAX_REASKS:
            raise ConfigError(f"--max-reasks must be from 0 to {MAX_REASKS}, not {self.max_reasks}")
        if self.folds < 2:
            raise ConfigError(f"--folds must be at least 2, not {self.folds}")
        if self.repeats < 1:
            raise ConfigError(f"--repeats must be at least 1, not {self.repeats}")


def optimize(dataset: str, options: Options) -> int:
    """Find, write and check the cheapest ladders that reach the target; 2 when none can."""
    options.check()
    target, folds, seed = options.target, options.folds, options.seed
    data = load_dataset(dataset)
    chosen_kinds = _kinds(data, options.kinds)
    paths = _out_paths(Path(options.out), chosen_kinds, data.name)
    data = data.subset({t.id for t in data.tasks if t.type in chosen_kinds})
    train_ids, held_ids = split_ids(data, options.holdout, seed)
    started = time.perf_counter()
    draws: list[dict[str, Ladders]] = [{} for _ in range(options.repeats)]
    notes: list[str] = []
    for kind in chosen_kinds:
        table, left_out = kind_table(data.subset(train_ids), kind, max_reasks=options.max_reasks)
        notes += left_out
        last = list(range(len(table.models))) if options.any_last_tier else strong_models(table)
        rng = np.random.default_rng(seed + 1)
        for found in draws:  # the same ladders, on a new random assignment of folds each time
            found[kind] = ladders(
                table,
                rng.permutation(len(table.task_ids)) % folds,
                last=last,
                max_tiers=options.max_tiers,
                any_order=options.any_order,
            )
    found = draws[0]
    searched = sum(len(f.tiers) for f in found.values())
    calibration = calibrate(draws, target)
    everything = np.ones(folds, dtype=np.bool_)
    choice = None
    if calibration.out_of_fold is not None and calibration.out_of_fold >= target - 1e-12:
        choice = choose(found, everything, calibration.target)
    elapsed = time.perf_counter() - started
    facts: dict[str, Any] = {
        "dataset": data.name,
        "tasks": len(data.tasks),
        "train_tasks": len(train_ids),
        "held_out_tasks": len(held_ids),
        "seed": seed,
        "folds": folds,
        "repeats": options.repeats,
        "target_pass_rate": target,
        "max_reasks": options.max_reasks,
        "margin": round(calibration.margin, 6),
        "cross_validated_pass_rate": _rounded(calibration.out_of_fold),
        "fold_drops": [round(d, 6) for d in calibration.drops],
        "ladders_searched": searched,
        "search_s": round(elapsed, 3),
        "notes": notes,
    }
    if choice is None:
        _print_unreachable(facts, options.as_json)
        return 2
    written = _write(found, choice, paths, facts, options.holdout)
    facts |= _check(data, str(_policy_arg(paths)), train_ids, held_ids, choice)
    facts["ladders"] = {k: describe(found[k], i) for k, i in choice.picks.items()}
    facts["written"] = [str(p) for p in written]
    print(json.dumps(facts, indent=2) if options.as_json else _render(facts))  # noqa: T201  # the report
    return 0


def _kinds(data: Dataset, wanted: tuple[str, ...]) -> list[str]:
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


def _out_paths(out: Path, kinds: list[str], name: str) -> dict[str, Path]:
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


def _policy_arg(paths: Mapping[str, Path]) -> Path:
    only = next(iter(paths.values()))
    return only if len(paths) == 1 else only.parent


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _write(
    found: Mapping[str, Ladders],
    choice: Choice,
    paths: Mapping[str, Path],
    facts: Mapping[str, Any],
    holdout: float,
) -> list[Path]:
    name, seed = facts["dataset"], facts["seed"]
    reasks = "" if facts["max_reasks"] == 2 else f" --max-reasks {facts['max_reasks']}"
    header = [
        "Written by cascade optimize:",
        f"  cascade optimize {name} --target-pass-rate {facts['target_pass_rate']} "
        f"--holdout {holdout} --seed {seed} --folds {facts['folds']} --repeats {facts['repeats']}"
        + reasks,
        f"From {facts['train_tasks']} training tasks: the cheapest ladders that reach "
        f"{facts['target_pass_rate']:.1%} overall, "
        f"chosen for {facts['target_pass_rate'] + facts['margin']:.2%} in sample, the margin "
        f"nested {facts['folds']}-fold cross-validation said reaches the target out of fold "
        f"({facts['cross_validated_pass_rate']:.1%}).",
        "Every tier but the last must pass its checks; the last, a strong model, is trusted.",
        "Model names are the dataset's: give them their provider prefix for live runs.",
        "Check it on the tasks the optimizer never saw:",
        f"  cascade bench {name} --policy THIS --split held-out --holdout {holdout} --seed {seed}",
        "",
    ]
    for kind, path in paths.items():
        text = policy_text(kind, tier_tables(found[kind], choice.picks[kind]), header)
        write_atomic(path, text)
    return list(paths.values())


def _check(
    data: Dataset, policy: str, train: set[str], held: set[str], choice: Choice
) -> dict[str, Any]:
    """Replay the written policies through the engine on both splits."""
    cascades = policy_cascades(policy, data, ByKind(default_validators()))
    on_train = asyncio.run(score_policy(data.subset(train), cascades))
    held_data = data.subset(held)
    facts: dict[str, Any] = {
        "train": _figures(on_train),
        "simulated_train": {
            "pass_rate": round(choice.pass_rate, 6),
            "cost_per_task_usd": round(choice.cost_per_task, 10),
        },
    }
    if held:
        facts["held_out"] = _figures(asyncio.run(score_policy(held_data, cascades)))
        facts["held_out_models"] = {
            m: s.to_json() for m, s in sorted(score_models(held_data).items())
        }
        facts["held_out_oracle"] = score_oracle(held_data).to_json()
    return facts


def _figures(score: LadderScore) -> dict[str, Any]:
    found = score.to_json()
    keep = ("pass_rate", "pass_rate_ci95", "cost_per_task_usd", "cost_per_task_ci95")
    return {k: found[k] for k in (*keep, "accepted_by_tier", "escalation_rate")}


def _print_unreachable(facts: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(facts, indent=2))  # noqa: T201  # the report
        return
    found = facts["cross_validated_pass_rate"]
    best = (
        "no choice reached it in sample on every fold"
        if found is None
        else (f"the best choice passes {found:.1%} out of fold")
    )
    print(  # noqa: T201  # the report
        f"no ladder of {facts['dataset']}'s models reaches {facts['target_pass_rate']:.1%} on "
        f"data it was not chosen on: {best} (nested {facts['folds']}-fold cross-validation of "
        f"the training split); nothing was written"
    )


def _render(facts: Mapping[str, Any]) -> str:
    target = facts["target_pass_rate"]
    lines = [
        f"{facts['dataset']}: {facts['tasks']} tasks; chose on {facts['train_tasks']}, held out "
        f"{facts['held_out_tasks']} (seed {facts['seed']})",
        f"searched {facts['ladders_searched']:,} ladders in {facts['search_s']:.1f} s",
        f"target {target:.1%}: by nested {facts['folds']}-fold cross-validation, repeated "
        f"{facts['repeats']} times, choices must "
        f"pass {target + facts['margin']:.2%} in sample to pass the target out of fold "
        "(in-sample minus out-of-fold, per fold: "
        + ", ".join(f"{d:+.1%}" for d in facts["fold_drops"])
        + ")",
        "",
    ]
    width = max(map(len, facts["ladders"]))
    lines += [f"  {k:{width}}  {text}" for k, text in facts["ladders"].items()]
    rows: list[tuple[str, Mapping[str, Any]]] = [("in sample (engine replay)", facts["train"])]
    if "held_out" in facts:
        models = facts["held_out_models"]
        best = max(models, key=lambda m: (models[m]["pass_rate"], -models[m]["cost_usd"]))
        rows += [
            ("held out (engine replay)", facts["held_out"]),
            (f"held out: best model, {best}", models[best]),
            ("held out: oracle", facts["held_out_oracle"]),
        ]
    width = max(len(label) for label, _ in rows)
    lines += ["", f"  {'':{width}} {'pass rate':>9}  {'95% interval':>15}  {'$/task':>10}"]
    lines.append(_line(*rows[0], width))
    cv = facts["cross_validated_pass_rate"]
    lines.append(f"  {'cross-validated (out of fold)':{width}} {cv:>9.1%}")
    lines += [_line(label, score, width) for label, score in rows[1:]]
    lines += ["", *(f"note: {n}" for n in facts["notes"])]
    lines += [f"wrote {p}" for p in facts["written"]]
    return "\n".join(lines)


def _line(label: str, score: Mapping[str, Any], width: int) -> str:
    low, high = score.get("pass_rate_ci95", (0.0, 0.0))
    return (
        f"  {label:{width}} {score['pass_rate']:>9.1%}  {f'{low:.1%} to {high:.1%}':>15}  "
        f"{score['cost_per_task_usd']:>10.6f}"
    )
