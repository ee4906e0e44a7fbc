"""The chosen ladders as policy files that ``cascade bench`` and ``cascade run`` accept."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import tomli_w

from cascade.optimize.gates import Gate
from cascade.optimize.search import Ladders

__all__ = ["describe", "policy_text", "tier_tables"]


def _gates_of(found: Ladders, index: int) -> list[Gate]:
    return [found.gates[g] for g in found.tiers[index, :2] if g >= 0]


def _checks(
    found: Ladders, gate: Gate, base: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A gate's checks; a voter is called as the user's tier of its model calls it."""
    table = found.table
    checks = [dict(c.spec) for i, c in enumerate(table.checks) if gate.checks >> i & 1]
    if gate.threshold is not None:
        checks.append({"kind": "confidence", "threshold": gate.threshold})
    names = [table.models[v] for v in gate.voters]
    if len(names) == 1:
        own = base.get(names[0], {})
        called = {key: own[key] for key in ("price", "params") if key in own}
        checks.append({"kind": "agreement", "model": names[0], "compare": table.compare} | called)
    elif names:
        vote = {"kind": "vote", "models": names, "k": 2, "compare": table.compare}
        params = [base.get(name, {}).get("params") for name in names]
        if params[0] and all(p == params[0] for p in params):  # one setting serves them all
            vote["params"] = params[0]
        elif any(params):  # each voter where the user's tier of its model calls it
            vote["voter_params"] = {n: p for n, p in zip(names, params, strict=True) if p}
        prices = {n: base[n]["price"] for n in names if "price" in base.get(n, {})}
        if prices:
            vote["voter_prices"] = prices
        checks.append(vote)
    if gate.samples:
        checks.append(
            {"kind": "self_consistency", "samples": gate.samples, "k": 2, "compare": table.compare}
        )
    return checks


def tier_tables(
    found: Ladders, index: int, base: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The ``[[tiers]]`` of ladder ``index``: gated tiers with their checks, then a trusted one.

    ``base`` holds tier tables by model (a user's policy's), whose settings each tier keeps.
    """
    base = base or {}
    tiers: list[dict[str, Any]] = []
    for gate in _gates_of(found, index):
        model = found.table.models[gate.model]
        tier: dict[str, Any] = _kept(base.get(model), model)
        if gate.reasks:
            tier["reasks"] = gate.reasks
        tiers.append(tier | {"validators": _checks(found, gate, base)})
    top = found.table.models[int(found.tiers[index, 2])]
    tiers.append(_kept(base.get(top), top) | {"trusted": True})
    return tiers


def _kept(tier: Mapping[str, Any] | None, model: str) -> dict[str, Any]:
    """A user's tier settings for ``model``, without what the optimizer decides."""
    found = {k: v for k, v in (tier or {}).items() if k not in ("reasks", "trusted", "validators")}
    return {"model": model} | found


def describe(found: Ladders, index: int) -> str:
    """A ladder in one line: ``8b [format, confidence >= -0.2] → 405b``.

    A re-ask budget follows the checks: ``mini [format, agrees with haiku; 1 re-ask]``.
    """
    table = found.table
    parts = []
    for gate in _gates_of(found, index):
        checks = [c.name for i, c in enumerate(table.checks) if gate.checks >> i & 1]
        if gate.threshold is not None:
            checks.append(f"confidence >= {gate.threshold:g}")
        names = [table.models[v] for v in gate.voters]
        if len(names) == 1:
            checks.append(f"agrees with {names[0]}")
        elif names:
            checks.append(f"2 of 3 agree with {' and '.join(names)}")
        if gate.samples:
            checks.append(f"2 of {gate.samples + 1} own samples agree")
        asks = f"; {gate.reasks} re-ask{'s' * (gate.reasks > 1)}" if gate.reasks else ""
        parts.append(f"{table.models[gate.model]} [{', '.join(checks)}{asks}]")
    parts.append(table.models[int(found.tiers[index, 2])])
    threshold = found.threshold(index)
    routed = f" (routed: start at a tier whose chance is >= {threshold:g})" if threshold else ""
    return " → ".join(parts) + routed


def policy_text(
    kind: str,
    tiers: list[dict[str, Any]],
    header: Sequence[str],
    base: Mapping[str, Any] | None = None,
    route: Mapping[str, Any] | None = None,
) -> str:
    """A policy file: the header as comments, then the task type and the ladder.

    With ``base`` (a user's policy, as TOML data), everything else it says is kept, but its
    policy-wide validators, which the chosen tiers now run as their own, and its ``[route]``,
    fit for its own ladder: ``route`` is the chosen ladder's, if any.
    """
    wrapped = [
        [line] if line.startswith("  ") else textwrap.wrap(line, 96) or [""] for line in header
    ]
    comments = "".join(f"# {part}".rstrip() + "\n" for lines in wrapped for part in lines)
    dropped = ("task_type", "tiers", "validators", "route")
    kept = {k: v for k, v in (base or {}).items() if k not in dropped}
    routed = {"route": dict(route)} if route else {}
    return comments + tomli_w.dumps({"task_type": kind, **kept, "tiers": tiers, **routed})
