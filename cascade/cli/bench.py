"""``cascade bench``: replay a recorded dataset through ladders; print cost against pass rate."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.audit.plan import AuditPlan
from cascade.bench.charts import write_report
from cascade.bench.dataset import Dataset
from cascade.bench.suite import WhatIf, bench, default_validators
from cascade.bench_columns import legend
from cascade.cli.say import say, say_json
from cascade.errors import ConfigError
from cascade.traffic.truth import read_truth

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Score every model, the oracle and each ladder; print a table or JSON."""
    found = bench(
        args.dataset,
        args.ladder,
        policies=args.policy,
        concurrency=max(1, args.concurrency),
        split=(args.split, args.holdout, args.seed),
        gold=args.gold,
        kinds=tuple(args.kind or ()),
        cache=not args.no_cache,
        whatif=WhatIf(args.deadline, tuple(args.batch_tier), args.batch_discount, _audit(args)),
    )
    truth = read_truth(Path(args.dataset)) if Path(args.dataset).is_dir() else None
    if truth is not None:  # the dataset's own traffic: say what its 'correct' means
        found.results["truth"] = truth.to_json()
    if found.exported is not None and not args.json:
        say(f"{args.dataset}: {found.exported.tasks} tasks answered by every tier"
            f" ({found.exported.skipped} others left out)")  # fmt: skip
    if args.json:
        say_json(found.results)
    else:
        say(_table(found.results, found.data, checked=bool(args.ladder)))
    if args.report is not None:  # after the table: a folder that cannot be written loses nothing
        markdown, picture, page = write_report(found.results, args.report)
        if not args.json:
            say(f"wrote {page}, {markdown} and {picture}")
    return 0


def _table(results: dict[str, Any], data: Dataset, *, checked: bool) -> str:
    """The report; ``checked``: some ladder came from ``--ladder``, so say what checks it."""
    validators = default_validators()
    kinds = sorted({task.type for task in data.tasks})
    lines = [
        f"{data.name}: {results['tasks']} tasks ({results['split']}), replayed (no model calls)"
    ]
    if checked:
        lines.append("--ladder ladders are checked with: "
                     + ", ".join(f"{k}: {v!r}" for k, v in validators.items())
                     + " (policies bring their own validators)")  # fmt: skip
    for model, source in results.get("batch_pricing", {}).items():
        lines.append(f"batch rows price {model} at {source}; their latencies are the "
                     "synchronous calls' (a provider runs a batch within 24 h)")  # fmt: skip
    if "truth" in results:
        lines.append(f"correct means: {results['truth']['means']}")
    unchecked = [k for k in kinds if k not in validators]
    if checked and unchecked:
        lines.append(f"  and accept unchecked: {', '.join(unchecked)}")
    rows = [(f"model  {n}", s) for n, s in sorted(results["models"].items(), key=_by_cost)]
    rows.append(("oracle (cheapest correct model per task)", results["oracle"]))
    partial = results["partial_models"]
    if partial:
        lines.append(
            "not in the model rows, for answering only some of the tasks: "
            + ", ".join(f"{m} ({n} of {results['tasks']})" for m, n in partial.items())
        )
    unpriced = results["unpriced_models"]
    if unpriced:
        lines.append(
            "not in the model rows or the oracle, for want of a price (replayed at $0): "
            + ", ".join(f"{m} (pass rate {s['pass_rate']:.1%})" for m, s in unpriced.items())
        )
    width = max(len(label) for label, _ in rows + [(f"ladder {n}", 0) for n in results["ladders"]])
    lines += [
        "",
        "pass rate: accepted and right. delivered: right, accepted or not (best rejected kept).",
        "(every column is defined at the end, and in cascade bench --help)",
        f"{'':{width}} {'pass rate':>9} {'$/task':>10} {'total $':>9} {'p50 s':>6} {'p95 s':>6}"
        f" {'delivered':>9}",
    ]
    lines += [_row(label, score, width) for label, score in rows]
    for name, score in results["ladders"].items():
        lines.append(_row(f"ladder {name}", score, width) + f" {score['delivered_rate']:>9.1%}")
        lines.append(
            f"{'':9}accepted by tier {score['accepted_by_tier']}, escalated "
            f"{score['escalation_rate']:.1%}, false accepts {score['false_accept_rate']:.1%}, "
            f"false rejects {score['false_reject_rate']:.1%}, statuses {score['statuses']}"
        )
        if "audit" in score:
            lines.append(_audit_line(score["audit"]))
    lines += ["", "columns:", *legend()]
    return "\n".join(lines)


def _by_cost(item: tuple[str, Mapping[str, Any]]) -> float:
    return float(item[1]["cost_usd"])


def _row(label: str, score: Mapping[str, Any], width: int) -> str:
    return (
        f"{label:{width}} {score['pass_rate']:>9.1%} {score['cost_per_task_usd']:>10.6f} "
        f"{score['cost_usd']:>9.4f} {score['latency_p50_s']:>6.2f} {score['latency_p95_s']:>6.2f}"
    )


def _audit(args: argparse.Namespace) -> AuditPlan | None:
    """The audit ``--audit-share`` and ``--audit-model`` ask for, both or neither."""
    if args.audit_share is None and args.audit_model is None:
        return None
    if args.audit_share is None or args.audit_model is None:
        raise ConfigError("--audit-share and --audit-model go together")
    if not 0.0 < args.audit_share <= 1.0:
        raise ConfigError(f"--audit-share must be above 0 and at most 1, not {args.audit_share:g}")
    return AuditPlan(share=args.audit_share, model=args.audit_model, seed=args.audit_seed)


def _audit_line(audit: dict[str, Any]) -> str:
    """What the audit would have found: disagreements, the truth behind them, and the cost."""
    total = audit["total"]
    low, high = total["disagreement_ci95"]
    return (f"{'':9}audit by {audit['model']} at {audit['share']:.0%}: {total['audited']} "
            f"audited, {total['disagreed']} disagreed ({total['disagreement_rate']:.1%}, 95% "
            f"{low:.1%} to {high:.1%}); truly wrong {total['wrongly_accepted']} "
            f"({total['false_accept_rate']:.1%}), caught {total['caught']}; "
            f"${total['cost_usd']:.6f}")  # fmt: skip
