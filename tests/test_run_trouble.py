"""Whole ``cascade run`` processes through provider trouble, against the loopback fake provider.

Each test starts :class:`cascade.testing.FakeOpenAI` in this process, points a two-tier policy at
it (a cheap tier, a dear tier: two model names on the same server), runs ``python -m
cascade.cli run`` as a real process, and checks what users see: every task's one result, the
exit code, the summary, and every file the run wrote.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.testing import FakeOpenAI, FakeReply
from cascade.tokens import count_tokens

ROOT = Path(__file__).resolve().parent.parent
CHEAP, DEAR = "openai/cheap-model", "openai/dear-model"

POLICY = """\
task_type = "echo"
{extra}
[[tiers]]
model = "{cheap}"
retries = 1
timeout_s = {timeout_s:g}
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[tiers]]
model = "{dear}"
retries = 1
timeout_s = {timeout_s:g}
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
[breaker]
failures = 5
cooldown_s = 0.5
"""

KEY = "plain-secret-value-7f3a9c2e51"
"""Not shaped like a key on purpose: only the policy says it is one."""


class Script:
    """A server's script: the n-th request (from 1) to each model gets ``reply(model, n)``."""

    def __init__(self, reply: Callable[[str, int], FakeReply]) -> None:
        self._reply = reply
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def __call__(self, body: dict[str, Any]) -> FakeReply:
        """The reply to the next request."""
        model = str(body.get("model", ""))
        with self._lock:
            number = self.counts[model] = self.counts.get(model, 0) + 1
        return self._reply(model, number)


def all_ok(_model: str, _n: int) -> FakeReply:
    """Every model answers "ok"."""
    return FakeReply("ok")


