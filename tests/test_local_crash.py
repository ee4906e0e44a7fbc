"""A local model's native crash is provider trouble, never the end of the run.

The model runs in a process of its own; here a stand-in (tests/stand_in_model.py) speaks its
protocol and kills itself with SIGILL or SIGSEGV, dies once and then works, or hangs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cascade import Store
from cascade.backends import LocalBackend
from cascade.backends.base import Request
from cascade.backends.local_process import ModelProcess, describe_exit
from cascade.errors import BackendCrashed, ProviderTimeout, ServerError

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = [sys.executable, str(Path(__file__).with_name("stand_in_model.py"))]


@pytest.fixture
def gguf(tmp_path: Path) -> str:
    """A model name for the stand-in: a .gguf file it never reads."""
    path = tmp_path / "stand-in.gguf"
    path.write_bytes(b"GGUF")
    return f"local/{path}"


def _ask(backend: LocalBackend, model: str, timeout_s: float = 30.0) -> str:
    request = Request(model, ({"role": "user", "content": "hi"},), timeout_s=timeout_s)
    return asyncio.run(backend.complete(request)).text


@pytest.mark.parametrize(
    ("name", "words"),
    [("SIGILL", "signal 4 (illegal instruction)"), ("SIGSEGV", "signal 11 (segmentation fault)")],
)
def test_a_model_that_keeps_dying_is_given_up_with_the_signal_named(
    gguf: str, name: str, words: str
) -> None:
    """Each death is a retried ServerError naming the signal; the third is permanent."""
    words = re.escape(words)
    with LocalBackend(command=[*STAND_IN, "--die", name], max_deaths=3) as backend:
        for _ in range(2):
            with pytest.raises(ServerError, match=rf"local model process died: {words}$"):
                _ask(backend, gguf)
        with pytest.raises(BackendCrashed, match=rf"died: {words} \(3 times in a row; given up"):
            _ask(backend, gguf)
        # Given up: later calls fail at once, without starting another process.
        with pytest.raises(BackendCrashed, match=words):
            _ask(backend, gguf)


def test_a_model_given_up_is_never_started_again(gguf: str, tmp_path: Path) -> None:
    """After its third death in a row, calls fail at once: no fourth process is started."""
    starts = tmp_path / "starts"
    command = [*STAND_IN, "--die", "SIGILL", "--starts", str(starts)]
    with LocalBackend(command=command, max_deaths=3) as backend:
        for _ in range(5):
            with pytest.raises((ServerError, BackendCrashed)):
                _ask(backend, gguf)
    assert starts.read_text() == "..."


def test_a_model_that_dies_once_is_started_again_and_answers(gguf: str, tmp_path: Path) -> None:
    """The call in flight fails; the next call gets a new process, which answers."""
    marker = tmp_path / "died"
    with LocalBackend(command=[*STAND_IN, "--die-once", str(marker)]) as backend:
        with pytest.raises(ServerError, match="signal 4"):
            _ask(backend, gguf)
        assert marker.exists()
        assert _ask(backend, gguf) == "ok"
        assert _ask(backend, gguf) == "ok"


def test_an_answer_resets_the_count_of_deaths(tmp_path: Path) -> None:
    """Deaths count in a row: one answer between them starts the count again."""
    marker = tmp_path / "died"
    process = ModelProcess("m", [*STAND_IN, "--die-once", str(marker)], max_deaths=2)
    with pytest.raises(ServerError):
        process.ask({"messages": [{"role": "user", "content": "x"}], "kwargs": {}}, 1e12)
    assert process.deaths == 1
    process.ask({"messages": [{"role": "user", "content": "x"}], "kwargs": {}}, 1e12)
    assert process.deaths == 0
    process.close()


def test_a_death_while_loading_counts(gguf: str) -> None:
    """A process that dies before its model is ready is a death like any other."""
    with LocalBackend(command=[*STAND_IN, "--die-loading", "SIGSEGV"], max_deaths=2) as backend:
        with pytest.raises(ServerError, match="signal 11"):
            _ask(backend, gguf)
        with pytest.raises(BackendCrashed, match="signal 11"):
            _ask(backend, gguf)


def test_a_process_past_the_deadline_is_stopped(gguf: str) -> None:
    """A call that outlasts its deadline times out, and the process computing it is killed."""
    with LocalBackend(command=[*STAND_IN, "--hang"]) as backend:
        with pytest.raises(ProviderTimeout, match="its process was stopped"):
            _ask(backend, gguf, timeout_s=0.5)
        process, _thread = backend._process(gguf)
        assert process._proc is None  # killed, and not counted as a death
        assert process.deaths == 0


def test_exits_are_described_in_words() -> None:
    """A signal is named with its number and its description; an exit by its status."""
    assert describe_exit(-signal.SIGKILL) == "signal 9 (killed)"
    assert describe_exit(-4) == "signal 4 (illegal instruction)"
    assert describe_exit(0) == "exit status 0"


POLICY = """\
task_type = "echo"
[[tiers]]
model = "{model}"
timeout_s = 30
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


def _run(tmp_path: Path, gguf: str, flags: str, tasks: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "policy.toml").write_text(POLICY.format(model=gguf))
    lines = [
        json.dumps({"id": f"t{n}", "type": "echo", "input": f"say ok {n}"}) for n in range(tasks)
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", "tasks.jsonl", "--policy", "policy.toml"),
        *("--store", "run.db", "--no-progress", "--concurrency", "1"),
        *("--backend", "tests.fake_backends:stand_in_local"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STAND_IN_FLAGS": flags}
    return subprocess.run(  # noqa: S603  # our own command line
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _results(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_run_whose_model_keeps_dying_ends_with_its_summary_and_keeps_what_was_done(
    tmp_path: Path, gguf: str
) -> None:
    """3 tasks answered, then SIGILL on every call: those 3 kept, the rest failed, exit 4."""
    done = _run(tmp_path, gguf, f"--die-after {tmp_path / 'answers'} 3", tasks=6)
    assert done.returncode == 4, done.stderr
    assert "6 tasks failed" not in done.stdout
    assert "3 tasks failed" in done.stdout  # the summary was written
    results = _results(tmp_path)
    assert sorted(str(r["id"]) for r in results) == [f"t{n}" for n in range(6)]
    accepted = [r for r in results if r["status"] == "accepted"]
    failed = [r for r in results if r["status"] == "failed"]
    assert len(accepted) == 3
    assert len(failed) == 3
    for result in failed:
        reasons = " ".join(map(str, result["reasons"]))  # type: ignore[call-overload]
        assert "local model process died: signal 4 (illegal instruction)" in reasons
    with Store(tmp_path / "run.db") as store:
        assert store.count("results") == 6


def test_a_run_whose_model_dies_once_serves_every_task(tmp_path: Path, gguf: str) -> None:
    """One death mid-run is retried on a new process: every task accepted, exit 0."""
    done = _run(tmp_path, gguf, f"--die-once {tmp_path / 'died'}", tasks=4)
    assert done.returncode == 0, done.stderr + done.stdout
    assert {r["status"] for r in _results(tmp_path)} == {"accepted"}
    with Store(tmp_path / "run.db") as store:
        errors = [e for (e,) in store.select("SELECT error FROM attempts WHERE error IS NOT NULL")]
    assert len(errors) == 1
    assert "signal 4 (illegal instruction)" in errors[0]
