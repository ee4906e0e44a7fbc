"""``cascade truth --by judge``: a judge model grades a seeded sample's distinct answers.

The judge labels as people do with ``--by human`` (see :mod:`cascade.traffic.truth_human`):
each distinct answer of the sample is one task of a ``cascade run`` job, kept under
``DATASET/judge/KEY/`` and run into ``DATASET/judge.db``, so the judge's calls go through the
run's guard, rate limits, retries, ledger and budget, and the same command run again resumes the
job and asks nothing twice. Each task asks the judge model with the LLM judge's hardened prompt
(:func:`cascade.validators.judge.grading`: the task and the answer within markers carrying a
nonce made for the job after the answers existed, and a strict JSON verdict that must echo it).

The verdicts are then written as a labels file, ``DATASET/judge-labels.jsonl`` (``correct`` from
each verdict, with the judge's reason and score), and read as people's labels are: an answer of a
judged task is correct when it matches an answer the judge passed, and only the tasks whose
every answer was graded count. The judge is shown the whole question (every message, the
answer's schema and the functions offered) as people are. An answer too long to show it, or
whose grade breaks the format (a planted verdict without the nonce included), fails, as the LLM
judge validator fails it; an answer whose grading call failed leaves its task out until the
job runs again, and is counted.

``KEY`` is a hash of the judge, the rubric, the threshold, the judge's tier settings and the
answers sampled: another rubric, or answers recorded since, make another job.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade.files import write_atomic
from cascade.traffic.job_files import JobFolder
from cascade.traffic.record_tiers import RecordTiers
from cascade.traffic.truth import Row
from cascade.traffic.truth_human import Answer, distinct_answers, label_line, question_of
from cascade.types import Task
from cascade.validators.judge import MAX_DATA_CHARS, grading, parse_judgement

__all__ = [
    "LABELS",
    "STORE",
    "JudgeJob",
    "plan_judging",
    "read_verdicts",
    "task_id_of",
    "write_verdicts",
]

STORE = "judge.db"
LABELS = "judge-labels.jsonl"
_JOB = "job.json"
_TYPE = "judge"


@dataclass(frozen=True, slots=True)
class JudgeJob(JobFolder):
    """A planned judging job: where its files are (one grading per answer shown), what it grades."""

    model: str = ""
    answers: tuple[Answer, ...] = ()
    sampled: int = 0
    resumed: bool = False


def plan_judging(
    folder: Path,
    tasks: Sequence[Task],
    rows: Sequence[tuple[str, Row]],
    *,
    model: str,
    rubric: str,
    threshold: float,
    tiers: RecordTiers,
    sample: int,
    seed: int,
) -> JudgeJob:
    """The job grading the distinct answers of a seeded sample; its files written once."""
    sampled, answers = distinct_answers(tasks, rows, sample, seed)
    graded = [(task_id_of(a), a) for a in answers if len(a.text) <= MAX_DATA_CHARS]
    every = [[a.task.id, a.text] for a in answers]  # any answer added since makes another job
    key_text = json.dumps([model, rubric, threshold, tiers.digest(), every], sort_keys=True)
    key = hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:12]
    job = JudgeJob(folder / "judge" / key, folder / STORE, model=model, answers=tuple(answers),
                   sampled=sampled, resumed=(folder / "judge" / key / _JOB).is_file())  # fmt: skip
    if job.resumed:
        return job
    secret = secrets.token_hex(16)  # made now: no answer written before can hold a nonce
    lines = []
    for name, answer in graded:
        nonce = hashlib.sha256(f"{secret}:{name}".encode()).hexdigest()[:24]
        shown = Task(answer.task.id, input=question_of(answer.task), type=answer.task.type)
        messages = grading(rubric, shown, answer.text, nonce)
        lines.append({"id": name, "type": _TYPE, "messages": [dict(m) for m in messages],
                      "meta": {"judge": {"nonce": nonce}}})  # fmt: skip
    write_atomic(job.tasks, "".join(json.dumps(line) + "\n" for line in lines))
    write_atomic(job.policies / "judge.toml", tiers.policy_text(_TYPE, model, None))
    about = {"model": model, "rubric": rubric, "threshold": threshold, "answers": len(lines)}
    write_atomic(job.folder / _JOB, json.dumps(about, indent=2) + "\n")
    return job


def task_id_of(answer: Answer) -> str:
    """The job task that grades ``answer``: named by its task and its text, not its place."""
    digest = hashlib.sha256(f"{answer.task.id}\x00{answer.text}".encode()).hexdigest()
    return f"grade-{digest[:20]}"


def read_verdicts(job: JudgeJob, threshold: float) -> tuple[list[dict[str, Any]], int]:
    """The labels file's lines from the job's results; and how many answers went ungraded."""
    nonces = {}
    for text in job.tasks.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        nonces[str(line["id"])] = str(line["meta"]["judge"]["nonce"])
    results: dict[str, dict[str, Any]] = {}
    if job.results.is_file():
        for text in job.results.read_text(encoding="utf-8").splitlines():
            if text.strip():
                result = json.loads(text)
                results[str(result["id"])] = result
    lines, ungraded = [], 0
    for answer in job.answers:
        name = task_id_of(answer)
        result = results.get(name)
        found: dict[str, Any] = {"judge": job.model}
        correct: bool | None = False  # as the LLM judge validator: what cannot be graded fails
        if name not in nonces:
            found["reason"] = f"over {MAX_DATA_CHARS} characters: too long to show the judge"
        elif result is None or result.get("status") != "accepted" or result.get("output") is None:
            correct = None  # the call failed: asked again when the job runs again
            found["reason"] = "the judge did not answer: " + "; ".join(
                map(str, (result or {}).get("reasons") or ["not asked yet"])
            )
        else:
            passed, score, reason = parse_judgement(str(result["output"]), nonces[name], threshold)
            found |= {"score": score, "reason": reason}
            correct = passed  # a broken reply, or a planted verdict without the nonce, fails
        ungraded += correct is None
        lines.append(label_line(answer, correct) | found)
    return lines, ungraded


def write_verdicts(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    """The judge's labels file, whole."""
    write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
