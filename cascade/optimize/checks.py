"""A user's own policy as the source of the checks that ``cascade optimize`` may put on tiers.

``cascade optimize DATASET --policy FILE`` searches with the policy's validators as candidate
gates: which of them each tier runs, with its re-asks and thresholds. Validators that call a
model (a judge, agreement, votes) are left out, since the search brings its own opinions from
the dataset's models, and so is ``confidence``, whose thresholds the search sets itself. The
kind's default checks join them where the policy has none of the same kind.

The written policy keeps everything else the user's policy says (prompt, examples, budget,
limits, each model's tier settings), with the chosen checks on the tiers.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.errors import ConfigError
from cascade.optimize.table import Check, build_check, default_checks
from cascade.policy import load_policy
from cascade.store.verdicts import VerdictCache
from cascade.types import Message, Task

__all__ = ["UserPolicy", "relocated", "user_policy"]

_NOT_CHECKS = frozenset({"judge", "agreement", "vote", "self_consistency", "confidence"})
_PATHS = {"json_schema": "schema", "tests": "file"}
"""Validator kinds whose entry names a file relative to the policy, and the key that does."""


@dataclass(frozen=True, slots=True)
class UserPolicy:
    """The checks a user's policy offers, and what the written policy keeps of it."""

    path: Path
    task_type: str
    specs: tuple[tuple[str, dict[str, Any]], ...]
    data: dict[str, Any]
    """The policy file's TOML data."""
    tiers: dict[str, dict[str, Any]]
    """Its tier tables by model."""
    prompt: str = "{input}"
    examples: tuple[Message, ...] = ()
    """Its worked examples as chat turns: with the prompt, what a task's first ask sends."""

    def checks(self, tasks: Sequence[Task], cache: VerdictCache | None) -> list[Check]:
        """The candidate checks, built as the policy loader builds them."""
        found = list(self.specs)
        kinds = {spec["kind"] for _, spec in found}
        found += [
            (n, s) for n, s in default_checks(self.task_type, tasks) if s["kind"] not in kinds
        ]
        return [build_check(name, spec, self.path.parent, cache) for name, spec in found]


def user_policy(path: str, kinds: Sequence[str]) -> UserPolicy:
    """Read a policy file (checked as ``cascade policy check`` checks it)."""
    policy = load_policy(path)
    if policy.task_type not in kinds:
        raise ConfigError(
            f"--policy {path}: it serves task_type {policy.task_type!r}, and the dataset's "
            f"kinds here are {', '.join(kinds)}"
        )
    entries = [*policy.spec.validators, *(v for t in policy.spec.tiers for v in t.validators)]
    specs: list[tuple[str, dict[str, Any]]] = []
    for entry in entries:
        spec = entry.model_dump(by_alias=True, exclude_defaults=True)
        spec["kind"] = entry.kind
        if spec["kind"] in _NOT_CHECKS or any(spec == s for _, s in specs):
            continue
        same = sum(spec["kind"] == s["kind"] for _, s in specs)
        specs.append((spec["kind"] + (f"-{same + 1}" if same else ""), spec))
    with Path(path).open("rb") as handle:
        data = tomllib.load(handle)
    tiers = {str(t["model"]): dict(t) for t in data.get("tiers", []) if isinstance(t, dict)}
    plan = policy.plan
    return UserPolicy(Path(path).resolve(), policy.task_type, tuple(specs), data, tiers,
                      plan.prompt, tuple(plan.examples))  # fmt: skip


def relocated(spec: Mapping[str, Any], source: Path, target: Path) -> dict[str, Any]:
    """A validator entry whose file path, relative to ``source``'s folder, suits ``target``'s."""
    found = dict(spec)
    key = _PATHS.get(str(found.get("kind")))
    if key is not None and isinstance(found.get(key), str):
        absolute = (source.parent / found[key]).resolve()
        found[key] = os.path.relpath(absolute, target.resolve().parent)
    return found
