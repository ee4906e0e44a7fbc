"""``cascade report``: what the runs in a store did, per task type and tier."""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.say import say_json
from cascade.cli.tables import show_summary
from cascade.errors import ConfigError
from cascade.run.summary import summarize
from cascade.store import Store

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Print the summary of a store, as text or one JSON object."""
    if not Path(args.store).is_file():
        raise ConfigError(f"store {args.store} not found")
    with Store(args.store) as store:
        summary = summarize(store, args.run)
    if args.json:
        say_json(summary.to_json())
    else:
        show_summary(summary)
    return 0
