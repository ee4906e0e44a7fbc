"""``cascade export``: a run store's answers from every tier, written as a dataset."""

from __future__ import annotations

import argparse

from cascade.bench.export import export_store
from cascade.cli.say import say

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Write the dataset and say what it holds."""
    done = export_store(args.store, args.out, gold=args.gold, run_id=args.run,
                        every_task=args.all_tasks)  # fmt: skip
    left = f"; {done.skipped} tasks left out (not every tier answered them)" if done.skipped else ""
    truth = "" if args.gold else "; no --gold, so 'correct' is null"
    say(
        f"wrote {done.folder}: {done.tasks} tasks, {done.responses} answers from "
        f"{len(done.models)} models ({', '.join(done.models)}){left}{truth}"
    )
    return 0
