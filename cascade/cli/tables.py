"""The run summary as rich tables on a terminal, as the plain lines of :func:`render` elsewhere."""

from __future__ import annotations

import sys
from typing import IO, Any

from cascade.run.rejections import rejection_lines
from cascade.run.summary import (
    Summary,
    alarm_lines,
    audit_line,
    render,
    skipped_audit_lines,
    spent_line,
)

__all__ = ["show_summary"]


def show_summary(summary: Summary, stream: IO[str] | None = None) -> None:
    """Print ``summary``: rich tables when the output is a terminal, plain lines otherwise."""
    out = stream if stream is not None else sys.stdout
    if not bool(getattr(out, "isatty", lambda: False)()):
        out.write(render(summary) + "\n")
        return
    from rich.console import Console  # noqa: PLC0415  # only terminals pay for rich
    from rich.table import Table  # noqa: PLC0415

    data = summary.to_json()
    console = Console(file=out, force_terminal=True)
    statuses = ", ".join(f"{k} {v}" for k, v in data["statuses"].items()) or "none"
    console.print(
        f"tasks {data['tasks']}: {statuses}; acceptance rate {data['acceptance_rate']:.1%}, "
        f"escalation {data['escalation_rate']:.1%}, cost ${data['cost_usd']:.6f}"
    )
    console.print(spent_line(data), highlight=False)
    for task_type, tiers in data["by_type"].items():
        table = Table(title=task_type, title_justify="left")
        for name in ("tier", "models", "reached", "accepted", "escalated", "attempts", "$",
                     "p50 s", "p95 s"):  # fmt: skip
            table.add_column(name, justify="left" if name in ("tier", "models") else "right")
        for tier in tiers:
            table.add_row(*_cells(tier))
        console.print(table)
        for tier in tiers:
            for line in rejection_lines(tier["rejections"]):
                console.print(f"  tier {tier['tier']}: {line}", highlight=False)
            if "audit" in tier:
                audit = audit_line(tier["audit"]).strip()
                console.print(f"  tier {tier['tier']}: {audit}", highlight=False)
    for line in [*skipped_audit_lines(data), *summary.health.lines()]:
        console.print(line, highlight=False)
    if summary.self_reported:
        console.print(_self_reported_line(summary), highlight=False)
    for line in alarm_lines(summary):
        console.print(line, highlight=False)


def _self_reported_line(summary: Summary) -> str:
    return next(line for line in render(summary).splitlines() if "self-reported" in line)


def _cells(tier: dict[str, Any]) -> list[str]:
    p50, p95 = tier["latency_p50_s"], tier["latency_p95_s"]
    return [
        str(tier["tier"]),
        "/".join(tier["models"]),
        str(tier["tasks_reached"]),
        f"{tier['acceptance_rate']:.1%}",
        f"{tier['escalation_rate']:.1%}",
        str(tier["attempts"]),
        f"{tier['cost_usd']:.6f}",
        "-" if p50 is None else f"{p50:.3f}",
        "-" if p95 is None else f"{p95:.3f}",
    ]
