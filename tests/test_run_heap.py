"""``cascade run`` freezes its processes' start-up heap once the first answers are in.

The backend here answers each call with the number of objects the garbage collector holds
frozen in the process that made the call, so the results show, from outside, when each process
froze its heap: not before its first answers, and after them in every process of the run. A
program that runs a job itself keeps its collector as it was.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from pathlib import Path

from cascade.backends import ScriptedBackend
from cascade.backends.base import Request
from cascade.backends.scripted import Reply
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.store import Store

ROOT = Path(__file__).resolve().parents[1]
POLICY = """\
task_type = "count"
prompt = "{input}"
[[tiers]]
model = "counter"
retries = 0
price = { input_usd_per_mtok = 0.1, output_usd_per_mtok = 0.1 }
"""


def _frozen(_request: Request) -> Reply:
    return Reply(str(gc.get_freeze_count()))


def backend() -> ScriptedBackend:
    """Every call answers with the caller's frozen object count (``--backend`` factory)."""
    return ScriptedBackend({"counter": _frozen})


def _job(tmp_path: Path, tasks: int) -> Path:
    (tmp_path / "policy.toml").write_text(POLICY)
    lines = (json.dumps({"id": f"t{n:03d}", "input": f"q{n}"}) for n in range(tasks))
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _run(job: Path, workers: int) -> list[int]:
    """The frozen counts the calls saw, in the order the results were written."""
    subprocess.run(  # noqa: S603  # our own command line
        [
            sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl"),
            "--policy", str(job / "policy.toml"), "--store", str(job / "run.db"),
            "--out", str(job / "out.jsonl"), "--workers", str(workers), "--concurrency", "1",
            "--no-progress", "--backend", "tests.test_run_heap:backend",
        ],
        cwd=ROOT, check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    results = [json.loads(line) for line in (job / "out.jsonl").read_text().splitlines()]
    assert all(r["status"] == "accepted" for r in results), results
    return [int(r["output"]) for r in results]


def test_a_run_freezes_its_heap_after_the_first_answers_not_before(tmp_path: Path) -> None:
    """The first call sees nothing frozen; the calls after the first answer see the heap frozen."""
    seen = _run(_job(tmp_path, 40), workers=1)
    assert seen[0] == 0  # the first answer came before start-up was over
    assert min(seen[-20:]) > 10_000  # litellm-free as it is, the start-up heap is large


def test_every_worker_process_freezes_its_own_heap(tmp_path: Path) -> None:
    """With two workers, only each worker's first call can come before its heap is frozen."""
    seen = _run(_job(tmp_path, 200), workers=2)
    assert seen.count(0) <= 2  # each worker's first answer, at most
    assert min(seen[-20:]) > 10_000


def test_a_job_run_from_a_program_leaves_its_collector_alone(tmp_path: Path) -> None:
    """A Runner in a program's own process (Job.settle_heap is off by default) freezes nothing."""
    job_dir = _job(tmp_path, 30)
    job = Job(str(job_dir / "tasks.jsonl"), str(job_dir / "policy.toml"), concurrency=1,
              workers=1, store=str(job_dir / "run.db"))  # fmt: skip
    with (
        Store(job_dir / "run.db") as store,
        (job_dir / "out.jsonl").open("w") as out,
        (job_dir / "bad.jsonl").open("w") as bad,
    ):
        runner = Runner(job, load_policies(job_dir / "policy.toml"), store, backend=backend())
        store.start_run(runner.run_id, {})
        asyncio.run(runner.run(read_lines(job_dir / "tasks.jsonl"), out, bad))
    assert gc.get_freeze_count() == 0
    assert runner.counts.results == 30