@pytest.fixture
def serve() -> Iterator[Callable[[Script], str]]:
    """Start the fake provider with a script; stop it afterwards."""
    servers: list[FakeOpenAI] = []

    def start(script: Script) -> str:
        server = FakeOpenAI(script)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def write_job(
    tmp_path: Path, url: str, tasks: int, *, extra: str = "", timeout_s: float = 2
) -> Path:
    """A policy and a tasks file in ``tmp_path``.

    A test that matches the calls the provider served against the calls stored needs calls
    that never time out (``timeout_s=60``): on a loaded machine a 2 s timeout cuts off calls the
    provider may or may not have seen, and they are retried.
    """
    policy = POLICY.format(extra=extra, cheap=CHEAP, dear=DEAR, url=url, key=KEY,
                           timeout_s=timeout_s)  # fmt: skip
    (tmp_path / "policy.toml").write_text(policy)
    lines = [
        json.dumps({"id": f"t{n}", "type": "echo", "input": f"say ok {n}"}) for n in range(tasks)
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def cascade_run(job: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``cascade run`` on the job, as a process; returns what it did."""
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl")),
        *("--policy", str(job / "policy.toml"), "--out", str(job / "results.jsonl")),
        *("--store", str(job / "run.db"), "--no-progress", "--concurrency", "8", *args),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(  # noqa: S603  # our own command line
        command, cwd=job, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def results(job: Path) -> list[dict[str, Any]]:
    """The results file's lines."""
    return [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]


def statuses(job: Path) -> dict[str, int]:
    """How many results ended in each status; fails if a task has no result or two."""
    lines = results(job)
    ids = [r["id"] for r in lines]
    assert len(ids) == len(set(ids)), "a task has two results"
    counts: dict[str, int] = {}
    for line in lines:
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    return counts


def test_a_burst_of_500s_is_waited_out_and_never_escalates(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """20 HTTP 500s in a row from the cheap model: every task accepted there, none climbs."""
    script = Script(
        lambda m, n: FakeReply(status=500) if m == "cheap-model" and n <= 20 else FakeReply("ok")
    )
    job = write_job(tmp_path, serve(script), 100)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 100}
    assert {r["model"] for r in results(job)} == {"cheap-model"}
    assert "dear-model" not in script.counts
    assert "5xx server errors" in run.stdout
    assert "0 by a provider error" in run.stdout


def test_a_malformed_burst_is_waited_out_on_the_cheap_tier(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """Malformed bodies and dropped connections open the breaker; nobody climbs for them."""

    def reply(model: str, n: int) -> FakeReply:
        if model == "cheap-model" and n <= 10:
            return FakeReply(body=b'{"choices": [tru') if n % 2 else FakeReply(drop=True)
        return FakeReply("ok")

    script = Script(reply)
    job = write_job(tmp_path, serve(script), 60)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 60}
    assert "dear-model" not in script.counts
    assert "malformed replies" in run.stdout
    assert "1 breaker trips" in run.stdout


def test_a_burst_of_429s_never_escalates(tmp_path: Path, serve: Callable[[Script], str]) -> None:
    """Rate limits pause the cheap model; no task moves up because of them."""

    def reply(model: str, n: int) -> FakeReply:
        if model == "cheap-model" and n <= 30:
            return FakeReply(status=429, headers={"Retry-After": "0.2"})
        return FakeReply("ok")

    script = Script(reply)
    job = write_job(tmp_path, serve(script), 60)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 60}
    assert "dear-model" not in script.counts
    assert "429 rate limited" in run.stdout


def test_an_outage_past_the_bound_fails_tasks_exits_4_and_retry_failed_recovers_them(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """Down past --max-outage-s: tasks end failed, exit 4; --retry-failed runs exactly those."""
    down = threading.Event()
    down.set()
    script = Script(lambda _m, _n: FakeReply(status=503) if down.is_set() else FakeReply("ok"))
    job = write_job(tmp_path, serve(script), 20)
    run = cascade_run(job, "--max-outage-s", "0.5")
    assert run.returncode == 4, run.stdout + run.stderr
    assert statuses(job) == {"failed": 20}
    assert all("provider unavailable since" in r["reasons"][0] for r in results(job))
    assert "--retry-failed" in run.stdout
    assert "top failure reasons" in run.stdout
    spent_before = _spent(job)
    down.clear()
    again = cascade_run(job, "--retry-failed")
    assert again.returncode == 0, again.stdout + again.stderr
    assert statuses(job) == {"accepted": 20}
    assert "20 tasks that had failed were run again" in again.stdout
    assert _spent(job) >= spent_before
    with sqlite3.connect(job / "run.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 20
    # A plain rerun now calls nothing.
    calls = sum(script.counts.values())
    assert cascade_run(job).returncode == 0
    assert sum(script.counts.values()) == calls


def test_a_short_outage_is_waited_out(tmp_path: Path, serve: Callable[[Script], str]) -> None:
    """The provider answers 503 for 1.5 s: every task waits, then is accepted on the cheap tier."""
    start = time.monotonic()
    script = Script(
        lambda _m, _n: FakeReply(status=503) if time.monotonic() - start < 1.5 else FakeReply("ok")
    )
    job = write_job(tmp_path, serve(script), 40)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 40}
    assert {r["model"] for r in results(job)} == {"cheap-model"}


def test_a_refused_key_fails_at_once_and_leaks_into_no_file(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """A 401 whose body echoes the key: tasks fail at once, saying so; no output holds the key."""
    script = Script(lambda _m, _n: FakeReply(status=401, echo_key=True))
    job = write_job(tmp_path, serve(script), 10)
    run = cascade_run(job)
    assert run.returncode == 4, run.stdout + run.stderr
    assert statuses(job) == {"failed": 10}
    assert all("AuthenticationFailed" in " ".join(r["reasons"]) for r in results(job))
    assert all(n <= 2 for n in script.counts.values()) or sum(script.counts.values()) <= 20
    report = _cli("report", str(job / "run.db"))
    export = _cli("export", str(job / "run.db"), "--out", str(job / "export"))
    outputs = [run.stdout, run.stderr, report.stdout, report.stderr, export.stdout, export.stderr]
    with sqlite3.connect(job / "run.db") as db:
        outputs.append("\n".join(db.iterdump()))
    for path in job.rglob("*"):
        if path.is_file() and path.name not in {
            "policy.toml",
            "run.db",
            "run.db-wal",
            "run.db-shm",
        }:
            outputs.append(path.read_text(errors="replace"))
    leaks = [text for text in outputs if KEY in text]
    assert not leaks, leaks[0][:2000]
    assert any("[REDACTED]" in text for text in outputs)  # the echo was there, and cleaned


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603  # our own command line
        [sys.executable, "-m", "cascade.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _spent(job: Path) -> float:
    with sqlite3.connect(job / "run.db") as db:
        return float(db.execute("SELECT total(cost_usd) FROM attempts").fetchone()[0])


def test_a_call_that_could_pass_the_task_budget_is_never_made(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """A huge input would cost more than the cap on any tier: refused before any request."""
    script = Script(all_ok)
    job = write_job(tmp_path, serve(script), 3, extra="[budget]\nmax_cost_per_task_usd = 0.01")
    huge = json.dumps({"id": "huge", "type": "echo", "input": "word " * 60_000})
    with (job / "tasks.jsonl").open("a") as tasks:
        tasks.write(huge + "\n")
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    by_id = {r["id"]: r for r in results(job)}
    assert by_id["huge"]["status"] == "budget_exhausted"
    assert "could cost up to" in by_id["huge"]["reasons"][0]
    assert by_id["huge"]["cost_usd"] == 0
    assert sum(script.counts.values()) == 3  # only the three small tasks were sent
    assert all(by_id[f"t{n}"]["status"] == "accepted" for n in range(3))


def test_max_input_bytes_quarantines_a_long_task_with_its_line(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """A task longer than the policy's max_input_bytes is quarantined, never sent."""
    script = Script(all_ok)
    job = write_job(tmp_path, serve(script), 2, extra="max_input_bytes = 1000")
    with (job / "tasks.jsonl").open("a") as tasks:
        tasks.write(json.dumps({"id": "long", "type": "echo", "input": "x" * 5000}) + "\n")
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    quarantined = [
        json.loads(x) for x in (job / "results.quarantine.jsonl").read_text().splitlines()
    ]
    assert [q["line"] for q in quarantined] == [3]
    assert "5000 bytes, over max_input_bytes = 1000" in quarantined[0]["reason"]
    assert sum(script.counts.values()) == 2


def test_a_tier_nobody_can_price_is_refused_by_check_and_by_run(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """No price on the tier and none in litellm's map: file:line, before any call."""
    script = Script(all_ok)
    job = write_job(tmp_path, serve(script), 2)
    policy = (job / "policy.toml").read_text()
    cut = policy.index("price = {{ input_usd_per_mtok = 1.0".replace("{{", "{"))
    policy = policy[:cut] + policy[policy.index("\n", cut) + 1 :]  # the cheap tier's price goes
    (job / "policy.toml").write_text(policy)
    line = policy.splitlines().index(f'model = "{CHEAP}"') + 1
    check = _cli("policy", "check", str(job / "policy.toml"))
    assert check.returncode == 1
    assert f"policy.toml:{line}: tiers[0].model: no price is known for '{CHEAP}'" in check.stdout
    assert "set a price on the tier" in check.stdout
    run = cascade_run(job)
    assert run.returncode == 2
    assert f"policy.toml:{line}:" in run.stderr
    assert "set a price on the tier" in run.stderr
    assert "Traceback" not in run.stderr
    assert script.counts == {}


def _start(job: Path, *args: str) -> subprocess.Popen[str]:
    command = [
        *(sys.executable, "-m", "cascade.cli", "run", str(job / "tasks.jsonl")),
        *("--policy", str(job / "policy.toml"), "--out", str(job / "results.jsonl")),
        *("--store", str(job / "run.db"), "--no-progress", "--concurrency", "8", *args),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(  # noqa: S603  # our own command line
        command, cwd=job, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _wait_for(script: Script, requests: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(script.counts.values()) < requests:
        assert time.monotonic() < deadline, f"only {script.counts} requests came"
        time.sleep(0.05)


def test_sigterm_stops_every_worker_and_a_rerun_resumes_exactly_once(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """SIGTERM to the main process: workers stop calling, exit 143, no traceback; rerun ends it."""
    script = Script(lambda _m, _n: FakeReply("ok", delay_s=0.2))
    job = write_job(tmp_path, serve(script), 400, timeout_s=60)
    process = _start(job, "--workers", "2")
    _wait_for(script, 40)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, out + err
    assert "Rerun the same command to resume" in out
    assert "Traceback" not in err
    stopped = sum(script.counts.values())
    time.sleep(1.0)
    assert sum(script.counts.values()) == stopped, "a worker kept calling the provider"
    again = cascade_run(job, "--workers", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert statuses(job) == {"accepted": 400}
    # Every request the provider served is in the store's spend, repeated calls included.
    assert _spent(job) == pytest.approx(sum(script.counts.values()) * 5e-6)


def test_ctrl_c_cuts_off_hung_calls_and_keeps_what_they_paid_for(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """Ctrl-C on the terminal (SIGINT to the group): exit 130, no traceback, no step lost."""

    def reply(model: str, _n: int) -> FakeReply:
        if model == "cheap-model":
            return FakeReply("no")  # rejected: every task climbs to the dear tier
        return FakeReply("ok", delay_s=30)  # which hangs

    script = Script(reply)
    job = write_job(tmp_path, serve(script), 20)
    process = _start(job, "--workers", "1", "--grace", "0.5")
    _wait_for(script, 16)
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err
    assert "Rerun the same command to resume" in out
    with sqlite3.connect(job / "run.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone()[0] == 0
        cheap = db.execute(
            "SELECT count(*) FROM attempts WHERE model_requested = ? AND error IS NULL", (CHEAP,)
        ).fetchone()[0]
        dear = db.execute("SELECT count(*) FROM attempts WHERE model_requested = ?", (DEAR,))
        cut = db.execute(
            "SELECT task_id, cost_usd FROM attempts WHERE model_requested = ? AND decision = ?",
            (DEAR, "cancel"),
        ).fetchall()
        dear_calls = dear.fetchone()[0]
    # The cheap answers the cut-off tasks got were paid for: they are stored and spent. So is
    # every dear call the provider received, and those cut off in flight cost their prompt.
    assert cheap == script.counts["cheap-model"]
    assert dear_calls == script.counts["dear-model"]
    assert cut
    sent = {task: count_tokens([{"role": "user", "content": f"say ok {task[1:]}"}])
            for task, _ in cut}  # fmt: skip
    for task, cost in cut:
        assert cost == pytest.approx(sent[task] * 10.0 / 1e6)
    assert _spent(job) == pytest.approx(cheap * 5e-6 + sum(cost for _, cost in cut))


def test_a_single_failed_task_exits_4(tmp_path: Path, serve: Callable[[Script], str]) -> None:
    """One task of three refused (a 401 to the first request): the run exits 4, not 0."""
    script = Script(lambda m, n: FakeReply(status=401) if n == 1 else FakeReply("ok"))
    job = write_job(tmp_path, serve(script), 3)
    run = cascade_run(job, "--concurrency", "1")
    assert run.returncode == 4, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 2, "failed": 1}
    assert "1 tasks failed" in run.stdout


def test_an_input_of_exactly_max_input_bytes_is_sent_and_one_byte_more_is_quarantined(
    tmp_path: Path, serve: Callable[[Script], str]
) -> None:
    """The limit counts UTF-8 bytes and is inclusive: 1,000 bytes are run, 1,001 are not."""
    script = Script(all_ok)
    job = write_job(tmp_path, serve(script), 0, extra="max_input_bytes = 1000")
    exact = {"id": "exact", "type": "echo", "input": "é" * 500}  # 500 characters, 1,000 bytes
    over = {"id": "over", "type": "echo", "input": "x" * 1001}
    (job / "tasks.jsonl").write_text(json.dumps(exact) + "\n" + json.dumps(over) + "\n")
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    quarantined = [
        json.loads(x) for x in (job / "results.quarantine.jsonl").read_text().splitlines()
    ]
    assert [q["line"] for q in quarantined] == [2]
    assert "1001 bytes, over max_input_bytes = 1000" in quarantined[0]["reason"]
    assert {r["id"]: r["status"] for r in results(job)} == {
        "exact": "accepted",
        "over": "quarantined",
    }
    assert sum(script.counts.values()) == 1
