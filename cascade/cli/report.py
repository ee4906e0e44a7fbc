"""``cascade report``: what the runs in a store did, per task type and tier."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say, say_json
from cascade.cli.tables import show_summary
from cascade.errors import ConfigError
from cascade.gold import load_gold
from cascade.run.summary import summarize
from cascade.store import Store
from cascade.store.queries import run_ids

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Print the summary of one run of a store (the latest by default), or of all its runs.

    With ``--html DIR``, the same report with its charts is written to ``DIR/index.html`` too,
    after the terminal report is printed (a folder that cannot be written loses nothing else).
    """
    if not Path(args.store).is_file():
        raise ConfigError(f"store {args.store} not found")
    with Store(args.store) as store:
        runs = run_ids(store)
        if args.run is not None and args.run not in runs:
            known = ", ".join(runs[:5]) or "none"
            raise ConfigError(f"store {args.store} has no run {args.run!r} (latest first: {known})")
        run = None if args.all else (args.run or (runs[0] if runs else None))
        summary = summarize(store, run, load_gold(args.gold) if args.gold else None)
        if args.json:
            say_json(summary.to_json())
        else:
            say(f"{args.store}: " + ("every run" if run is None else f"run {run}")
                + f" ({len(runs)} run{'s' * (len(runs) != 1)} in the store)")  # fmt: skip
            show_summary(summary)
        if args.html is not None:
            from cascade.html.run_page import write_run_page  # noqa: PLC0415  # only for --html

            page = write_run_page(store, run, summary, args.html)
            if not args.json:
                say(f"wrote {page}")
    return 0
