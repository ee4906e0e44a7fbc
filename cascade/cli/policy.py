"""``cascade policy check``: validate policy files; ``file:line: problem`` for each problem."""

from __future__ import annotations

import argparse

from cascade.cli.say import say
from cascade.policy import PolicyError, load_policies

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
        for policy in policies:
            tiers = " → ".join(tier.model for tier in policy.ladder)
            say(f"{policy.path}: ok: {policy.task_type}: {tiers}; {policy.validate!r}")
    return 1 if failed else 0
