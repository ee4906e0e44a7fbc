"""``cascade truth --by judge``: plan the judging job, run it, write the judge's labels.

The job (see :mod:`cascade.traffic.truth_judge`) is run by ``cascade run`` itself, with its
guard, rate limits, retries, ledger, budget and summary, as ``cascade record`` runs its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cascade.cli.job_options import run_job
from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.traffic.record_tiers import record_tiers
from cascade.traffic.truth import Row
from cascade.traffic.truth_judge import (
    LABELS,
    plan_judging,
    read_verdicts,
    write_verdicts,
)
from cascade.types import Task

__all__ = ["judge_answers"]


def judge_answers(
    folder: Path, tasks: list[Task], rows: list[tuple[str, Row]], args: argparse.Namespace
) -> tuple[int, Path]:
    """Grade a seeded sample's distinct answers; the run's exit status and the labels file."""
    if not args.judge:
        raise ConfigError("--by judge needs --judge MODEL: the model that grades the answers")
    if not 0 <= args.threshold <= 1:
        raise ConfigError(f"--threshold must be from 0 to 1, not {args.threshold:g}")
    tiers = record_tiers((args.judge,), args.policy)
    sample = len(tasks) if args.sample is None else args.sample
    job = plan_judging(folder, tasks, rows, model=args.judge, rubric=args.rubric,
                       threshold=args.threshold, tiers=tiers, sample=sample,
                       seed=args.seed)  # fmt: skip
    state = "resumed" if job.resumed else "planned"
    say(f"judge job {job.folder.name} ({state}): {len(job.answers)} distinct answers of "
        f"{job.sampled} sampled tasks, graded by {args.judge}")  # fmt: skip
    for model in tiers.unmatched:
        say(f"  note        {tiers.source} has no tier of {model}: asked by its plain name")
    status = run_job(job, args, retry_failed=job.resumed)  # what failed is asked again
    lines, ungraded = read_verdicts(job, args.threshold)
    if lines and ungraded == len(lines):
        raise ConfigError(
            f"the judge graded none of the {len(lines)} answers: every grading call failed "
            f"(the run above says why; its store is {job.store}); run the same command again "
            "to ask again"
        )
    labels = folder / LABELS
    write_verdicts(labels, lines)
    left = f", {ungraded} not (their tasks are left out; run again to retry)" if ungraded else ""
    say(f"wrote {labels}: {len(lines) - ungraded} answers graded{left}")
    return status, labels
