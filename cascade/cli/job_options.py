"""The options of a job another command runs through ``cascade run``, and the run it makes.

``cascade record`` and ``cascade truth --by judge`` write a job's tasks and policies (see
:class:`cascade.traffic.job_files.JobFolder`) and run it with ``cascade run`` itself: these are
the run's options they pass on, with the same meaning.
"""

from __future__ import annotations

import argparse
from typing import Any

from cascade.traffic.job_files import JobFolder

__all__ = ["add_job_options", "add_rate_limits", "run_job"]


def add_job_options(parser: Any, *, calls: str, when: str = "") -> None:
    """Add the run's pacing and trouble options; ``calls``: what one job task asks.

    ``when`` prefixes each help text (``"--by judge: "``, say) for a command that runs a job
    only sometimes.
    """
    parser.add_argument(
        "--concurrency", type=int, default=16, help=f"{when}{calls} in flight at once (16)"
    )
    parser.add_argument("--workers", type=int, help=f"{when}worker processes (as cascade run)")
    parser.add_argument(
        "--budget",
        type=float,
        metavar="USD",
        help=f"{when}stop asking once the job has spent this much; rerun with more to continue",
    )
    add_rate_limits(parser, when)
    parser.add_argument(
        "--max-outage-s",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help=f"{when}how long a call waits out a provider that keeps failing before it fails",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help=f"{when}ask again what no answer came for in earlier runs of the job",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or lines")


def add_rate_limits(parser: Any, when: str = "") -> None:
    """``--rpm`` and ``--tpm``, as ``cascade run`` takes them."""
    for name, what in (("rpm", "requests"), ("tpm", "tokens")):
        parser.add_argument(
            f"--{name}",
            action="append",
            default=[],
            metavar="KEY=N",
            help=f"{when}{what} per minute for a model or provider, e.g. openai=500 (repeatable)",
        )


def run_job(job: JobFolder, args: argparse.Namespace, *, retry_failed: bool = False) -> int:
    """``cascade run`` on the job's tasks and policies into its store; its exit status."""
    from cascade.cli import run  # noqa: PLC0415  # the run's own command: one home for it
    from cascade.cli.parser import build_parser  # noqa: PLC0415

    argv = [
        *("run", str(job.tasks), "--policy", str(job.policies), "--out", str(job.results)),
        *("--store", str(job.store), "--concurrency", str(args.concurrency)),
        *("--max-outage-s", str(args.max_outage_s)),
    ]
    if args.budget is not None:
        argv += ["--budget", str(args.budget)]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    for flag in ("rpm", "tpm"):
        for value in getattr(args, flag):
            argv += [f"--{flag}", value]
    argv += ["--retry-failed"] * (args.retry_failed or retry_failed)
    argv += ["--no-progress"] * args.no_progress
    return int(run.command(build_parser().parse_args(argv)))
