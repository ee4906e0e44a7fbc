"""What a run did, from its store: counts, pass and escalation rates, cost, latency, reasons.

``cascade run`` prints this summary at its end and ``cascade report STORE`` prints the same
for any store, so the two always agree.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cascade.audit.plan import proportion
from cascade.enums import SIDE_CALLS, CallKind
from cascade.gold import decoded, same_answer
from cascade.run.health import Health, health_of
from cascade.run.rejections import rejection_lines, rejections_by_check
from cascade.store import Store
from cascade.store.alarms import DriftAlarms
from cascade.store.queries import (
    attempts_for_summary,
    audited_answers,
    audits_skipped,
    results_for_summary,
    spending,
)

__all__ = [
    "Summary",
    "TierSummary",
    "alarm_lines",
    "audit_line",
    "render",
    "skipped_audit_lines",
    "spent_line",
    "summarize",
]


@dataclass
class TierSummary:
    """One tier of one task type."""

    tier: int
    models: list[str] = field(default_factory=list)
    reached: int = 0
    accepted: int = 0
    escalated: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    compute_s: float = 0.0
    calibration_calls: int = 0
    calibration_usd: float = 0.0
    """Calls made only to record the tier's answer (``--record-all-tiers``), in ``cost_usd``."""
    latencies: list[float] = field(default_factory=list)
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Failed verdicts by (check, reason)."""
    audited: int = 0
    """Accepted answers of the tier a shadow audit judged."""
    disagreed: int = 0
    audit_usd: float = 0.0
    """What auditing the tier's answers cost (not in ``cost_usd``)."""
    gold_checked: int = 0
    """Audited answers that have a gold answer (``cascade report --gold``)."""
    gold_wrong: int = 0

    def to_json(self) -> dict[str, Any]:
        """The tier's figures, as ``cascade report --json`` prints them."""
        audit = {}
        if self.audited or self.audit_usd:
            audit = {"audit": {
                "audited": self.audited,
                "disagreed": self.disagreed,
                **proportion("disagreement", self.disagreed, self.audited),
                "cost_usd": round(self.audit_usd, 8),
            }}  # fmt: skip
            if self.gold_checked:
                audit["audit"] |= {
                    "with_gold": self.gold_checked,
                    **proportion("false_accept", self.gold_wrong, self.gold_checked),
                }
        return audit | {
            "tier": self.tier,
            "models": self.models,
            "tasks_reached": self.reached,
            "accepted": self.accepted,
            "acceptance_rate": _rate(self.accepted, self.reached),
            "escalated": self.escalated,
            "escalation_rate": _rate(self.escalated, self.reached),
            "attempts": self.attempts,
            "cost_usd": round(self.cost_usd, 8),
            "compute_s": round(self.compute_s, 3),
            "calibration_calls": self.calibration_calls,
            "calibration_usd": round(self.calibration_usd, 8),
            "latency_p50_s": _percentile(self.latencies, 0.50),
            "latency_p95_s": _percentile(self.latencies, 0.95),
            "rejections": rejections_by_check(self.rejections),
        }


@dataclass
class Summary:
    """A summary of the results in a store (one run, or all of them)."""

    tasks: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    accepted_by_tier: Counter[int] = field(default_factory=Counter)
    escalated: int = 0
    cost_usd: float = 0.0
    """What the results' calls cost (audits not included)."""
    spent_usd: float = 0.0
    """What every stored call cost: the results', audits, repeated and cut-off calls."""
    audit_usd: float = 0.0
    """What the audits cost, of ``spent_usd``."""
    compute_s: float = 0.0
    by_type: dict[str, dict[int, TierSummary]] = field(default_factory=dict)
    health: Health = field(default_factory=Health)
    self_reported: int = 0
    """Test passes that the code under test could have forged (see ``passes_tests``)."""
    alarms: list[dict[str, Any]] = field(default_factory=list)
    """Drift alarms the run raised (see :mod:`cascade.audit.drift`)."""
    audits_skipped: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Audits skipped because their worst cost would pass the cap, per task type, and the cap."""

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON object."""
        return {
            "tasks": self.tasks,
            "statuses": dict(sorted(self.statuses.items())),
            "accepted_by_tier": {str(t): n for t, n in sorted(self.accepted_by_tier.items())},
            "acceptance_rate": _rate(self.statuses["accepted"], self.tasks),
            "escalation_rate": _rate(self.escalated, self.tasks),
            "cost_usd": round(self.cost_usd, 8),
            "spent_usd": round(self.spent_usd, 8),
            "audit_usd": round(self.audit_usd, 8),
            "compute_s": round(self.compute_s, 3),
            "by_type": {
                kind: [tiers[t].to_json() for t in sorted(tiers)]
                for kind, tiers in sorted(self.by_type.items())
            },
            "provider_health": self.health.to_json(),
            "self_reported_passes": self.self_reported,
            "audits_skipped": {
                kind: {"skipped": count, "cap_usd": cap}
                for kind, (count, cap) in sorted(self.audits_skipped.items())
            },
            "drift_alarms": [
                {k: a[k] for k in ("task_type", "tier", "signal", "text", "escalate")}
                | {"cleared": a["cleared_at"] is not None}
                for a in self.alarms
            ],
        }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 6)


