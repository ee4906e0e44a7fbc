"""Batch tiers in whole ``cascade run`` processes, against the loopback fake's batch API.

The fake provider (:class:`cascade.testing.FakeOpenAI` with :class:`FakeBatches`) runs in this
process; ``cascade run`` is a real process whose cheap tier says ``mode = "batch"``. What users
see is checked: each task's one result, what the provider ran (each request once), what was paid
(the batch price), and the steps and events that say what happened.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cascade.testing import FakeBatches, FakeOpenAI, FakeReply
from tests.test_run_trouble import KEY, cascade_run, results, statuses

POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap-model"
mode = "batch"
{batch}
reasks = {reasks}
retries = 0
timeout_s = 2
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[tiers]]
model = "openai/dear-model"
retries = 0
timeout_s = 2
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


class Provider:
    """The fake provider and what it was asked: batch items by custom_id, chat calls by model."""

    def __init__(self, batches: FakeBatches) -> None:
        self.chat: list[tuple[str, str]] = []
        self.server = FakeOpenAI(self._reply, batches=batches)

    def _reply(self, body: dict[str, Any]) -> FakeReply:
        """No from the cheap model to "hard" tasks; a 500 to the first ask of "flaky" ones."""
        model, text = str(body["model"]), str(body["messages"][-1]["content"])
        first = (model, text) not in self.chat
        self.chat.append((model, text))
        if model == "cheap-model" and "hard" in text:
            return FakeReply("no")
        if "flaky" in text and first:
            return FakeReply(status=500)
        return FakeReply("ok")

    def calls(self) -> dict[str, int]:
        """How many requests each model ran, batch items included."""
        return dict(Counter(model for model, _ in self.chat))


@pytest.fixture
def provider() -> Iterator[Provider]:
    """The fake provider with batches due 0.3 s after they are made."""
    found = Provider(FakeBatches(complete_after_s=0.3))
    found.server.start()
    yield found
    found.server.stop()


def write_job(
    tmp_path: Path,
    url: str,
    tasks: int,
    batch: str,
    *,
    hard: int = 0,
    flaky: int = 0,
    reasks: int = 0,
) -> Path:
    """A policy with a batch cheap tier, and ``tasks`` tasks: ``hard`` ones, then ``flaky``."""
    policy = POLICY.format(batch=batch, url=url, key=KEY, reasks=reasks)
    (tmp_path / "policy.toml").write_text(policy)
    kinds = ["hard "] * hard + ["flaky "] * flaky + [""] * tasks
    lines = [
        json.dumps({"id": f"t{n}", "type": "echo", "input": f"say ok {kinds[n]}{n}"})
        for n in range(tasks)
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def steps(job: Path) -> list[dict[str, Any]]:
    """Every step the run stored."""
    with sqlite3.connect(job / "run.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY seq")]


def events(job: Path, name: str) -> list[dict[str, Any]]:
    """The step log's events of one name."""
    lines = (job / "results.steps.jsonl").read_text().splitlines()
    found = [json.loads(line) for line in lines if name in line]
    return [e for e in found if e.get("event") == name]


def test_a_batch_tier_sends_each_task_once_at_half_price_and_escalates_failures(
    tmp_path: Path, provider: Provider
) -> None:
    """40 tasks in batches of 25 (then the 15 left after batch_wait_s); 5 hard ones climb."""
    job = write_job(tmp_path, provider.server.base_url, 40, "batch_size = 25\nbatch_wait_s = 0.6",
                    hard=5)  # fmt: skip
    run = cascade_run(job, "--concurrency", "4")
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 40}
    by_id = {r["id"]: r for r in results(job)}
    assert {by_id[f"t{n}"]["model"] for n in range(5)} == {"dear-model"}
    assert {by_id[f"t{n}"]["model"] for n in range(5, 40)} == {"cheap-model"}
    answered = provider.server.batches.answered
    assert len(answered) == len(set(answered)) == 40, "each task's request went once"
    assert provider.calls() == {"cheap-model": 40, "dear-model": 5}
    cheap = [s for s in steps(job) if s["model_requested"] == "openai/cheap-model"]
    assert len(cheap) == 40
    assert all(s["batch"] == 1 for s in cheap)
    for step in cheap:  # half the tier's price: $1 / $2 per Mtok
        full = (step["prompt_tokens"] * 1.0 + step["completion_tokens"] * 2.0) / 1e6
        assert step["cost_usd"] == pytest.approx(full * 0.5)
    submitted = [e for e in events(job, "cascade.batch") if e["what"] == "submitted"]
    assert sorted(e["items"] for e in submitted) == [15, 25]
    assert len(provider.server.batches.created) == 2


