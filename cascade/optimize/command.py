"""``cascade optimize``: search, write the chosen policies, replay them, and print the report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.bench.command import ByKind, default_validators, policy_cascades
from cascade.bench.evaluate import LadderScore, score_models, score_oracle, score_policy
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.optimize.checks import relocated
from cascade.optimize.pipeline import Optimized, Options, guarantee_facts, search
from cascade.optimize.write import describe, policy_text, tier_tables
from cascade.validators import VerdictCache

__all__ = ["optimize"]


def optimize(dataset: str, options: Options) -> int:
    """Find, write and check the cheapest certified ladders; 2 when none can be certified."""
    options.check()
    paths = _out_paths(Path(options.out), _kinds_of(dataset, options), Path(dataset).name)
    found = search(dataset, options)
    facts = found.facts | {"guarantee": guarantee_facts(found, options)}
    chosen = found.result.chosen
    if chosen is None:
        _print_unreachable(facts, options)
        return 2
    written = _write(found, chosen.picks, paths, facts, options)
    facts |= _check(found, str(_policy_arg(paths)), chosen.cost_per_task, options)
    facts["ladders"] = {k: describe(found.found[k], i) for k, i in chosen.picks.items()}
    facts["written"] = [str(p) for p in written]
    print(json.dumps(facts, indent=2) if options.as_json else _render(facts))  # noqa: T201  # the report
    return 0


def _kinds_of(dataset: str, options: Options) -> list[str]:
    from cascade.bench.command import select_kinds  # noqa: PLC0415
    from cascade.bench.dataset import load_dataset  # noqa: PLC0415

    return select_kinds(load_dataset(dataset), options.kinds)


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


def _write(
    found: Optimized,
    picks: Mapping[str, int],
    paths: Mapping[str, Path],
    facts: Mapping[str, Any],
    options: Options,
) -> list[Path]:
    chosen = facts["guarantee"]["chosen"]
    header = [
        "Written by cascade optimize:",
        f"  {facts['command']}",
        f"Chosen on {facts['train_tasks']} training tasks: the cheapest ladders whose pass rate "
        f"is certified to reach {facts['target_pass_rate']:.1%}"
        + (
            " (the highest the selection part expected to certify)"
            if options.target is None
            else ""
        )
        + f". {facts['guarantee']['statement'][0].upper()}"
        f"{facts['guarantee']['statement'][1:]}.",
        f"On the {facts['certification_tasks']} certification tasks it passed "
        f"{chosen['certification_pass_rate']:.1%}, whose {options.confidence:.0%} lower bound is "
        f"{chosen['certified_pass_rate']:.1%}.",
        "Every tier but the last must pass its checks; the last, a strong model, is trusted.",
        "Model names are the dataset's: give them their provider prefix for live runs.",
        "Check it on the tasks the optimizer never saw:",
        f"  cascade bench {facts['dataset_path']} --policy THIS --split held-out"
        + "".join(f" --kind {k}" for k in options.kinds)
        + f" --holdout {options.holdout:g} --seed {options.seed}",
        "",
    ]
    user = found.user
    for kind, path in paths.items():
        if user is None or user.task_type != kind:
            text = policy_text(kind, tier_tables(found.found[kind], picks[kind]), header)
        else:
            tiers = tier_tables(found.found[kind], picks[kind], user.tiers)
            for tier in tiers:
                if "validators" in tier:
                    tier["validators"] = [relocated(v, user.path, path) for v in tier["validators"]]
            text = policy_text(kind, tiers, header, user.data)
        write_atomic(path, text)
    return list(paths.values())


def _check(
    found: Optimized, policy: str, simulated_cost: float, options: Options
) -> dict[str, Any]:
    """Replay the written policies through the engine on both splits."""
    cache = VerdictCache() if options.cache else None
    data = found.data
    cascades = policy_cascades(policy, data, ByKind(default_validators(cache)), cache)
    on_train = asyncio.run(score_policy(data.subset(found.train), cascades))
    chosen = found.result.chosen
    assert chosen is not None  # only a chosen ladder is checked
    simulated = (chosen.selected_rate * found.facts["selection_tasks"]
                 + chosen.certified_rate * found.facts["certification_tasks"])  # fmt: skip
    facts: dict[str, Any] = {
        "train": _figures(on_train),
        "simulated_train": {
            "pass_rate": round(simulated / max(1, found.facts["train_tasks"]), 6),
            "cost_per_task_usd": round(simulated_cost, 10),
        },
    }
    if found.held:
        held_data = data.subset(found.held)
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


def _print_unreachable(facts: Mapping[str, Any], options: Options) -> None:
    if options.as_json:
        print(json.dumps(facts, indent=2))  # noqa: T201  # the report
        return
    lines = [
        f"no ladder of {facts['dataset']}'s models could be certified to pass "
        f"{facts['target_pass_rate']:.1%} with probability {options.confidence:.0%}: on "
        f"{facts['certification_tasks']} certification tasks, the bound of the first candidate "
        "fell short; nothing was written",
    ]
    best = facts["guarantee"]["best"]
    if best is not None:
        lines += [
            f"the best candidate certifies {best['certified_pass_rate']:.1%} "
            f"(it passed {best['certification_pass_rate']:.1%} of the certification tasks):",
            *(f"  {kind}  {text}" for kind, text in best["ladders"].items()),
            "a lower target may be certified; choose it for what the job needs, not from this "
            "figure, or its guarantee no longer holds as stated",
        ]
    print("\n".join(lines))  # noqa: T201  # the report


def _render(facts: Mapping[str, Any]) -> str:
    chosen = facts["guarantee"]["chosen"]
    lines = [
        f"{facts['dataset']}: {facts['tasks']} tasks; chose on {facts['train_tasks']} "
        f"({facts['selection_tasks']} to order the candidates, {facts['certification_tasks']} "
        f"to certify them), held out {facts['held_out_tasks']} (seed {facts['seed']})",
        f"searched {facts['gates_searched']:,} gates and {facts['ladders_searched']:,} ladders "
        f"in {facts['search_s']:.1f} s; {facts['certified_candidates']} of "
        f"{facts['candidates_tested']} candidates certified",
        f"guarantee: {facts['guarantee']['statement']} (its bound: "
        f"{chosen['certified_pass_rate']:.1%})",
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
    lines += [_line(label, score, width) for label, score in rows]
    lines += ["", *(f"note: {n}" for n in facts["notes"])]
    lines += [f"wrote {p}" for p in facts["written"]]
    return "\n".join(lines)


def _line(label: str, score: Mapping[str, Any], width: int) -> str:
    low, high = score.get("pass_rate_ci95", (0.0, 0.0))
    return (
        f"  {label:{width}} {score['pass_rate']:>9.1%}  {f'{low:.1%} to {high:.1%}':>15}  "
        f"{score['cost_per_task_usd']:>10.6f}"
    )