def summarize(
    store: Store, run_id: str | None = None, gold: Mapping[str, Any] | None = None
) -> Summary:
    """Summarise the store's results and attempts, for one run or for all of them.

    With ``gold`` answers, each tier's audited answers that have one are graded: an estimate of
    the tier's false-accept rate on its audit sample.
    """
    summary = Summary()
    for task_type, status, tier, cost, compute in results_for_summary(store, run_id):
        summary.tasks += 1
        summary.statuses[status] += 1
        summary.cost_usd += cost
        summary.compute_s += compute
        if status == "accepted" and tier is not None:
            summary.accepted_by_tier[tier] += 1
        summary.by_type.setdefault(task_type, {})
    _add_attempts(store, summary, run_id)
    summary.spent_usd, summary.audit_usd = spending(store, run_id)
    summary.audits_skipped = audits_skipped(store, run_id)
    if gold is not None:
        _grade_audited(store, summary, run_id, gold)
    summary.health = health_of(store, run_id)
    summary.alarms = DriftAlarms(store).of_run(run_id)
    return summary


def _grade_audited(
    store: Store, summary: Summary, run_id: str | None, gold: Mapping[str, Any]
) -> None:
    """Grade each audited answer that has a gold answer."""
    for task_id, task_type, tier, _, output, parsed in audited_answers(store, run_id):
        if task_id not in gold:
            continue
        entry = summary.by_type.setdefault(task_type, {}).setdefault(tier, TierSummary(tier))
        found = json.loads(parsed) if parsed is not None else decoded(output)
        entry.gold_checked += 1
        entry.gold_wrong += not same_answer(found, gold[task_id])


def _add_attempts(store: Store, summary: Summary, run_id: str | None) -> None:
    """Per-tier figures from the attempts of tasks that have a result.

    A task waiting for review has reached the human tier, where it has no attempt yet.
    """
    rows = attempts_for_summary(store, run_id)
    current: tuple[str, str, str] | None = None
    tiers: set[int] = set()
    accepted: set[int] = set()
    for row in rows:
        run, task, task_type, tier, model, kind, cost, latency, verdicts, decision = row[:10]
        if (run, task, task_type) != current:
            _close_task(summary, current, tiers, accepted)
            current, tiers, accepted = (run, task, task_type), set(), set()
            if row[11] == "needs_review":
                tiers.add(_waiting(summary, task_type, row[12], row[13]))
        entry = summary.by_type.setdefault(task_type, {}).setdefault(tier, TierSummary(tier))
        if kind == CallKind.AUDIT:
            entry.audit_usd += cost
            entry.audited += decision in ("agree", "disagree")
            entry.disagreed += decision == "disagree"
            continue
        entry.cost_usd += cost
        entry.compute_s += row[10]
        if kind == CallKind.CALIBRATION:
            entry.calibration_calls += 1
            entry.calibration_usd += cost
            if model not in entry.models:
                entry.models.append(model)
        if kind in SIDE_CALLS:
            continue
        entry.attempts += 1
        entry.latencies.append(latency)
        if model not in entry.models:
            entry.models.append(model)
        tiers.add(tier)
        if decision == "accept":  # once per task: a task run twice (a lost lease) accepts twice
            accepted.add(tier)
        for verdict in json.loads(verdicts):
            if not verdict.get("passed"):
                check = str(verdict.get("validator") or "check")[:80]
                entry.rejections[(check, str(verdict.get("reason") or "")[:160])] += 1
            summary.self_reported += bool(verdict.get("passed") and verdict.get("self_reported"))
    _close_task(summary, current, tiers, accepted)


def _waiting(summary: Summary, task_type: str, tier: int, model: str) -> int:
    """The human tier a task waits at, entered in the report."""
    entry = summary.by_type.setdefault(task_type, {}).setdefault(tier, TierSummary(tier))
    if model not in entry.models:
        entry.models.append(model)
    return tier


