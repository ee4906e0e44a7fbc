"""``cascade eval``: score a results file against gold answers."""

from __future__ import annotations

import argparse

from cascade.cli.say import say, say_json
from cascade.gold import load_gold, render_score, score_results

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Print the precision and coverage of a results file, as text or one JSON object."""
    score = score_results(args.results, load_gold(args.gold))
    if args.json:
        say_json(score.to_json())
    else:
        say(render_score(score))
    return 0
