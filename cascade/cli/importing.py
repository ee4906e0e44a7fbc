"""``cascade import``: logs of real traffic, written as a dataset."""

from __future__ import annotations

import argparse

from cascade.cli.say import say
from cascade.traffic import import_logs

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Import the logs and say what the dataset holds, and how many lines were quarantined."""
    done = import_logs(args.format, args.files, args.out, mapping=args.map)
    say(
        f"wrote {done.folder}: {done.calls} calls as {done.tasks} tasks (identical requests "
        f"merged, counted in 'weight'), {done.responses} answers from {len(done.models)} "
        f"models ({', '.join(done.models) or 'none'}); 'correct' is null"
    )
    if done.quarantined:
        say(f"{done.quarantined} lines quarantined in {done.folder / 'quarantine.jsonl'}, "
            "each with its file, line and reason")  # fmt: skip
    for note in done.notes:
        say(f"note: {note}")
    return 0
