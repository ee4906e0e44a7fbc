"""A ``cascade record`` job: which (task, model) pairs to ask, written as a ``cascade run`` job.

Each pair the dataset lacks becomes one task of the job's tasks file, of a task type whose
one-tier policy asks that model (see :mod:`cascade.traffic.record_tiers`). So the ordinary
runner asks it exactly once, through the guard, rate limits, retries, ledger and budget, and a
pair is the unit a budget stops at and a ``kill -9`` loses at most.

The job lives in ``DATASET/record/KEY/`` (``tasks.jsonl``, ``policies/``, the run's results,
quarantine and step log), where ``KEY`` is a hash of the models, the sample and the tier
settings; its answers go to the store ``DATASET/record.db``. The files are written once, with
``job.json`` last: a rerun of the same command finds them and resumes the same run, less the
pairs that have an answer by then (another job's, a larger sample's, included), and a
command that differs (another model, size, seed or policy) plans a job of its own from the
dataset as it is then. A run is known by its files' absolute paths, so a job whose dataset
folder was moved is planned again (its answers are in the dataset by then: none is asked
twice).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade.bench.dataset import Dataset, load_dataset
from cascade.errors import ConfigError
from cascade.files import write_atomic
from cascade.traffic.job_files import JobFolder
from cascade.traffic.record_sample import stratified_sample
from cascade.traffic.record_tiers import RecordTiers
from cascade.types import Task

__all__ = ["STORE", "RecordJob", "check_dataset", "pair_id", "plan_record"]

STORE = "record.db"
"""The store of every record job of a dataset, in the dataset's folder."""
_JOB = "job.json"
Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RecordJob(JobFolder):
    """A planned record job: where its files are (one task per pair), and what it asks."""

    models: tuple[str, ...] = ()
    kinds: Mapping[str, int] = field(default_factory=dict)
    """Sampled tasks per kind."""
    pairs: int = 0
    """(task, model) pairs the job asks."""
    present: int = 0
    """Pairs of the sample the dataset (or the store) already had: not asked."""
    tools: int = 0
    """Sampled tasks that offered tools (sent with their requests, as they were logged)."""
    resumed: bool = False
    """Whether the job's files were there already (a rerun of the same command)."""
    batch: tuple[str, ...] = field(default=())
    """The models asked through the batch API."""


def pair_id(task_id: str, model: str) -> str:
    """The job task id of one pair: readable in ``cascade show``, unique per pair."""
    return f"{task_id}~{model}"