def _close_task(
    summary: Summary, task: tuple[str, str, str] | None, tiers: set[int], accepted: set[int]
) -> None:
    """Count a finished task's tiers: reached, accepted at, and escalated from."""
    if task is None:
        return
    for tier in tiers:
        entry = summary.by_type[task[2]][tier]
        entry.reached += 1
        entry.accepted += tier in accepted
        entry.escalated += any(other > tier for other in tiers)
    summary.escalated += len(tiers) > 1


def render(summary: Summary) -> str:
    """The report as text for people."""
    data = summary.to_json()
    statuses = ", ".join(f"{k} {v}" for k, v in data["statuses"].items()) or "none"
    by_tier = ", ".join(f"tier {k}: {v}" for k, v in data["accepted_by_tier"].items()) or "none"
    lines = [
        f"tasks {data['tasks']}: {statuses}",
        f"accepted by tier: {by_tier}",
        f"acceptance rate {data['acceptance_rate']:.1%}, "
        f"escalation rate {data['escalation_rate']:.1%}, "
        f"cost ${data['cost_usd']:.6f}" + _compute(data["compute_s"]),
        spent_line(data),
    ]
    for task_type, tiers in data["by_type"].items():
        lines.append(f"{task_type}:")
        for tier in tiers:
            p50, p95 = tier["latency_p50_s"], tier["latency_p95_s"]
            latency = f"p50 {p50:.3f}s p95 {p95:.3f}s" if p50 is not None else "no calls"
            lines.append(
                f"  tier {tier['tier']} {'/'.join(tier['models'])}: reached {tier['tasks_reached']}"
                f", accepted {tier['acceptance_rate']:.1%}, escalated {tier['escalation_rate']:.1%}"
                f", {tier['attempts']} attempts, ${tier['cost_usd']:.6f}"
                f"{_compute(tier['compute_s'])}, {latency}"
            )
            if tier["calibration_calls"]:
                lines.append(
                    f"      of which {tier['calibration_calls']} calls for the record "
                    f"(--record-all-tiers), ${tier['calibration_usd']:.6f}"
                )
            lines += [f"      {line}" for line in rejection_lines(tier["rejections"])]
            if "audit" in tier:
                lines.append(audit_line(tier["audit"]))
    lines += skipped_audit_lines(data)
    lines += summary.health.lines()
    if summary.self_reported:
        lines.append(_self_reported(summary.self_reported))
    lines += alarm_lines(summary)
    return "\n".join(lines)


def spent_line(data: dict[str, Any]) -> str:
    """Every call's cost, audits included (the run's ``spent``), and what it went to."""
    results, audits, spent = data["cost_usd"], data["audit_usd"], data["spent_usd"]
    other = spent - results - audits
    line = f"spent ${spent:.6f} in all: ${results:.6f} in the results, ${audits:.6f} on audits"
    if other > 5e-9:
        line += f", ${other:.6f} on calls no result counts (repeated, cut off, retried, unfinished)"
    return line


def skipped_audit_lines(data: dict[str, Any]) -> list[str]:
    """The audits each task type skipped for its cap, one line each."""
    return [
        f"{kind}: {skip['skipped']} audits skipped: the audit cap of ${skip['cap_usd']:g}"
        " was reached"
        for kind, skip in data["audits_skipped"].items()
        if skip["skipped"]
    ]


def alarm_lines(summary: Summary) -> list[str]:
    """The run's drift alarms, one line each."""
    return [a["text"] + (" (cleared)" if a["cleared_at"] is not None else "")
            for a in summary.alarms]  # fmt: skip


def audit_line(audit: dict[str, Any]) -> str:
    """A tier's shadow audits: how often the audit disagreed, with its 95 % interval."""
    low, high = audit["disagreement_ci95"]
    line = (f"      audited {audit['audited']} accepted answers: {audit['disagreed']} disagreed "
            f"({audit['disagreement_rate']:.1%}, 95% interval {low:.1%} to {high:.1%}), "
            f"audits cost ${audit['cost_usd']:.6f}")  # fmt: skip
    if "with_gold" in audit:
        low, high = audit["false_accept_ci95"]
        line += (f"; of {audit['with_gold']} with gold, {audit['false_accept_rate']:.1%} "
                 f"wrongly accepted (95% interval {low:.1%} to {high:.1%})")  # fmt: skip
    return line


def _self_reported(count: int) -> str:
    return (
        f"self-reported test passes: {count} (tests that ran with the code in their own"
        " process, which could have forged them; isolated_tests_only = true refuses them)"
    )


def _compute(seconds: float) -> str:
    """Local compute, shown where there was any: it is what a local model costs instead."""
    return f" + {seconds:.1f} s of local compute" if seconds else ""
