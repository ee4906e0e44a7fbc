"""The ``cascade`` command line: the parser, and one module per command.

This package is the only place that prints: the libraries below it return values. Each
command's module is imported only when it runs, so ``cascade --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

_MODULES = {
    "bench": "bench",
    "drift": "drift",
    "eval": "evaluate",
    "export": "export",
    "import": "importing",
    "optimize": "optimize",
    "policy": "policy",
    "record": "record",
    "report": "report",
    "review": "review",
    "route": "route",
    "run": "run",
    "serve": "serve",
    "show": "show",
    "truth": "truth",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    With no ``argv``, this is the process's own command line (the ``cascade`` command, or
    ``python -m cascade.cli``), and a run may tune the process as its own: it freezes its
    start-up heap (:mod:`cascade.run.heap`). A program that calls ``main([...])`` keeps its
    process as it was.
    """
    from cascade.cli.parser import build_parser  # noqa: PLC0415  # kept light for --help

    parser = build_parser()
    args = parser.parse_args(argv)
    args.own_process = argv is None
    if args.version:
        from cascade import __version__  # noqa: PLC0415  # kept out of --help's import path

        print(__version__)  # noqa: T201  # the version is this command's output
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from cascade.errors import CascadeError  # noqa: PLC0415

    try:
        module = importlib.import_module(f"cascade.cli.{_MODULES[args.command]}")
        return int(module.command(args))
    except BrokenPipeError:
        # The reader went away (`cascade report ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CascadeError as exc:
        print(f"cascade: error: {exc}", file=sys.stderr)  # noqa: T201  # the error is the output
        return 2
    except KeyboardInterrupt:
        # Ctrl-C before a run's own handling starts (or in another command): nothing half-done
        # is kept that a rerun would not redo.
        print("cascade: interrupted", file=sys.stderr)  # noqa: T201  # the message is the output
        return 130
