"""``cascade optimize``: search, write the chosen policies, replay them, and print the report."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.bench.dataset import load_dataset
from cascade.bench.suite import select_kinds
from cascade.cli.say import say, say_json
from cascade.optimize.certify_written import certify_written
from cascade.optimize.pipeline import Options, guarantee_facts, search
from cascade.optimize.watch import served_model
from cascade.optimize.write import describe
from cascade.optimize.written import (
    calibrate,
    check_written,
    out_paths,
    policy_arg,
    policy_header,
    write_policies,
)
from cascade.traffic.truth import read_truth

__all__ = ["command", "options_of"]


def options_of(args: argparse.Namespace) -> Options:
    """The :class:`Options` the command line asks for."""
    return Options(
        target=args.target_pass_rate,
        out=args.out,
        holdout=args.holdout,
        seed=args.seed,
        confidence=args.confidence,
        select=args.select,
        max_tiers=args.max_tiers,
        max_reasks=args.max_reasks,
        any_last_tier=not args.strong_last_tier,
        any_order=args.any_order,
        kinds=tuple(args.kind or ()),
        policy=args.policy,
        cache=not args.no_cache,
        as_json=args.json,
        max_p95_s=args.max_p95_latency,
        batch_tiers=tuple(args.batch_tier),
        batch_discount=args.batch_discount,
        router=args.router,
        per_kind=args.per_kind,
        audit_share=args.audit_share,
    )


def command(args: argparse.Namespace) -> int:
    """Find, write and check the cheapest certified ladders; 2 when none can be certified."""
    options = options_of(args)
    options.check()
    kinds = select_kinds(load_dataset(args.dataset), options.kinds)
    paths = out_paths(Path(options.out), kinds, Path(args.dataset).name)
    found = certify_written(search(args.dataset, options), options)
    facts = found.facts | {"guarantee": guarantee_facts(found, options)}
    truth = read_truth(Path(args.dataset))
    if truth is not None:  # the dataset's own traffic: say what its 'correct' means
        facts["truth"] = truth.to_json()
    chosen = found.result.chosen
    if chosen is None:
        _unreachable(facts, options)
        return 2
    header = policy_header(found, facts, options)
    write_policies(found, chosen.picks, paths, header, options)
    served = served_model(Path(args.dataset)) if options.audit_share > 0 else None
    calibration = calibrate(found, paths, options, served)  # replayed: the drift baselines
    written = write_policies(found, chosen.picks, paths, header, options, calibration)
    facts["drift_acceptance"] = calibration.acceptance
    if calibration.watches:  # the dataset's own traffic: the served model stays the reference
        facts["watch"] = {k: {"audit": w.audit, "drift_disagreement": w.disagreement}
                          for k, w in calibration.watches.items()}  # fmt: skip
    facts |= check_written(found, str(policy_arg(paths)), options)
    facts["ladders"] = {k: describe(found.found[k], i) for k, i in chosen.picks.items()}
    facts["written"] = [str(p) for p in written]
    if options.as_json:
        say_json(facts)
    else:
        say(_render(facts))
    return 0


def _unreachable(facts: Mapping[str, Any], options: Options) -> None:
    if options.as_json:
        say_json(facts)
        return
    lines = [
        f"no ladder of {facts['dataset']}'s models could be certified to pass "
        f"{facts['target_pass_rate']:.1%} with probability {options.confidence:.0%}: on "
        f"{facts['certification_tasks']} certification tasks, the bound of the first candidate "
        "fell short; nothing was written",
        *_means(facts),
    ]
    best = facts["guarantee"]["best"]
    if best is not None:
        lines += [
            f"the first candidate passed {best['certification_pass_rate']:.1%} of the "
            f"certification tasks (its lower bound: {best['chosen_lower_bound']:.1%}):",
            *(f"  {kind}  {text}" for kind, text in best["ladders"].items()),
            "a lower target may be certified; choose it for what the job needs, not from this "
            "figure, or its guarantee no longer holds as stated",
        ]
    say("\n".join(lines))


def _render(facts: Mapping[str, Any]) -> str:
    chosen = facts["guarantee"]["chosen"]
    lines = [
        f"{facts['dataset']}: {facts['tasks']} tasks; chose on {facts['train_tasks']} "
        f"({facts['selection_tasks']} to order the candidates, {facts['certification_tasks']} "
        f"to certify them), held out {facts['held_out_tasks']} (seed {facts['seed']})",
        f"searched {facts['gates_searched']:,} gates and {facts['ladders_searched']:,} ladders "
        f"in {facts['search_s']:.1f} s; {facts['certified_candidates']} of "
        f"{facts['candidates_tested']} candidates certified",
        f"guarantee: {facts['guarantee']['statement']}; the certified figure is the target, "
        "for the policy files as written (each candidate was replayed through the engine on "
        "the certification tasks)",
        f"the chosen ladder's own lower bound, {chosen['chosen_lower_bound']:.1%}, is not "
        "covered: the data chose it; another try on the same data (seed, target, settings) "
        "spends the guarantee again",
        *_means(facts),
        *_differences(facts),
        "",
    ]
    width = max(map(len, facts["ladders"]))
    lines += [f"  {k:{width}}  {text}" for k, text in facts["ladders"].items()]
    rows: list[tuple[str, Mapping[str, Any]]] = [("in sample (engine replay)", facts["train"])]
    if "held_out" in facts:
        models = facts["held_out_models"]
        best, cheapest = facts["held_out_best_model"], facts["held_out_cheapest_equal_model"]
        equal = f"held out: cheapest model as good (in the best's interval), {cheapest}"
        rows += [
            ("held out (engine replay)", facts["held_out"]),
            (f"held out: best model, {best}", models[best]),
            *([(equal, models[cheapest])] if cheapest != best else []),
            ("held out: oracle", facts["held_out_oracle"]),
        ]
    width = max(len(label) for label, _ in rows)
    lines += ["", f"  {'':{width}} {'pass rate':>9}  {'95% interval':>15}  {'$/task':>10}"
              f"  {'p95 s':>6}"]  # fmt: skip
    lines += [_line(label, score, width) for label, score in rows]
    lines += ["", *(f"note: {n}" for n in facts["notes"])]
    lines += [f"batch: {model} priced at {source}; its tiers are written with mode = \"batch\""
              for model, source in facts["batch_pricing"].items()]  # fmt: skip
    for kind, watch in facts.get("watch", {}).items():
        audit, rates = watch["audit"], watch["drift_disagreement"]
        lines.append(
            f"after the switch: {kind} audits {audit['share']:.0%} of each tier's accepted "
            f"answers against {audit['model']}, which served this traffic; drift alarms watch "
            f"the disagreement, calibrated by tier at {', '.join(f'{r:.1%}' for r in rates)}"
            if rates
            else f"after the switch: {kind} audits {audit['share']:.0%} of each tier's accepted "
            f"answers against {audit['model']}, which served this traffic"
        )
    lines += [f"wrote {p}" for p in facts["written"]]
    return "\n".join(lines)


def _means(facts: Mapping[str, Any]) -> list[str]:
    """What 'correct' means on the dataset, when it says (``cascade truth``)."""
    return [f"correct means: {facts['truth']['means']}"] if "truth" in facts else []


def _differences(facts: Mapping[str, Any]) -> list[str]:
    """A loud line when the simulation and the written policy's replay disagree."""
    differs = facts.get("simulation_differs_on") or []
    if not differs:
        return []
    shown = ", ".join(differs[:8]) + (" ..." if len(differs) > 8 else "")
    return [
        f"WARNING: on {len(differs)} certification tasks the search's simulation and the written "
        f"policy's replay disagree ({shown}); the certified count is the replay's "
        f"({facts['guarantee']['chosen']['certification_pass_rate']:.1%}, simulated "
        f"{facts.get('simulated_certification_pass_rate', 0.0):.1%})"
    ]


def _line(label: str, score: Mapping[str, Any], width: int) -> str:
    low, high = score.get("pass_rate_ci95", (0.0, 0.0))
    return (
        f"  {label:{width}} {score['pass_rate']:>9.1%}  {f'{low:.1%} to {high:.1%}':>15}  "
        f"{score['cost_per_task_usd']:>10.6f}  {score.get('latency_p95_s', 0.0):>6.2f}"
    )
