"""``cascade route fit``: learn a policy's start-tier router from recorded answers."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.bench.dataset import load_dataset, split_ids
from cascade.bench.export import dataset_from_store
from cascade.bench.suite import ByKind, default_validators, policy_cascades
from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.policy import load_policy
from cascade.route.learn import fit
from cascade.store.verdicts import VerdictCache

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Fit the router on the training split, choose its threshold there, and write it."""
    if Path(args.source).is_file():  # a run store (with --record-all-tiers samples)
        data, _ = dataset_from_store(args.source, args.gold)
    else:
        data = load_dataset(args.source)
    policy = load_policy(args.policy)
    if policy.spec.route is not None:
        raise ConfigError(f"--policy {args.policy} has a [route] already: fit on it without one")
    cache = VerdictCache()
    (cascade,) = policy_cascades(
        args.policy, data, ByKind(default_validators(cache)), cache
    ).values()
    if any(t.type == policy.task_type for t in data.tasks):  # only the tasks the policy serves
        data = data.subset({t.id for t in data.tasks if t.type == policy.task_type})
    train, _ = split_ids(data, args.holdout, args.seed)
    fitted = fit(data, cascade, train)
    fitted.router.save(args.out)
    figures = fitted.figures
    shares = ", ".join(f"{m} {p:.1%}" for m, p in figures["pass_share_by_tier"].items())
    say(f"fit on {figures['train_tasks']} training tasks of {data.name} (held out "
        f"{args.holdout:g}, seed {args.seed}); each tier's share of them passing its gates: "
        f"{shares}")  # fmt: skip
    plain, routed = figures["without_router"], figures["with_router"]
    if routed is None:
        say("no threshold passes as many training tasks for less (out-of-fold chances): "
            "threshold 0 (the router never skips a tier)")  # fmt: skip
    else:
        say(f"threshold {fitted.threshold:g}, chosen on the training tasks from out-of-fold "
            f"chances: passes {routed['passed']} for ${routed['cost_usd']:.6f}, against "
            f"{plain['passed']} for ${plain['cost_usd']:.6f} without the router")  # fmt: skip
    relative = Path(args.out).resolve()
    say(f"wrote {args.out}; add to {args.policy}:\n[route]\nfile = \"{relative}\"\n"
        f"threshold = {fitted.threshold:g}\nthen check it on the held-out tasks: cascade bench "
        f"{args.source} --policy POLICY --split held-out --holdout {args.holdout:g} "
        f"--seed {args.seed}")  # fmt: skip
    return 0