def check_dataset(folder: Path) -> Dataset:
    """The dataset, read whole; a bad line raises :class:`ConfigError` with its file and line."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such dataset folder")
    models = folder / "models.json"
    if models.exists():
        try:
            rows = json.loads(models.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{models}:{exc.lineno}: not JSON: {exc.msg}") from exc
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) for r in rows
        ):
            raise ConfigError(f"{models}: must be a list of objects with a name")
    return load_dataset(folder, every_task=True)  # labels limit what certifies, not what is asked


def plan_record(
    data: Dataset,
    folder: Path,
    tiers: RecordTiers,
    *,
    sample: int,
    seed: int,
    answered: Collection[Pair] = (),
    into: Path | None = None,
) -> RecordJob:
    """Plan (or find again) the job asking ``tiers``' models a sample of ``data``'s tasks.

    Pairs in the dataset or in ``answered`` (kept in the store, not merged yet) are not asked.
    ``into`` writes the job's files elsewhere (a dry run's scratch folder), always afresh.
    """
    models = tuple(tiers.tables)
    chosen = stratified_sample(data.tasks, sample, seed=seed)
    have = set(data.correct) | set(answered)
    key = hashlib.sha256(
        json.dumps([models, sample, seed, tiers.digest(), [t.id for t in chosen]]).encode()
    ).hexdigest()[:12]
    job_folder = into or folder / "record" / key
    kinds: dict[str, int] = {}
    for task in chosen:
        kinds[task.type] = kinds.get(task.type, 0) + 1
    batch = tuple(m for m in models if tiers.batch(m))
    known = None if into is not None else _read_job(job_folder)
    if known is not None and known.get("folder") == str(job_folder.resolve()):
        left = _drop_answered(job_folder / "tasks.jsonl", have)
        return RecordJob(job_folder, folder / STORE, models, kinds, left,
                         known["present"], known["tools"], True, batch)  # fmt: skip
    pairs = [(t, m) for t in chosen for m in models if (t.id, m) not in have]
    tools = sum(1 for t in chosen if t.extra.get("tools"))
    if not pairs:  # nothing to ask: no job to write
        return RecordJob(job_folder, folder / STORE, models, kinds, 0,
                         len(chosen) * len(models), tools, False, batch)  # fmt: skip
    _write_job(job_folder, pairs, tiers)
    present = len(chosen) * len(models) - len(pairs)
    facts = {"models": models, "sample": sample, "seed": seed, "pairs": len(pairs),
             "present": present, "tools": tools,
             "folder": str(job_folder.resolve())}  # fmt: skip
    write_atomic(job_folder / _JOB, json.dumps(facts, indent=2) + "\n")  # last: the job is whole
    return RecordJob(job_folder, folder / STORE, models, kinds, len(pairs), present, tools,
                     False, batch)  # fmt: skip


def _read_job(folder: Path) -> dict[str, Any] | None:
    """A job written whole before, or ``None`` (none, or cut off while it was written)."""
    path = folder / _JOB
    if not (
        path.is_file() and (folder / "tasks.jsonl").is_file() and (folder / "policies").is_dir()
    ):
        return None
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return facts if isinstance(facts, dict) else None


def _drop_answered(tasks: Path, have: Collection[Pair]) -> int:
    """Take the pairs with an answer off a found job's tasks file; how many are left.

    Another job may have answered some of this one's pairs since (a larger sample), and this
    job's run cannot know: it would ask them again. The run is known by the file's path, so it
    resumes with its own results (failed pairs stay failed unless ``--retry-failed``).
    """
    lines = tasks.read_text(encoding="utf-8").splitlines(keepends=True)
    left = [line for line in lines if _pair_of(line) not in have]
    if len(left) < len(lines):
        write_atomic(tasks, "".join(left))
    return len(left)


def _pair_of(line: str) -> Pair:
    """The (task, model) pair a line of a job's tasks file asks."""
    record = json.loads(line)["meta"]["record"]
    return str(record["task_id"]), str(record["model"])


def _write_job(folder: Path, pairs: list[tuple[Task, str]], tiers: RecordTiers) -> None:
    """The job's tasks file and its policies, one per model, ``response_format`` and tools."""
    policies = folder / "policies"
    if policies.exists():  # from a job cut off before its job.json: written again whole
        shutil.rmtree(policies)
    types: dict[tuple[str, str], str] = {}
    lines = []
    for task, model in pairs:
        response_format, tools = task.extra.get("response_format"), task.extra.get("tools")
        shape = json.dumps(response_format if tools is None else [response_format, tools],
                           sort_keys=True)  # fmt: skip
        group = (model, shape)
        if group not in types:
            digest = hashlib.sha256(shape.encode()).hexdigest()[:8]
            plain = response_format is None and tools is None
            types[group] = model if plain else f"{model} format-{digest}"
            text = tiers.policy_text(types[group], model, response_format, tools)
            write_atomic(policies / f"{len(types):03d}.toml", text)
        lines.append(json.dumps(_job_task(task, model, types[group])) + "\n")
    write_atomic(folder / "tasks.jsonl", "".join(lines))


def _job_task(task: Task, model: str, task_type: str) -> dict[str, Any]:
    """One pair as a task of the job: the dataset task's prompt, and where its answer goes."""
    line: dict[str, Any] = {"id": pair_id(task.id, model), "type": task_type}
    if task.messages is not None:
        line["messages"] = [dict(m) for m in task.messages]
    else:
        line["input"] = task.input
    line["meta"] = {"record": {"task_id": task.id, "model": model}}
    return line
