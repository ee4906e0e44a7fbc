"""The ``cascade`` command line. Commands import what they need only when they run.

``cascade --help`` must stay fast, so nothing here imports litellm or the engine at load time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cascade",
        description="Run LLM work cheapest-model-first; escalate only when a check fails.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="replay a recorded dataset through ladders: cost against pass rate",
        description="Replay a recorded dataset (see shared/datasets/README.md) through each "
        "ladder with the real engine and validators, and report every single model, the oracle "
        "and each ladder. No model is called.",
    )
    bench.add_argument("dataset", help="dataset folder holding tasks.jsonl and responses.jsonl")
    bench.add_argument(
        "--ladder",
        action="append",
        default=[],
        metavar="MODEL,MODEL,...",
        help="a ladder of the dataset's models, cheapest first (repeatable)",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--concurrency", type=int, default=64, help="tasks replayed at once")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from cascade import __version__  # noqa: PLC0415  # kept out of --help's import path

        print(__version__)  # noqa: T201  # the version is this command's output
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from cascade.errors import CascadeError  # noqa: PLC0415

    try:
        from cascade.bench.command import bench  # noqa: PLC0415

        return bench(
            args.dataset, args.ladder, as_json=args.json, concurrency=max(1, args.concurrency)
        )
    except CascadeError as exc:
        print(f"cascade: error: {exc}", file=sys.stderr)  # noqa: T201  # the error is the output
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
