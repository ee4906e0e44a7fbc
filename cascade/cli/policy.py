"""``cascade policy check``: validate policy files; ``file:line: problem`` for each problem."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence

from cascade.backends.default import default_backend, http_models
from cascade.backends.routed import PrefixBackend, closing_backend
from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.latency import ENOUGH
from cascade.policy import PolicyError, load_policies
from cascade.policy.pricing import unpriced_tiers
from cascade.policy.spec import PolicySpec
from cascade.types import Tier
from cascade.validators.sandbox import Sandbox

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Check policy files or directories: 1 if any has a problem."""
    failed = False
    for path in args.paths:
        try:
            policies = load_policies(path)
        except PolicyError as exc:
            failed = True
            for problem in exc.problems:
                say(str(problem))
            continue
        try:
            http = http_models(tier for policy in policies for tier in policy.ladder)
        except ConfigError as exc:
            failed = True
            say(f"{path}: {exc}")
            continue
        with closing_backend(default_backend(http)) as backend:
            assert isinstance(backend, PrefixBackend)  # the default backend routes by prefix
            unpriced = unpriced_tiers(policies, backend.quote)
        for problem in unpriced:
            failed = True
            say(str(problem))
        if unpriced:
            continue
        for policy in policies:
            tiers = " → ".join(tier.model for tier in policy.ladder)
            say(f"{policy.path}: ok: {policy.task_type}: {tiers}; {policy.validate!r}")
            for note in _hedge_notes(policy.ladder):
                say(f"{policy.path}: note: {note}")
        if any(_runs_code(policy.spec) for policy in policies):
            say(f"sandbox for code tests: {Sandbox().describe()}")
    return 1 if failed else 0


def _hedge_notes(ladder: Sequence[Tier]) -> list[str]:
    """What a hedge waits for: the next tier's expected latency, or its measured p90."""
    notes = []
    for index, (tier, nxt) in enumerate(itertools.pairwise(ladder)):
        if tier.hedge and nxt.expected_latency_s is None:
            notes.append(
                f"tiers[{index}] hedges onto {nxt.model}, whose expected_latency_s is not set: "
                f"it hedges once the run has measured {ENOUGH} answers of {nxt.model} (its p90), "
                "or from the start of a replay (the dataset's p90); set expected_latency_s to "
                "hedge from a live run's first task"
            )
    return notes


def _runs_code(spec: PolicySpec) -> bool:
    """Whether a policy runs generated code in the sandbox (a ``tests`` validator anywhere)."""
    kinds = [v.kind for v in spec.validators]
    kinds += [v.kind for tier in spec.tiers for v in tier.validators]
    return "tests" in kinds
