"""Worker processes come from a fork server, and each runs in its coordinator's environment.

The fork server keeps the environment it started with; a worker forked from it takes on the
environment its coordinator has when it starts the workers (an API key set since, say). Here a
backend answers every call with an environment variable as the worker process sees it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from cascade.backends import ScriptedBackend
from cascade.backends.base import Request
from cascade.backends.scripted import Reply
from cascade.policy import load_policies
from cascade.run import spawning
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.store import Store

MARK = "CASCADE_TEST_SPAWN_MARK"
POLICY = """\
task_type = "echo"
prompt = "{input}"
[[tiers]]
model = "env"
retries = 0
price = { input_usd_per_mtok = 0.1, output_usd_per_mtok = 0.1 }
"""


def _mark(_request: Request) -> Reply:
    return Reply(f"{os.environ.get(MARK, 'unset')}:{os.getpid()}")


def backend() -> ScriptedBackend:
    """Every call answers with the worker's ``MARK`` variable and process id."""
    return ScriptedBackend({"env": _mark})


def _run_two_workers(folder: Path, tasks: int) -> list[str]:
    """What the calls of a two-worker run answered, in the order the results were written."""
    folder.mkdir()
    (folder / "policy.toml").write_text(POLICY)
    lines = (json.dumps({"id": f"t{n}", "input": f"q{n}"}) for n in range(tasks))
    (folder / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    job = Job(str(folder / "tasks.jsonl"), str(folder / "policy.toml"), concurrency=2,
              workers=2, store=str(folder / "run.db"), backend="tests.test_spawning:backend",
              progress=False)  # fmt: skip
    with (
        Store(folder / "run.db") as store,
        (folder / "out.jsonl").open("w") as out,
        (folder / "bad.jsonl").open("w") as bad,
    ):
        runner = Runner(job, load_policies(folder / "policy.toml"), store)
        store.start_run(runner.run_id, {})
        asyncio.run(runner.run(read_lines(folder / "tasks.jsonl"), out, bad))
    results = [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]
    assert len(results) == tasks
    return [str(r["output"]) for r in results]


def test_workers_see_the_environment_their_coordinator_has_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set after the fork server started, or unset since: the workers see it as it is now."""
    monkeypatch.setenv(MARK, "when the fork server started")
    spawning.start_early(litellm=False)
    monkeypatch.setenv(MARK, "when the workers started")
    first = _run_two_workers(tmp_path / "first", 40)
    assert {answer.split(":")[0] for answer in first} == {"when the workers started"}
    assert len({answer.split(":")[1] for answer in first}) <= 2
    monkeypatch.delenv(MARK)
    second = _run_two_workers(tmp_path / "second", 20)
    assert {answer.split(":")[0] for answer in second} == {"unset"}


def test_where_there_is_no_fork_server_workers_are_spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without ``forkserver`` starts each worker fresh, and starts no server early."""
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert spawning.worker_context(litellm=True).get_start_method() == "spawn"
    spawning.start_early(litellm=True)  # nothing to start


def test_where_there_is_one_workers_come_from_the_fork_server() -> None:
    """On Linux, the workers are forked from the server."""
    assert spawning.worker_context(litellm=False).get_start_method() == "forkserver"
