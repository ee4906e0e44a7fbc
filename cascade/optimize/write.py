"""The chosen ladders as policy files that ``cascade bench`` and ``cascade run`` accept."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import tomli_w

from cascade.optimize.search import Gate, Ladders
from cascade.optimize.table import agreement_mode

__all__ = ["describe", "policy_text", "tier_tables"]


def _gates_of(found: Ladders, index: int) -> list[Gate]:
    return [found.gates[g] for g in found.tiers[index, :2] if g >= 0]


def _checks(found: Ladders, gate: Gate) -> list[dict[str, Any]]:
    table = found.table
    checks: list[dict[str, Any]] = []
    if gate.format and table.format_spec is not None:
        checks.append(dict(table.format_spec))
    if gate.threshold is not None:
        checks.append({"kind": "confidence", "threshold": gate.threshold})
    if gate.partner is not None:
        mode = agreement_mode(table.kind)
        checks.append({"kind": "agreement", "model": table.models[gate.partner], "compare": mode})
    return checks


def tier_tables(found: Ladders, index: int) -> list[dict[str, Any]]:
    """The ``[[tiers]]`` of ladder ``index``: gated tiers with their checks, then a trusted one."""
    tiers: list[dict[str, Any]] = []
    for gate in _gates_of(found, index):
        tier: dict[str, Any] = {"model": found.table.models[gate.model]}
        if gate.reasks:
            tier["reasks"] = gate.reasks
        tiers.append(tier | {"validators": _checks(found, gate)})
    tiers.append({"model": found.table.models[int(found.tiers[index, 2])], "trusted": True})
    return tiers


def describe(found: Ladders, index: int) -> str:
    """A ladder in one line: ``8b [format, confidence >= -0.2] → 405b``.

    A re-ask budget follows the checks: ``mini [format, agrees with haiku; 1 re-ask]``.
    """
    table = found.table
    parts = []
    for gate in _gates_of(found, index):
        checks = ["format"] if gate.format else []
        if gate.threshold is not None:
            checks.append(f"confidence >= {gate.threshold:g}")
        if gate.partner is not None:
            checks.append(f"agrees with {table.models[gate.partner]}")
        asks = f"; {gate.reasks} re-ask{'s' * (gate.reasks > 1)}" if gate.reasks else ""
        parts.append(f"{table.models[gate.model]} [{', '.join(checks)}{asks}]")
    parts.append(table.models[int(found.tiers[index, 2])])
    return " → ".join(parts)


def policy_text(kind: str, tiers: list[dict[str, Any]], header: Sequence[str]) -> str:
    """A policy file: the header as comments, then the task type and the ladder."""
    wrapped = [
        [line] if line.startswith("  ") else textwrap.wrap(line, 96) or [""] for line in header
    ]
    comments = "".join(f"# {part}".rstrip() + "\n" for lines in wrapped for part in lines)
    return comments + tomli_w.dumps({"task_type": kind, "tiers": tiers})
