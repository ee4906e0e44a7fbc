"""``cascade report STORE --html DIR``: a run's report as one self-contained page.

It shows what the terminal report shows (statuses, each tier's acceptance, rejections by check,
cost, latency percentiles, provider health, audits with their intervals, drift alarms, the
review queue), and draws the charts: statuses, acceptance by tier, money over the run, latency
by tier, and the alarms on a timeline. Tasks are aggregated, never listed whole: a bounded sample
(the costliest, and the first of each status) links to a section per task with its steps,
verdicts and costs, as ``cascade show`` prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cascade.html.page import Raw, document, esc, table, write_page
from cascade.html.svg import TIMELINE_ROWS, Series, Span, bars, lines, timeline
from cascade.outcome import Outcome, Step
from cascade.run.summary import Summary
from cascade.store import Store
from cascade.store.timeline import NotableTask, cost_over_time, notable_tasks, run_span

__all__ = ["run_page", "write_run_page"]


def write_run_page(store: Store, run_id: str | None, summary: Summary, folder: str | Path) -> Path:
    """Write the report of ``run_id`` (every run: ``None``) as ``folder/index.html``."""
    return write_page(folder, run_page(store, run_id, summary))


def run_page(store: Store, run_id: str | None, summary: Summary) -> str:
    """The page's HTML."""
    data = summary.to_json()
    tasks = notable_tasks(store, run_id)
    anchors = {(t.run_id, t.task_id): f"task-{n}" for n, t in enumerate(tasks)}
    sections = [
        ("overview", "Overview", _overview(data)),
        ("tiers", "Tiers", _tiers(data)),
        ("cost", "Cost over the run", _cost(store, run_id)),
        ("latency", "Latency", _latency(data)),
        ("health", "Provider health", _health(data)),
        ("audits", "Audits", _audits(data)),
        ("drift", "Drift alarms", _drift(store, run_id, summary)),
        ("tasks", "Tasks", _task_list(tasks, anchors) + _task_details(store, tasks, anchors)),
    ]
    which = "every run" if run_id is None else f"run {run_id}"
    title = f"cascade report: {which}"
    return document(title, f"{store.path}: {data['tasks']} tasks", sections)


def _overview(data: dict[str, Any]) -> str:
    statuses = list(data["statuses"].items())
    review = data["statuses"].get("needs_review", 0)
    facts = [
        ("tasks", data["tasks"]),
        ("acceptance rate (accepted by a check, not judged against gold)",
         f"{data['acceptance_rate']:.1%}"),
        ("escalation rate", f"{data['escalation_rate']:.1%}"),
        ("cost of the results", f"${data['cost_usd']:.6f}"),
        ("local compute, seconds (what a local model costs instead)", f"{data['compute_s']:.1f}"),
        ("spent in all (audits, retries and cut-off calls included)", f"${data['spent_usd']:.6f}"),
        ("of which audits", f"${data['audit_usd']:.6f}"),
        ("review queue (needs_review)", review),
        ("test passes the code under test could have forged", data["self_reported_passes"]),
    ]  # fmt: skip
    return (
        table(["", ""], facts, numeric=[1], name="facts")
        + table(["status", "tasks"], statuses, numeric=[1], name="statuses")
        + bars(
            "statuses",
            "tasks by status",
            [(s, float(n)) for s, n in statuses],
            "tasks",
            y_format=".0f",
        )
    )


