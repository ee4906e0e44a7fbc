"""The options of ``cascade truth``: which definition of "correct" a dataset's answers follow."""

from __future__ import annotations

from typing import Any

from cascade.cli.job_options import add_job_options

__all__ = ["add_truth"]

_DESCRIPTION = (
    "Fill 'correct' on every answer of the dataset by one definition, and write "
    "it in DATASET/truth.json, which cascade bench and cascade optimize name beside their "
    "figures. --by served: an answer is correct when it reproduces the served model's "
    "answer to the task (the answers cascade import marked served, or --served MODEL's), "
    "compared as cascade export --gold compares (JSON and numbers by value, text without "
    "case or extra space); the served answers are correct by definition. --by policy: an "
    "answer is correct when it passes the --policy file's [[validators]] (those that call a "
    "model, and confidence, are not run, and are named). --by human: with --sample N, write a "
    "labels file of a seeded sample's distinct answers for people to mark correct; without, "
    "read it back: an answer of a labeled task is correct when it matches one labeled "
    "correct, and only the labeled tasks count. --by judge --judge MODEL: the judge grades "
    "each distinct answer of a seeded sample against --rubric, through cascade run, and its "
    "grades are read as labels. Running it again with another definition replaces "
    "the earlier one. Every answer is judged before anything is written: a bad line is an "
    "error naming its file and line, and leaves the dataset as it was."
)


def add_truth(commands: Any) -> None:
    """Add ``cascade truth`` and its options."""
    truth = commands.add_parser(
        "truth",
        help="state what 'correct' means on a dataset: fill every answer's correct by it",
        description=_DESCRIPTION,
    )
    truth.add_argument("dataset", help="the dataset folder (cascade import wrote it, say)")
    truth.add_argument(
        "--by",
        required=True,
        choices=("served", "policy", "human", "judge"),
        help="what 'correct' means: served (reproduces today's answers), policy (passes your "
        "validators), human (people's labels) or judge (a judge model's grades)",
    )
    _add_served_policy(truth)
    _add_human(truth)
    _add_judge(truth)


def _add_served_policy(truth: Any) -> None:
    """The options of ``--by served`` and ``--by policy`` (``--policy`` is ``--by judge``'s too)."""
    truth.add_argument(
        "--policy",
        metavar="FILE_OR_DIR",
        help="--by policy: the policy whose validators judge; --by judge: call the judge as "
        "this policy's tier of the same model calls it",
    )
    truth.add_argument(
        "--served",
        action="append",
        default=[],
        metavar="MODEL",
        help="--by served: the model that served the traffic, for a dataset whose answers are "
        "not marked served (repeatable; replaces the marks)",
    )
    truth.add_argument(
        "--no-cache", action="store_true", help="--by policy: run sandboxed tests again, uncached"
    )


def _add_human(truth: Any) -> None:
    """The options of ``--by human``: its sample (``--by judge`` takes one too), its labels file."""
    truth.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="--by human: write the labels file for a seeded sample of N tasks (stratified by "
        "kind), instead of reading it; --by judge: grade a sample of N tasks (all by default)",
    )
    truth.add_argument("--seed", type=int, default=0, help="the sample's seed (0)")
    truth.add_argument(
        "--labels",
        metavar="FILE",
        help="--by human: the labels file (DATASET/labels.jsonl)",
    )


def _add_judge(truth: Any) -> None:
    """The options of ``--by judge``: the judge, its rubric and pass mark, and how it is run."""
    truth.add_argument("--judge", metavar="MODEL", help="--by judge: the model that grades")
    truth.add_argument(
        "--rubric",
        default="The answer is a correct and complete answer to the task.",
        help="--by judge: what a right answer is, for the judge",
    )
    truth.add_argument(
        "--threshold", type=float, default=0.5, help="--by judge: the lowest passing score (0.5)"
    )
    add_job_options(truth, calls="gradings", when="--by judge: ")
