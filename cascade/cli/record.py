"""``cascade record``: other models' answers to a seeded sample of a dataset's tasks.

The job (see :mod:`cascade.traffic.record_job`) is run by ``cascade run`` itself, with its
guard, rate limits, retries, ledger, budget, signals and summary, and its answers are then
added to the dataset (:mod:`cascade.traffic.record_merge`). Answers an earlier record kept in
the store but had not added yet (it was killed) are added first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cascade.cli.job_options import run_job
from cascade.cli.say import say
from cascade.errors import ConfigError
from cascade.optimize.sample_size import CERTIFYING, rate_needed, sample_for
from cascade.traffic.record_job import RecordJob, check_dataset, plan_record
from cascade.traffic.record_merge import Merged, merge_answers, stored_answers
from cascade.traffic.record_tiers import RecordTiers, record_tiers
from cascade.types import Price

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Plan the job, run it, add its answers; the exit status is ``cascade run``'s."""
    folder = Path(args.dataset)
    models = tuple(dict.fromkeys(args.model))
    data = check_dataset(folder)  # a bad line fails here, named, before anything is written
    tiers = record_tiers(models, args.policy)
    if args.target is not None:
        if not args.dry_run:
            raise ConfigError("--target says how large a sample to record: give it with --dry-run")
        sizes = sample_sizes(args.target, args.confidence, args.sample)  # checks both numbers
    if args.dry_run:
        with tempfile.TemporaryDirectory(prefix="cascade-record-") as scratch:
            stored = stored_answers(folder)
            job = plan_record(data, folder, tiers, sample=args.sample, seed=args.seed,
                              answered=stored, into=Path(scratch))  # fmt: skip
            status = _dry_run(job, tiers)
            if args.target is not None:
                say("\n".join(sizes))
            return status
    tasks = {task.id for task in data.tasks}
    _merged(folder, merge_answers(folder, tasks, tiers.model_row), "kept by an earlier record")
    job = plan_record(data, folder, tiers, sample=args.sample, seed=args.seed,
                      answered=stored_answers(folder))  # fmt: skip
    _describe(job, tiers)
    if not job.pairs:
        say("nothing to ask: the dataset has every model's answer to every sampled task")
        return 0
    status = run_job(job, args)
    _merged(folder, merge_answers(folder, tasks, tiers.model_row), "recorded")
    return status


def _describe(job: RecordJob, tiers: RecordTiers) -> None:
    """Say what the job asks, before the run starts."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(job.kinds.items()))
    head = f"record job {job.folder.name}"
    sampled = f"{sum(job.kinds.values())} sampled tasks ({kinds}) x {len(job.models)} models"
    if job.resumed:
        say(f"{head} (resumed): {sampled}; {job.pairs} pairs of the job have no answer yet;"
            " the run below asks those not asked before"
            " (and failed ones with --retry-failed)")  # fmt: skip
    else:
        say(f"{head} (planned): {sampled} = {job.pairs} pairs to ask; {job.present} already in"
            " the dataset are not asked")  # fmt: skip
    _notes(job, tiers)
    if tiers.has_secrets():
        say(
            f"  note        {job.policies} holds credentials from {tiers.source} (files "
            "readable by you alone): leave the record/ folder out when you share the dataset"
        )


def _notes(job: RecordJob, tiers: RecordTiers) -> None:
    """What the job asks differently from what the user may expect."""
    for model in tiers.unmatched:
        say(f"  note        {tiers.source} has no tier of {model}: asked by its plain name")
    if job.batch:
        say(f"  batch API   {', '.join(job.batch)} (priced as batch calls)")
    if job.tools:
        say(f"  tools       {job.tools} sampled tasks offered tools: sent with their requests")


def _dry_run(job: RecordJob, tiers: RecordTiers) -> int:
    """Print the floor and worst case of asking every pair; call no model."""
    from cascade.backends.default import default_backend  # noqa: PLC0415  # imports litellm
    from cascade.backends.litellm import batch_prices  # noqa: PLC0415
    from cascade.backends.routed import closing_backend  # noqa: PLC0415
    from cascade.traffic.record_estimate import estimate_record  # noqa: PLC0415

    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(job.kinds.items()))
    say(f"dry run: {sum(job.kinds.values())} sampled tasks ({kinds}) x {len(job.models)} models"
        f" = {job.pairs} pairs to ask ({job.present} already answered are not asked)")  # fmt: skip
    _notes(job, tiers)
    if not job.pairs:
        say("no model was called")
        return 0

    def batch_price(model: str) -> Price | None:
        both = batch_prices(model)
        return None if both is None else both[1]

    with closing_backend(default_backend()) as backend:
        quote = getattr(backend, "quote", None)
        estimate = estimate_record(job, quote if callable(quote) else None, batch_price)
    say("each line counts the pairs a model is asked as its tasks:")
    for line in estimate.lines():
        say(line)
    return 0


def _merged(folder: Path, merged: Merged, what: str) -> None:
    if merged.added:
        say(f"added {merged.added} answers {what} to {folder / 'responses.jsonl'}")
    if merged.models:
        say(f"added {', '.join(merged.models)} to {folder / 'models.json'}")
    if merged.orphans:
        say(f"note: {merged.orphans} answers in {folder / 'record.db'} are for tasks the dataset "
            "no longer has; they stay in the store")  # fmt: skip


def sample_sizes(target: float, confidence: float, sample: int) -> list[str]:
    """How large a sample certifies ``target``, by the ladder's pass rate; and this one."""
    if not 0 < target < 1:
        raise ConfigError(f"--target must be above 0 and below 1, not {target:g}")
    if not 0 < confidence < 1:
        raise ConfigError(f"--confidence must be above 0 and below 1, not {confidence:g}")
    lines = [
        f"to certify {target:.2%} with confidence {confidence:.1%} (cascade optimize's defaults"
        f" certify on {CERTIFYING:.0%} of the sample: 30% held out, half the rest to select),"
        " a ladder that passes"
    ]
    for gap in (0.01, 0.02, 0.05):
        rate = round(target + gap, 4)
        if rate < 1:
            lines.append(f"  {rate:.1%} of the tasks needs a sample of about "
                         f"{sample_for(target, confidence, rate):,}")  # fmt: skip
    lines.append(f"  every task needs {sample_for(target, confidence, 1.0):,}")
    needed = rate_needed(target, confidence, sample)
    lines.append(
        f"a sample of {sample:,} certifies {target:.2%} only for a ladder that passes about "
        f"{needed:.1%} of the tasks or more"
        if needed is not None
        else f"a sample of {sample:,} is too small to certify {target:.2%}, even for a ladder "
        "that passes every task"
    )
    return lines
