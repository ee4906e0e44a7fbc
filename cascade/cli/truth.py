"""``cascade truth``: fill every answer's ``correct`` by one definition, and say which."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from cascade.cli.say import say
from cascade.cli.truth_judge import judge_answers
from cascade.errors import ConfigError
from cascade.traffic.truth import (
    TRUTH,
    Judged,
    Row,
    Truth,
    read_rows,
    served_truth,
    write_truth,
)
from cascade.traffic.truth_human import LABELS, Labels, human_truth, write_labels
from cascade.types import Task

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Judge every answer, write ``responses.jsonl`` and ``truth.json``; say what changed."""
    folder = Path(args.dataset)
    _check(args)
    if not (folder / "tasks.jsonl").is_file():
        raise ConfigError(f"{folder} is not a dataset: it has no tasks.jsonl")
    rows = read_rows(folder)
    from cascade.bench.dataset import read_tasks  # noqa: PLC0415  # imports the engine

    tasks = read_tasks(folder / "tasks.jsonl")  # every task, whatever an earlier truth kept
    if args.by == "served":
        calls = {task.id for task in tasks if task.extra.get("functions")}
        judge, served = served_truth(folder, rows, tuple(args.served), calls)
        truth = Truth("served", served=served)
    elif args.by == "human":
        labels = Path(args.labels) if args.labels else folder / LABELS
        if args.sample is not None:
            return _write_labels(folder, labels, tasks, rows, args)
        found = human_truth(labels, tasks, rows)
        judge, truth = found.judge, found.truth
    elif args.by == "judge":
        status, path = judge_answers(folder, tasks, rows, args)
        if status not in (0, 4):  # 4: some calls failed; what was graded is kept all the same
            say(f"the judge's run ended with exit status {status}: nothing else was written")
            return status
        found = human_truth(path, tasks, rows)
        judge = found.judge
        truth = replace(found.truth, by="judge", judge=args.judge, rubric=args.rubric)
    else:
        from cascade.traffic.truth_policy import policy_truth  # noqa: PLC0415

        found_policy = policy_truth(args.policy, tasks, rows, cache=not args.no_cache)
        judge, truth = found_policy.judge, found_policy.truth
    _report(folder, write_truth(folder, rows, judge, truth))
    if args.by in ("human", "judge"):
        _left(found)
    return 0


_FOR = {
    "policy": ("policy", "judge"),
    "judge": ("judge",),
    "served": ("served",),
    "sample": ("human", "judge"),
    "labels": ("human",),
    "budget": ("judge",),
    "workers": ("judge",),
    "rpm": ("judge",),
    "tpm": ("judge",),
}
"""Each option, and the definitions it is for."""


def _check(args: argparse.Namespace) -> None:
    """An option given with a definition it is not for is an error naming both."""
    if args.by == "policy" and args.policy is None:
        raise ConfigError("--by policy needs --policy FILE: the policy whose validators judge")
    for option, definitions in _FOR.items():
        given = getattr(args, option)
        if given not in (None, []) and args.by not in definitions:
            raise ConfigError(
                f"--{option} is for --by {' or '.join(definitions)}, not --by {args.by}"
            )


def _write_labels(
    folder: Path, labels: Path, tasks: list[Task], rows: list[tuple[str, Row]],
    args: argparse.Namespace,
) -> int:  # fmt: skip
    """Write the labels file for people to fill; the dataset is not changed."""
    sampled, lines, kept = write_labels(labels, tasks, rows, args.sample, args.seed)
    say(f"wrote {labels}: {lines} distinct answers of {sampled} sampled tasks to label"
        + (f" ({kept} keep the label they had)" if kept else ""))  # fmt: skip
    say(f"set correct to true or false on each line, then: cascade truth {folder} --by human"
        + (f" --labels {labels}" if labels != folder / LABELS else ""))  # fmt: skip
    return 0


def _left(found: Labels) -> None:
    """What the labels leave out, said."""
    if found.unlabeled:
        say(f"  left out    {found.unlabeled} tasks of the labels file with a line not labeled "
            "yet")  # fmt: skip
    if found.unmatched:
        say(f"  note        {found.unmatched} answers of labeled tasks match no labeled answer "
            "(recorded since?): they count as wrong; write the file again with --sample to "
            "label them (labels already given are kept)")  # fmt: skip


def _report(folder: Path, judged: Judged) -> None:
    truth = judged.truth
    total = sum(n for _, n in judged.correct.values())
    say(f"{folder}: judged {total} answers; correct means: {truth.means()}")
    width = max(map(len, judged.correct))
    for model, (right, count) in sorted(judged.correct.items()):
        mark = " (served)" if model in truth.served else ""
        say(f"  {model:{width}}  {right} of {count} correct{mark}")
    for entry in truth.left_out:
        say(f"  not run     {entry}")
    say(f"wrote {folder / 'responses.jsonl'} and {folder / TRUTH}")
    if judged.replaced is not None:
        say(f"replaced the earlier definition: {judged.replaced.means()}")
    if judged.regraded:
        say(f"note: {judged.regraded} answers had a correct value that cascade truth did not set "
            "(the dataset's own grading, say): it is replaced")  # fmt: skip