def cost_at(step: dict[str, Any], share: float) -> float:
    """What the step's tokens cost at ``share`` of the cheap tier's price ($1 / $2 per Mtok)."""
    return float(share * (step["prompt_tokens"] * 1.0 + step["completion_tokens"] * 2.0) / 1e6)


def test_items_the_batch_failed_are_asked_at_once_as_ordinary_calls(
    tmp_path: Path, provider: Provider
) -> None:
    """4 of 12 items come back as 500s in the error file: each is asked again at once.

    Synchronously, on the same tier, at the full price; the failed batch call stays in the
    steps, saying so.
    """
    job = write_job(tmp_path, provider.server.base_url, 12, "batch_wait_s = 0.2", flaky=4)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 12}
    assert {r["model"] for r in results(job)} == {"cheap-model"}
    assert provider.calls() == {"cheap-model": 16}
    assert len(provider.server.batches.received) == 12
    by_task: dict[str, list[dict[str, Any]]] = {}
    for step in steps(job):
        by_task.setdefault(step["task_id"], []).append(step)
    for n in range(4):
        failed, again = by_task[f"t{n}"]
        assert (failed["batch"], failed["kind"], failed["decision"]) == (1, "call", "error")
        assert "500" in failed["error"]
        assert (again["batch"], again["kind"], again["decision"]) == (0, "retry", "accept")
        assert again["cost_usd"] == pytest.approx(cost_at(again, 1.0))
    for n in range(4, 12):
        (only,) = by_task[f"t{n}"]
        assert only["batch"] == 1
        assert only["cost_usd"] == pytest.approx(cost_at(only, 0.5))


def test_an_expired_batch_sends_its_items_as_ordinary_calls(tmp_path: Path) -> None:
    """The provider lets the batch expire: every item is asked at once instead, and says why."""
    provider = Provider(FakeBatches(complete_after_s=0.2, expire=True))
    with provider.server:
        job = write_job(tmp_path, provider.server.base_url, 6, "batch_wait_s = 0.1")
        run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 6}
    first = [s for s in steps(job) if s["batch"] == 1]
    assert len(first) == 6
    assert all("not run: batch_expired" in s["error"] for s in first), first[0]["error"]
    assert all(s["cost_usd"] == 0 for s in first)
    ended = [e for e in events(job, "cascade.batch") if e["what"] == "ended"]
    assert [(e["state"], e["answered"]) for e in ended] == [("expired", 0)]


def test_a_batch_past_its_deadline_is_cancelled_and_its_items_called_at_once(
    tmp_path: Path,
) -> None:
    """A batch due in 60 s, a tier that waits 0.5 s: the batch is cancelled.

    The items are asked synchronously, each step saying why.
    """
    provider = Provider(FakeBatches(complete_after_s=60))
    with provider.server:
        job = write_job(tmp_path, provider.server.base_url, 5,
                        "batch_wait_s = 0.1\nbatch_deadline_s = 0.5")  # fmt: skip
        run = cascade_run(job)
        statuses_at_cancel = [b.status for b in provider.server.batches.batches.values()]
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 5}
    assert statuses_at_cancel == ["cancelled"]
    first = [s for s in steps(job) if s["batch"] == 1]
    assert len(first) == 5
    assert all("within batch_deadline_s = 0.5" in s["error"] for s in first)
    kinds = [e["what"] for e in events(job, "cascade.batch")]
    assert kinds == ["submitted", "cancel", "ended"]
    assert provider.calls() == {"cheap-model": 5}


def test_a_rejected_batch_answer_is_re_asked_in_a_later_batch(
    tmp_path: Path, provider: Provider
) -> None:
    """3 of 8 answers rejected: their re-asks (with the feedback) go out as a second batch."""
    job = write_job(tmp_path, provider.server.base_url, 8, "batch_wait_s = 0.2", hard=3,
                    reasks=1)  # fmt: skip
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": 8}
    assert {r["model"] for r in results(job)} == {"cheap-model"}
    submitted = [e["items"] for e in events(job, "cascade.batch") if e["what"] == "submitted"]
    assert submitted == [8, 3]
    hard = [s for s in steps(job) if s["task_id"] in ("t0", "t1", "t2")]
    assert [(s["kind"], s["batch"]) for s in hard].count(("reask", 1)) == 3
    assert provider.calls() == {"cheap-model": 11}
