"""Whole ``cascade record`` processes against the loopback fake provider.

Each test writes a dataset (30 tasks of three kinds, every one answered by the served model),
starts :class:`cascade.testing.FakeOpenAI` in this process, points a policy's tiers at it, runs
``python -m cascade.cli record`` as a real process and checks what users see: the answers added
to the dataset, what the provider was asked (each pair once), the exit status and the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.testing import FakeBatches, FakeOpenAI, FakeReply

ROOT = Path(__file__).resolve().parent.parent
KEY = "plain-secret-value-4d1e8b7a"
CHEAP, DEAR, SERVED = "openai/cheap-model", "openai/dear-model", "gpt-4o-mini"
KINDS = {"extract": 15, "classify": 10, "qa": 5}

POLICY = """\
task_type = "extract"
[[tiers]]
model = "{cheap}"
reasks = 2
fallbacks = ["openai/never-asked"]
timeout_s = 5
retries = 1
{cheap_extra}
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = {cheap_in}, output_usd_per_mtok = {cheap_out} }}
[[tiers]]
model = "{dear}"
timeout_s = 5
retries = 1
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["never"]
"""


class Provider:
    """The fake provider, answering ``MODEL: answer to PROMPT``; counts each (model, prompt).

    ``hook`` is called with the number of requests so far as each one comes (tests kill from
    there); ``delay_s`` slows every answer.
    """

    def __init__(self, batches: FakeBatches | None = None, delay_s: float = 0.0) -> None:
        self.asked: Counter[tuple[str, str]] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.delay_s = delay_s
        self.hook: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self.server = FakeOpenAI(self._reply, batches=batches)

    def _reply(self, body: dict[str, Any]) -> FakeReply:
        model, prompt = str(body["model"]), str(body["messages"][-1]["content"])
        with self._lock:
            self.asked[(model, prompt)] += 1
            self.bodies.append(body)
            count = len(self.bodies)
        if self.hook is not None:
            self.hook(count)
        return FakeReply(f"{model}: answer to {prompt}", delay_s=self.delay_s)

    def pairs(self) -> Counter[tuple[str, str]]:
        """How often each (task id, model) was asked; the model as the policy names it."""
        return Counter(
            {(prompt.removeprefix("question "), f"openai/{model}"): n
             for (model, prompt), n in self.asked.items()}
        )  # fmt: skip


@pytest.fixture
def provider() -> Iterator[Provider]:
    """A running fake provider."""
    found = Provider()
    with found.server:
        yield found


def write_dataset(folder: Path, kinds: dict[str, int] | None = None) -> Path:
    """A dataset: tasks of each kind, each answered by the served model."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks, rows = [], []
    for kind, count in (kinds or KINDS).items():
        for n in range(count):
            task_id = f"{kind}-{n:02d}"
            prompt = [{"role": "user", "content": f"question {task_id}"}]
            tasks.append({"id": task_id, "kind": kind, "weight": 1, "messages": prompt})
            rows.append({"task_id": task_id, "model": SERVED, "output": "served answer",
                         "prompt_tokens": 3, "completion_tokens": 2, "cost_usd": 1.7e-06,
                         "latency_s": 0.4, "correct": None})  # fmt: skip
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (folder / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    models = [{"name": SERVED, "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6,
               "price_source": "test"}]  # fmt: skip
    (folder / "models.json").write_text(json.dumps(models, indent=2) + "\n")
    return folder


def write_policy(
    folder: Path, url: str, *, cheap_extra: str = "", cheap_in: float = 1.0, cheap_out: float = 2.0
) -> Path:
    """The user's policy: a cheap and a dear tier on the fake provider."""
    path = folder / "policy.toml"
    path.write_text(POLICY.format(cheap=CHEAP, dear=DEAR, url=url, key=KEY,
                                  cheap_extra=cheap_extra, cheap_in=cheap_in,
                                  cheap_out=cheap_out))  # fmt: skip
    return path


def record_command(data: Path, policy: Path, *args: str) -> list[str]:
    """The command line of ``cascade record`` with both models."""
    return [
        *(sys.executable, "-m", "cascade.cli", "record", str(data), "--policy", str(policy)),
        *("--model", CHEAP, "--model", DEAR, "--no-progress", *args),
    ]


def environment() -> dict[str, str]:
    """The environment of a record process: this checkout, and no real key."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("OPENAI_API_KEY", None)
    return env


def record(data: Path, policy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cascade record`` as a process, waited for."""
    return subprocess.run(  # noqa: S603  # our own command line
        record_command(data, policy, *args),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def responses(data: Path) -> list[dict[str, Any]]:
    """The dataset's response rows."""
    return [json.loads(line) for line in (data / "responses.jsonl").read_text().splitlines()]


def recorded(data: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows record added, by (task id, model); fails if a pair has two rows."""
    rows = [r for r in responses(data) if r["model"] != SERVED]
    pairs = Counter((r["task_id"], r["model"]) for r in rows)
    assert set(pairs.values()) <= {1}, "a pair has two rows"
    return {(r["task_id"], r["model"]): r for r in rows}


def test_each_sampled_pair_is_asked_once_and_added_with_tokens_cost_and_latency(
    tmp_path: Path, provider: Provider
) -> None:
    """12 of 30 tasks, stratified 6/4/2, times two models: 24 calls, 24 rows, nothing else."""
    data = write_dataset(tmp_path / "data")
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "12", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair was asked twice"
    assert len(asked) == 24
    assert {m for _, m in asked} == {CHEAP, DEAR}, "no fallback, no other model"
    tasks = {t for t, _ in asked}
    assert Counter(t.split("-")[0] for t in tasks) == {"extract": 6, "classify": 4, "qa": 2}
    rows = recorded(data)
    assert set(rows) == set(asked)
    for (task_id, model), row in rows.items():
        assert row["output"] == f"{model.removeprefix('openai/')}: answer to question {task_id}"
        assert row["prompt_tokens"] == 2
        assert row["completion_tokens"] == 5
        per_mtok = (1.0, 2.0) if model == CHEAP else (10.0, 20.0)
        assert row["cost_usd"] == pytest.approx((2 * per_mtok[0] + 5 * per_mtok[1]) / 1e6)
        assert row["latency_s"] > 0
        assert row["correct"] is None
    assert len(responses(data)) == 30 + 24, "the served model's rows are all kept"
    models = {m["name"]: m for m in json.loads((data / "models.json").read_text())}
    assert models[CHEAP]["input_usd_per_mtok"] == 1.0
    assert models[DEAR]["output_usd_per_mtok"] == 20.0
    assert models[SERVED]["price_source"] == "test"
    for name in ("tasks.jsonl", "responses.jsonl", "models.json"):
        assert KEY not in (data / name).read_text(), f"the policy's key is in {name}"
    assert "24 pairs to ask" in done.stdout
    assert "added 24 answers" in done.stdout


def test_a_rerun_asks_nothing_and_a_larger_sample_asks_only_the_new_pairs(
    tmp_path: Path, provider: Provider
) -> None:
    """The same command again resumes its finished job; --sample 18 asks the 6 new tasks."""
    data = write_dataset(tmp_path / "data")
    policy = write_policy(tmp_path, provider.server.base_url)
    assert record(data, policy, "--sample", "12").returncode == 0
    again = record(data, policy, "--sample", "12")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(resumed)" in again.stdout
    assert sum(provider.pairs().values()) == 24
    larger = record(data, policy, "--sample", "18")
    assert larger.returncode == 0, larger.stdout + larger.stderr
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair was asked twice"
    assert len(asked) == len(recorded(data)) == 36


def test_pairs_the_dataset_has_are_not_asked(tmp_path: Path, provider: Provider) -> None:
    """A model the dataset already has for some tasks is asked only for the others."""
    data = write_dataset(tmp_path / "data", {"qa": 6})
    with (data / "responses.jsonl").open("a") as rows:
        for n in range(4):
            rows.write(json.dumps({"task_id": f"qa-{n:02d}", "model": CHEAP, "output": "kept",
                                   "correct": None}) + "\n")  # fmt: skip
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    asked = provider.pairs()
    assert sorted(t for t, m in asked if m == CHEAP) == ["qa-04", "qa-05"]
    assert len([1 for _, m in asked if m == DEAR]) == 6
    assert "8 pairs to ask; 4 already in the dataset" in done.stdout
    assert recorded(data)[("qa-00", CHEAP)]["output"] == "kept"


def test_the_budget_stops_the_record_and_a_higher_budget_finishes_it(
    tmp_path: Path, provider: Provider
) -> None:
    """Cheap calls at $0.001, --budget 0.004: it stops after a few; what was asked is kept.

    The rerun with more asks only the rest, none of them twice.
    """
    data = write_dataset(tmp_path / "data", {"qa": 10})
    policy = write_policy(tmp_path, provider.server.base_url, cheap_in=0.0, cheap_out=200.0)
    done = record(data, policy, "--sample", "10", "--budget", "0.004", "--concurrency", "1")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "budget reached" in done.stdout
    first = recorded(data)
    assert 4 <= len(first) < 20
    assert sum(r["cost_usd"] for r in first.values()) < 0.004 + 0.001, "one call past at most"
    assert set(first) == set(provider.pairs()), "every paid answer is in the dataset"
    more = record(data, policy, "--sample", "10", "--budget", "1", "--concurrency", "1")
    assert more.returncode == 0, more.stdout + more.stderr
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair was asked twice"
    assert len(asked) == len(recorded(data)) == 20


def test_an_older_job_resumed_does_not_ask_pairs_a_later_job_answered(
    tmp_path: Path, provider: Provider
) -> None:
    """Stopped by the budget, then a larger sample finishes it all: the first job asks nothing."""
    data = write_dataset(tmp_path / "data", {"qa": 20})
    policy = write_policy(tmp_path, provider.server.base_url, cheap_in=0.0, cheap_out=200.0)
    first = ("--sample", "10", "--concurrency", "1")
    stopped = record(data, policy, *first, "--budget", "0.004")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    larger = record(data, policy, "--sample", "20", "--concurrency", "1")
    assert larger.returncode == 0, larger.stdout + larger.stderr
    assert len(recorded(data)) == 40
    again = record(data, policy, *first, "--budget", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(resumed)" in again.stdout
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair was asked twice"
    assert len(asked) == len(recorded(data)) == 40


def test_a_dry_run_prints_the_floor_and_worst_case_and_calls_nothing(
    tmp_path: Path, provider: Provider
) -> None:
    """No call, no file written: the dataset is as it was, and no record store or job exists."""
    data = write_dataset(tmp_path / "data")
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "12", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not provider.asked
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    assert "24 pairs to ask" in done.stdout
    total = next(line for line in done.stdout.splitlines() if line.startswith("total:"))
    floor = float(total.split("floor $")[1].split()[0])
    worst = float(total.split("worst case $")[1].split()[0])
    assert 0 < floor <= worst
    # 12 prompts of 2 tokens (+ chat overhead) and 256-token answers, at $2 and $20 per Mtok out:
    assert floor == pytest.approx(12 * 256 * (2.0 + 20.0) / 1e6, rel=0.05)
    assert "no model was called" in done.stdout


def _row(**field: Any) -> str:
    """A response line for qa-00 with one field of the wrong kind."""
    row = {"task_id": "qa-00", "model": SERVED, "output": "served answer", "prompt_tokens": 3,
           "completion_tokens": 2, "cost_usd": 1e-06, "latency_s": 0.4,
           "correct": None}  # fmt: skip
    return json.dumps(row | field) + "\n"


def _task(**field: Any) -> str:
    """A task line with the id of the dataset's first task (qa-00)."""
    task = {"id": "qa-00", "kind": "qa", "weight": 1, "input": "question qa-00"}
    return json.dumps(task | field) + "\n"


@pytest.mark.parametrize(
    ("name", "line", "text", "where"),
    [
        ("tasks.jsonl", 3, "{not json\n", "tasks.jsonl:3"),
        ("tasks.jsonl", 2, '{"id": "x", "kind": "qa"}\n', "tasks.jsonl:2"),
        ("responses.jsonl", 4, '{"task_id": "qa-00"}\n', "responses.jsonl:4"),
        ("responses.jsonl", 1, "[1, 2\n", "responses.jsonl:1"),
        ("models.json", 1, "[{", "models.json:1"),
        ("responses.jsonl", 2, _row(prompt_tokens="14 tokens"), "responses.jsonl:2"),
        ("responses.jsonl", 3, _row(cost_usd="cheap"), "responses.jsonl:3"),
        ("responses.jsonl", 3, _row(cost_usd=[1]), "responses.jsonl:3"),
        ("responses.jsonl", 5, _row(latency_s="fast"), "responses.jsonl:5"),
        ("responses.jsonl", 1, _row(correct="yes"), "responses.jsonl:1"),
        ("tasks.jsonl", 4, _task(id="qa-03", weight="x"), "tasks.jsonl:4"),
        ("tasks.jsonl", 5, _task(), "tasks.jsonl:5"),
    ],
    ids=[
        *("task-not-json", "task-no-prompt", "response-no-model", "response-not-json", "models"),
        *("tokens-text", "cost-text", "cost-list", "latency-text", "correct-text"),
        *("weight-text", "task-id-twice"),
    ],
)
def test_a_malformed_dataset_line_is_named_by_file_and_line_and_nothing_is_written(
    tmp_path: Path, provider: Provider, name: str, line: int, text: str, where: str
) -> None:
    """Exit 2 with ``FILE:LINE``; no call, and the dataset's files are as they were."""
    data = write_dataset(tmp_path / "data", {"qa": 5})
    path = data / name
    lines = path.read_text().splitlines(keepends=True)
    if name == "models.json":
        lines = [text]
    else:
        lines[line - 1] = text
    path.write_text("".join(lines))
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "5")
    assert done.returncode == 2, done.stdout + done.stderr
    assert where in done.stderr
    assert done.stderr.startswith("cascade: error: "), "one line, no traceback"
    assert not provider.asked
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before


def test_a_batch_tier_is_asked_through_the_batch_api_at_the_batch_price(tmp_path: Path) -> None:
    """The cheap tier says mode = "batch": each of its pairs goes in a batch once, at half price."""
    provider = Provider(FakeBatches(complete_after_s=0.2))
    with provider.server:
        data = write_dataset(tmp_path / "data", {"qa": 8})
        batch = 'mode = "batch"\nbatch_wait_s = 0.3'
        policy = write_policy(tmp_path, provider.server.base_url, cheap_extra=batch)
        done = record(data, policy, "--sample", "8")
        assert done.returncode == 0, done.stdout + done.stderr
        answered = provider.server.batches.answered
    assert len(answered) == len(set(answered)) == 8, "each cheap pair went in a batch once"
    assert set(provider.pairs().values()) == {1}
    rows = recorded(data)
    assert len(rows) == 16
    for (_task, model), row in rows.items():
        full = (
            (row["prompt_tokens"] * 1.0 + row["completion_tokens"] * 2.0) / 1e6
            if model == CHEAP
            else (row["prompt_tokens"] * 10.0 + row["completion_tokens"] * 20.0) / 1e6
        )
        assert row["cost_usd"] == pytest.approx(full * (0.5 if model == CHEAP else 1.0))
    assert "batch API   openai/cheap-model" in done.stdout
    models = {m["name"]: m for m in json.loads((data / "models.json").read_text())}
    assert "batch-API price" in models[CHEAP]["price_source"]


def test_a_dry_run_prices_a_batch_tier_at_its_batch_price(
    tmp_path: Path, provider: Provider
) -> None:
    """The same pairs cost half as much in a dry run once the cheap tier says mode = "batch"."""
    data = write_dataset(tmp_path / "data", {"qa": 4})
    totals = []
    for extra in ("", 'mode = "batch"'):
        policy = write_policy(tmp_path, provider.server.base_url, cheap_extra=extra)
        done = record(data, policy, "--sample", "4", "--dry-run")
        assert done.returncode == 0, done.stdout + done.stderr
        cheap = next(line for line in done.stdout.splitlines() if line.startswith(f"{CHEAP}:"))
        totals.append(float(cheap.split("worst case $")[1].split()[0]))
    assert totals[1] == pytest.approx(totals[0] / 2)
    assert not provider.asked


def test_pairs_no_answer_came_for_are_asked_again_with_retry_failed(tmp_path: Path) -> None:
    """The dear model refuses the key: its pairs fail (exit 4); --retry-failed asks only them."""
    refused = threading.Event()
    refused.set()
    provider = Provider()
    answer = provider._reply

    def reply(body: dict[str, Any]) -> FakeReply:
        if refused.is_set() and body["model"] == "dear-model":
            return FakeReply(status=401)
        return answer(body)

    with FakeOpenAI(reply) as server:
        data = write_dataset(tmp_path / "data", {"qa": 5})
        policy = write_policy(tmp_path, server.base_url)
        failed = record(data, policy, "--sample", "5")
        assert failed.returncode == 4, failed.stdout + failed.stderr
        assert {m for _, m in recorded(data)} == {CHEAP}
        refused.clear()
        again = record(data, policy, "--sample", "5", "--retry-failed")
        assert again.returncode == 0, again.stdout + again.stderr
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair with an answer was asked again"
    assert len(asked) == len(recorded(data)) == 10


def test_worker_processes_ask_each_pair_once(tmp_path: Path, provider: Provider) -> None:
    """Two worker processes share the job's store and its policies: each pair once."""
    data = write_dataset(tmp_path / "data", {"qa": 10})
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "10", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 workers" in done.stdout
    asked = provider.pairs()
    assert set(asked.values()) == {1}
    assert len(asked) == len(recorded(data)) == 20


def test_a_dataset_moved_between_runs_is_not_asked_again(
    tmp_path: Path, provider: Provider
) -> None:
    """Stopped by the budget, moved, recorded again: the new place asks only what is left."""
    data = write_dataset(tmp_path / "data", {"qa": 10})
    policy = write_policy(tmp_path, provider.server.base_url, cheap_in=0.0, cheap_out=200.0)
    stopped = record(data, policy, "--sample", "10", "--budget", "0.003", "--concurrency", "1")
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    moved = data.rename(tmp_path / "moved")
    done = record(moved, policy, "--sample", "10", "--concurrency", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(planned)" in done.stdout
    asked = provider.pairs()
    assert set(asked.values()) == {1}, "a pair was asked twice"
    assert len(asked) == len(recorded(moved)) == 20


def test_a_model_the_policy_has_no_tier_of_is_named_as_called_by_its_plain_name(
    tmp_path: Path, provider: Provider
) -> None:
    """--model openai/other with a policy that lacks it: said so before anything is asked."""
    data = write_dataset(tmp_path / "data", {"qa": 2})
    policy = write_policy(tmp_path, provider.server.base_url)
    done = record(data, policy, "--sample", "2", "--model", "openai/other", "--dry-run")
    assert f"{policy} has no tier of openai/other: asked by its plain name" in done.stdout
