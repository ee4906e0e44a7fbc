"""The options of ``cascade record``: what to ask, how to call it, and how much to spend."""

from __future__ import annotations

from typing import Any

from cascade.cli.job_options import add_job_options

__all__ = ["add_record"]


def add_record(commands: Any) -> None:
    """Add ``cascade record`` and its options."""
    record = commands.add_parser(
        "record",
        help="ask other models a seeded sample of a dataset's tasks; add their answers",
        description="Ask each --model the tasks of a seeded sample of the dataset, stratified by "
        "task kind, once per (task, model) pair the dataset lacks, through cascade run's guard, "
        "rate limits, retries, ledger and budget; add the answers (tokens, cost, latency) to "
        "responses.jsonl and models.json. Its store is DATASET/record.db: the same command "
        "run again resumes, and asks no pair twice.",
    )
    record.add_argument("dataset", help="the dataset folder (cascade import wrote it, say)")
    record.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="a model to ask, as litellm names it (repeatable)",
    )
    record.add_argument(
        "--sample", type=int, required=True, metavar="N", help="how many tasks to ask about"
    )
    record.add_argument("--seed", type=int, default=0, help="the sample's seed (0)")
    record.add_argument(
        "--policy",
        metavar="FILE",
        help="call each model as this policy's tier of the same model does (params, api_base, "
        'price, mode = "batch", rate limits); other models by their plain name',
    )
    record.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the job would ask, and its floor and worst-case cost; call no model",
    )
    record.add_argument(
        "--target",
        type=float,
        metavar="X",
        help="with --dry-run: how large a sample cascade optimize needs to certify the pass rate "
        "X (0.9 for 90 %%), by how well the ladder does",
    )
    record.add_argument(
        "--confidence",
        type=float,
        default=0.9,
        help="the confidence --target is certified with, as cascade optimize's (0.9)",
    )
    add_job_options(record, calls="calls")
