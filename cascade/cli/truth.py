"""``cascade truth``: fill every answer's ``correct`` by one definition, and say which."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.traffic.truth import TRUTH, Judged, Truth, read_rows, served_truth, write_truth

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Judge every answer, write ``responses.jsonl`` and ``truth.json``; say what changed."""
    folder = Path(args.dataset)
    if args.by == "policy" and args.policy is None:
        raise ConfigError("--by policy needs --policy FILE: the policy whose validators judge")
    if args.by != "policy" and args.policy is not None:
        raise ConfigError(f"--policy is for --by policy, not --by {args.by}")
    if args.by != "served" and args.served:
        raise ConfigError(f"--served is for --by served, not --by {args.by}")
    if not (folder / "tasks.jsonl").is_file():
        raise ConfigError(f"{folder} is not a dataset: it has no tasks.jsonl")
    rows = read_rows(folder)
    if args.by == "served":
        judge, served = served_truth(folder, rows, tuple(args.served))
        truth = Truth("served", served=served)
    else:
        from cascade.bench.dataset import load_dataset  # noqa: PLC0415  # imports the engine
        from cascade.traffic.truth_policy import policy_truth  # noqa: PLC0415

        found = policy_truth(args.policy, load_dataset(folder).tasks, rows, cache=not args.no_cache)
        judge, truth = found.judge, found.truth
    _report(folder, write_truth(folder, rows, judge, truth))
    return 0


def _report(folder: Path, judged: Judged) -> None:
    truth = judged.truth
    total = sum(n for _, n in judged.correct.values())
    say(f"{folder}: judged {total} answers; correct means: {truth.means()}")
    width = max(map(len, judged.correct))
    for model, (right, count) in sorted(judged.correct.items()):
        mark = " (served)" if model in truth.served else ""
        say(f"  {model:{width}}  {right} of {count} correct{mark}")
    for entry in truth.left_out:
        say(f"  not run     {entry}")
    say(f"wrote {folder / 'responses.jsonl'} and {folder / TRUTH}")
    if judged.replaced is not None:
        say(f"replaced the earlier definition: {judged.replaced.means()}")
    if judged.regraded:
        say(f"note: {judged.regraded} answers had a correct value that cascade truth did not set "
            "(the dataset's own grading, say): it is replaced")  # fmt: skip