def _tiers(data: dict[str, Any]) -> str:
    parts = []
    for kind, tiers in data["by_type"].items():
        rows = [
            (t["tier"], "/".join(t["models"]), t["tasks_reached"], t["accepted"],
             f"{t['acceptance_rate']:.1%}", t["escalated"], f"{t['escalation_rate']:.1%}",
             t["attempts"], f"${t['cost_usd']:.6f}", f"{t['compute_s']:.1f}",
             f"{t['calibration_calls']} (${t['calibration_usd']:.6f})")
            for t in tiers
        ]  # fmt: skip
        parts.append(f"<h3>{esc(kind)}</h3>")
        parts.append(table(["tier", "models", "reached", "accepted", "acceptance rate",
                            "escalated", "escalation rate", "attempts", "cost",
                            "local compute s", "calls for the record (--record-all-tiers)"],
                           rows, numeric=[0, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                           name=f"tiers-{kind}"))  # fmt: skip
        parts.append(bars(f"acceptance-{kind}", f"{kind}: acceptance rate by tier",
                          [(f"tier {t['tier']}", t["acceptance_rate"]) for t in tiers],
                          "acceptance rate", y_format=".0%", top=1.0))  # fmt: skip
        for tier in tiers:
            if not tier["rejections"]:
                continue
            why = [
                (r["check"], r["count"], "; ".join(f"{n} x {reason or '(no reason given)'}"
                                                  for reason, n in r["examples"]))
                for r in tier["rejections"]
            ]  # fmt: skip
            parts.append(table(["check", "rejected", "most frequent reasons"], why, numeric=[1],
                               caption=f"tier {tier['tier']}: why answers were rejected",
                               name=f"rejections-{kind}-{tier['tier']}"))  # fmt: skip
    return "\n".join(parts) or '<p class="empty">No task reached a tier.</p>'


def _cost(store: Store, run_id: str | None) -> str:
    points = cost_over_time(store, run_id)
    spent = Series("dollars spent", [(t, usd) for t, usd, _ in points])
    calls = Series("calls made", [(t, float(n)) for t, _, n in points])
    return (
        lines("cost", "dollars spent over the run", [spent], "seconds since the first call",
              "US dollars (cumulative)", y_format=".3g")
        + lines("calls", "calls made over the run", [calls], "seconds since the first call",
                "calls (cumulative)", y_format=".0f")
    )  # fmt: skip


def _latency(data: dict[str, Any]) -> str:
    rows, items = [], []
    for kind, tiers in data["by_type"].items():
        for t in tiers:
            p50, p95 = t["latency_p50_s"], t["latency_p95_s"]
            rows.append((kind, t["tier"], "-" if p50 is None else f"{p50:.3f}",
                         "-" if p95 is None else f"{p95:.3f}"))  # fmt: skip
            if p95 is not None:
                items.append((f"tier {t['tier']}: {kind}", float(p95)))
    chart = bars("latency", "p95 latency by tier", items, "seconds")
    return table(["task type", "tier", "p50 s", "p95 s"], rows, numeric=[1, 2, 3],
                 name="latency") + chart  # fmt: skip


def _health(data: dict[str, Any]) -> str:
    health = data["provider_health"]
    errors = list(health["provider_errors"].items()) or [("none", 0)]
    facts = [
        ("breaker trips", health["breaker_trips"]),
        ("seconds waited for providers", health["waited_s"]),
        ("escalations by a validator", health["escalations"]["validator"]),
        ("escalations by a provider error", health["escalations"]["provider"]),
    ]
    failures = health["top_failure_reasons"]
    return (
        table(["provider error", "calls"], errors, numeric=[1], name="provider-errors")
        + table(["", ""], facts, numeric=[1], name="health")
        + (table(["failure reason", "tasks"], failures, numeric=[1], name="failures")
           if failures else "")
    )  # fmt: skip


def _audits(data: dict[str, Any]) -> str:
    rows = []
    for kind, tiers in data["by_type"].items():
        for t in tiers:
            audit = t.get("audit")
            if audit is None:
                continue
            low, high = audit["disagreement_ci95"]
            wrong = ""
            if "with_gold" in audit:
                a, b = audit["false_accept_ci95"]
                wrong = f"{audit['false_accept_rate']:.1%} ({a:.1%} to {b:.1%})"
            rows.append((kind, t["tier"], audit["audited"], audit["disagreed"],
                         f"{audit['disagreement_rate']:.1%}", f"{low:.1%} to {high:.1%}", wrong,
                         f"${audit['cost_usd']:.6f}"))  # fmt: skip
    skipped = [(k, v["skipped"], f"${v['cap_usd']:.6f}") for k, v in data["audits_skipped"].items()]
    if not rows and not skipped:
        return '<p class="empty">No answer of this run was audited.</p>'
    return table(["task type", "tier", "audited", "disagreed", "disagreement rate",
                  "95 % interval", "false accepts vs gold (95 % interval)", "cost"], rows,
                 numeric=[1, 2, 3, 4], name="audits") + (
        table(["task type", "audits skipped for the cap", "cap"], skipped, numeric=[1],
              name="audits-skipped") if skipped else "")  # fmt: skip


def _drift(store: Store, run_id: str | None, summary: Summary) -> str:
    alarms = summary.alarms
    if not alarms:
        return '<p class="empty">No drift alarm was raised.</p>'
    span = run_span(store, run_id)
    start = min([a["raised_at"] for a in alarms] + ([span[0]] if span else []))
    end = max([a["cleared_at"] or a["raised_at"] for a in alarms] + ([span[1]] if span else []))
    spans = [Span(f"tier {a['tier']} {a['signal']}: {a['task_type']}", a["raised_at"],
                  a["cleared_at"]) for a in alarms]  # fmt: skip
    rows = [(f"{a['raised_at'] - start:.1f}", a["task_type"], a["tier"], a["signal"], a["text"],
             "yes" if a["escalate"] else "no", "yes" if a["cleared_at"] is not None else "no")
            for a in alarms]  # fmt: skip
    more = len(spans) - TIMELINE_ROWS
    drawn = f"<p>The first {TIMELINE_ROWS} are drawn; the table has all {len(spans)}.</p>"
    return timeline("drift", "drift alarms over the run", spans, start, end) + (
        drawn if more > 0 else "") + table(
        ["raised at s", "task type", "tier", "signal", "what", "escalates", "cleared"], rows,
        numeric=[0, 2], name="alarms")  # fmt: skip


def _task_list(tasks: list[NotableTask], anchors: dict[tuple[str, str], str]) -> str:
    if not tasks:
        return '<p class="empty">No task has a result.</p>'
    rows = [(Raw(f'<a href="#{anchors[(t.run_id, t.task_id)]}">{esc(t.task_id)}</a>'),
             t.task_type, t.status, f"${t.cost_usd:.6f}", t.why) for t in tasks]  # fmt: skip
    return ("<p>A sample, not every task: the costliest, and the first of each status. "
            "<code>cascade show STORE TASK_ID</code> shows any task.</p>"
            + table(["task", "type", "status", "cost", "picked as"], rows, numeric=[3],
                    name="tasks"))  # fmt: skip


def _task_details(
    store: Store, tasks: list[NotableTask], anchors: dict[tuple[str, str], str]
) -> str:
    parts = []
    for task in tasks:
        outcome = store.outcome(task.run_id, task.task_id)
        steps = store.steps(task.run_id, task.task_id)
        parts.append(_task(anchors[(task.run_id, task.task_id)], task, outcome, steps))
    return "\n".join(parts)


def _task(anchor: str, task: NotableTask, outcome: Outcome | None, steps: list[Step]) -> str:
    head = f"{task.status}, ${task.cost_usd:.6f}, {len(steps)} step{'s' * (len(steps) != 1)}"
    parts = [f'<div class="task" id="{anchor}"><h3>{esc(task.task_id)}</h3>',
             f'<p class="meta">run {esc(task.run_id)}, {esc(task.task_type)}: '
             f"{esc(head)}</p>"]  # fmt: skip
    if outcome is not None:
        parts += [f"<p>reason: {esc(reason)}</p>" for reason in outcome.reasons]
        if outcome.output is not None:
            parts.append(f"<pre>{esc(_short(outcome.output))}</pre>")
    rows = []
    for step in steps:
        checks = "".join(
            f'<div class="{"pass" if v.passed else "fail"}">{"pass" if v.passed else "fail"} '
            f"{esc(v.validator)}{': ' + esc(_short(v.reason)) if v.reason else ''}</div>"
            for v in step.verdicts
        )
        if step.error:
            checks += f'<div class="fail">error: {esc(_short(step.error))}</div>'
        served = f" → {step.model_served}" if step.model_served else ""
        rows.append((step.step, step.tier, str(step.kind), step.model_requested + served,
                     str(step.decision), f"{step.prompt_tokens}+{step.completion_tokens}",
                     f"${step.cost_usd:.6f}", f"{step.latency_s:.3f}", Raw(checks),
                     _short(step.output or "", 200)))  # fmt: skip
    parts.append(table(["step", "tier", "kind", "model", "decision", "tokens", "cost", "s",
                        "verdicts", "answer"], rows, numeric=[0, 1, 6, 7]))  # fmt: skip
    parts.append('<p><a href="#tasks">back to the tasks</a></p></div>')
    return "\n".join(parts)


def _short(text: str, limit: int = 600) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
