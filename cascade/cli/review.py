"""``cascade review import``: record reviewed answers as accepted results."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.run.review import import_reviews, results_paths, rewrite_results
from cascade.store import Store

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Record the answers of a review file; write the runs' results files again."""
    if not Path(args.store).is_file():
        raise ConfigError(f"store {args.store} not found")
    with Store(args.store) as store:
        done = import_reviews(store, args.file)
        say(
            f"imported {done.imported} reviewed answers into {args.store}"
            f" ({done.already} were imported before, {done.unanswered} lines have no answer yet)"
        )
        for run_id, out in results_paths(store, done.runs):
            lines = rewrite_results(store, run_id, out)
            say(f"  results of run {run_id} written again: {out} ({lines} lines)")
    return 0
