"""Shadow audits in whole ``cascade run`` processes, against the loopback fake provider.

A two-tier policy (cheap, then dear) with an ``[audit]``: a share of the cheap tier's accepted
answers is asked again of an audit model on the same fake server. What users rely on is
checked: results never change, audits are stored as steps of kind ``audit`` and priced, the
sample is the seeded one, the report gives the disagreement rate with its interval, and an audit
model that is down or an audit budget that is spent never touches a result.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cascade.audit import AuditPlan, sampled, wilson
from cascade.audit.auditor import Auditor, AuditTarget
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Hang
from cascade.budget import JobBudget
from cascade.cli import main
from cascade.engine.calls import Caller
from cascade.enums import CallKind, Decision, Status
from cascade.outcome import Outcome
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.testing import FakeReply
from cascade.tokens import count_tokens
from cascade.types import Price, Task, Tier
from tests.helpers import assert_policy_refused
from tests.test_run_trouble import KEY, Script, cascade_run, results, serve, statuses

__all__ = ["serve"]  # the fake provider's fixture, used by name

POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap-model"
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
labels = ["ok", "fine"]
[audit]
share = {share}
{who}
seed = 7
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 5.0, output_usd_per_mtok = 5.0 }}
{extra}
"""

TASKS = 60


def write_job(
    tmp_path: Path,
    url: str,
    share: float = 0.5,
    extra: str = "",
    who: str = 'model = "openai/audit-model"',
    typed: bool = True,
) -> Path:
    """The policy with its audit, and 60 tasks (with no type when ``typed`` is false)."""
    policy = POLICY.format(url=url, key=KEY, share=share, extra=extra, who=who)
    (tmp_path / "policy.toml").write_text(policy)
    kind = {"type": "echo"} if typed else {}
    lines = [json.dumps({"id": f"t{n}", **kind, "input": f"say ok {n}"})
             for n in range(TASKS)]  # fmt: skip
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def audit_says_fine_to_every_third(model: str, n: int) -> FakeReply:
    """Every tier answers "ok"; the audit model says "fine" to every third request."""
    if model == "audit-model" and n % 3 == 0:
        return FakeReply("fine")
    return FakeReply("ok")


def audit_steps(job: Path) -> list[dict[str, Any]]:
    """The audit steps the run stored."""
    with sqlite3.connect(job / "run.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM attempts WHERE kind = 'audit' ORDER BY seq")
        return [dict(r) for r in rows]


def expected_sample() -> set[str]:
    """The tasks the seeded sample audits: all were accepted at tier 0."""
    plan = AuditPlan(share=0.5, model="openai/audit-model", seed=7)
    return {f"t{n}" for n in range(TASKS) if sampled(plan, "echo", 0, f"t{n}")}


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "untyped"])
def test_audits_sample_the_seeded_share_and_change_no_result(
    tmp_path: Path, serve: Any, typed: bool
) -> None:
    """Half the cheap tier's answers, drawn by the seed, are audited; results are as without.

    Untyped tasks served by the one policy file are of its type, and audited as such.
    """
    script = Script(audit_says_fine_to_every_third)
    job = write_job(tmp_path, serve(script), typed=typed)
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": TASKS}
    assert {r["model"] for r in results(job)} == {"cheap-model"}
    steps = audit_steps(job)
    audited = {s["task_id"] for s in steps}
    assert audited == expected_sample()
    assert 15 < len(audited) < 45
    assert script.counts["audit-model"] == len(audited)
    assert {s["decision"] for s in steps} == {"agree", "disagree"}
    disagreed = sum(s["decision"] == "disagree" for s in steps)
    assert disagreed == len(audited) // 3
    for step in steps:  # $5 per Mtok both ways
        tokens = step["prompt_tokens"] + step["completion_tokens"]
        assert step["cost_usd"] == pytest.approx(tokens * 5.0 / 1e6)
        assert step["tier"] == 0
    # the result's own cost is the answer's; the run's spend counts the audits too
    paid = sum(r["cost_usd"] for r in results(job))
    audits = sum(s["cost_usd"] for s in steps)
    assert f"${paid + audits:.6f}" in run.stdout
    low, high = wilson(disagreed, len(audited))
    line = (f"audited {len(audited)} accepted answers: {disagreed} disagreed "
            f"({disagreed / len(audited):.1%}, 95% interval {low:.1%} to {high:.1%})")  # fmt: skip
    assert line in run.stdout


def test_the_report_gives_each_tiers_audit_as_json(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cascade report --json``: audited, disagreed, rate, interval and cost per tier."""
    job = write_job(tmp_path, serve(Script(audit_says_fine_to_every_third)))
    assert cascade_run(job).returncode == 0
    assert main(["report", str(job / "run.db"), "--json"]) == 0
    (cheap,) = json.loads(capsys.readouterr().out)["by_type"]["echo"]
    audit = cheap["audit"]
    assert audit["audited"] == len(expected_sample())
    assert audit["disagreed"] == audit["audited"] // 3
    assert (
        audit["disagreement_ci95"][0] < audit["disagreement_rate"] < audit["disagreement_ci95"][1]
    )
    assert audit["cost_usd"] > 0
    assert "with_gold" not in audit


def test_the_report_estimates_false_accepts_on_audited_answers_with_gold(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--gold``: of the audited answers with a gold answer, the share wrongly accepted."""
    job = write_job(tmp_path, serve(Script(audit_says_fine_to_every_third)))
    assert cascade_run(job).returncode == 0
    gold = [json.dumps({"id": f"t{n}", "answer": "ok" if n % 2 else "fine"})
            for n in range(0, TASKS, 1) if n < 40]  # fmt: skip
    (job / "gold.jsonl").write_text("\n".join(gold) + "\n")
    assert main(["report", str(job / "run.db"), "--json", "--gold", str(job / "gold.jsonl")]) == 0
    (cheap,) = json.loads(capsys.readouterr().out)["by_type"]["echo"]
    graded = [t for t in expected_sample() if int(t[1:]) < 40]
    wrong = [t for t in graded if int(t[1:]) % 2 == 0]  # gold "fine", accepted "ok"
    assert cheap["audit"]["with_gold"] == len(graded)
    assert cheap["audit"]["false_accept_rate"] == pytest.approx(len(wrong) / len(graded), abs=1e-6)
    assert main(["report", str(job / "run.db"), "--gold", str(job / "gold.jsonl")]) == 0
    assert f"of {len(graded)} with gold" in capsys.readouterr().out


def test_an_audit_model_that_is_down_is_logged_and_skipped(tmp_path: Path, serve: Any) -> None:
    """503 from the audit model: every result as usual, the failed audits logged, none agree."""

    def reply(model: str, _n: int) -> FakeReply:
        return FakeReply(status=503) if model == "audit-model" else FakeReply("ok")

    job = write_job(tmp_path, serve(Script(reply)))
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": TASKS}
    steps = audit_steps(job)
    assert steps
    assert {s["decision"] for s in steps} == {"error"}
    log = (job / "results.steps.jsonl").read_text().splitlines()
    failed = [json.loads(x) for x in log if '"cascade.audit"' in x and '"failed"' in x]
    assert {e["task_id"] for e in failed} == expected_sample()
    assert any("503" in e["why"] for e in failed)
    assert "audited" not in run.stdout


def test_audits_stop_at_their_own_budget(tmp_path: Path, serve: Any) -> None:
    """``max_cost_usd``: an audit whose worst cost would pass it is skipped, and logged.

    With no ``max_tokens``, an audit could answer 4,096 tokens: more than this cap, so none is
    made (tests/test_audit_cap.py has audits that fit).
    """
    job = write_job(tmp_path, serve(Script(audit_says_fine_to_every_third)), share=1.0,
                    extra="max_cost_usd = 0.0004")  # fmt: skip
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": TASKS}
    steps = audit_steps(job)
    assert sum(s["cost_usd"] for s in steps) <= 0.0004
    assert len(steps) < TASKS
    log = (job / "results.steps.jsonl").read_text()
    assert "the audit cap of $0.0004 was reached: this audit could cost up to" in log
    assert "(4096 answer tokens)" in log


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ('[[tiers]]\nmodel = "a"\n[audit]\nshare = 1.5\nmodel = "b"\n', 5, "audit.share"),
        ('[[tiers]]\nmodel = "a"\n[audit]\nshare = 0.1\n', 4, "audit.model"),
        ('[[tiers]]\nmodel = "a"\n[audit]\nshare = 0.1\nmodel = "b"\njudge = "c"\n', 6,
         "audit.model"),
    ],
)  # fmt: skip
def test_bad_audits_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str
) -> None:
    """A share outside 0..1, neither a model nor a judge, or both: file:line and field."""
    assert_policy_refused(tmp_path, body, line, field)


def test_the_sample_is_stratified_and_seeded() -> None:
    """Each (task type, tier) stratum is sampled at the share; another seed, other tasks."""
    plan = AuditPlan(share=0.1, model="m", seed=1)
    ids = [f"t{n}" for n in range(20000)]
    for kind, tier in (("a", 0), ("a", 1), ("b", 0)):
        share = sum(sampled(plan, kind, tier, i) for i in ids) / len(ids)
        assert share == pytest.approx(0.1, abs=0.01)
    first = {i for i in ids if sampled(plan, "a", 0, i)}
    again = {i for i in ids if sampled(AuditPlan(share=0.1, model="m", seed=1), "a", 0, i)}
    other = {i for i in ids if sampled(AuditPlan(share=0.1, model="m", seed=2), "a", 0, i)}
    assert first == again
    assert len(first & other) < len(first) / 4
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(5, 50)
    assert low == pytest.approx(0.0435, abs=1e-3)
    assert high == pytest.approx(0.2136, abs=1e-3)


def test_audits_count_in_the_jobs_budget(tmp_path: Path, serve: Any) -> None:
    """Answers alone would fit in --budget; with every answer audited, the budget stops the run."""

    def slow_answers(model: str, _n: int) -> FakeReply:
        return FakeReply("ok", delay_s=0.0 if model == "audit-model" else 0.05)

    job = write_job(tmp_path, serve(Script(slow_answers)), share=1.0)
    run = cascade_run(job, "--budget", "0.0008", "--concurrency", "2")
    assert run.returncode == 3, run.stdout + run.stderr
    paid = sum(r["cost_usd"] for r in results(job))
    audits = sum(s["cost_usd"] for s in audit_steps(job))
    assert paid < 0.0008 / 2 < audits
    assert len(results(job)) < TASKS


def test_audits_stop_when_the_jobs_budget_is_spent(tmp_path: Path, serve: Any) -> None:
    """Every answer in at once, audits slow: once the job's budget is spent, no audit starts."""

    def slow_audits(model: str, _n: int) -> FakeReply:
        return FakeReply("ok", delay_s=0.1 if model == "audit-model" else 0.0)

    job = write_job(tmp_path, serve(Script(slow_audits)), share=1.0)
    run = cascade_run(job, "--budget", "0.0012")
    steps = audit_steps(job)
    paid = sum(r["cost_usd"] for r in results(job)) + sum(s["cost_usd"] for s in steps)
    assert paid < 0.0012 + 4 * max(s["cost_usd"] for s in steps)  # 4 audits run at once
    assert len(steps) < TASKS
    assert "the job's budget is spent" in (job / "results.steps.jsonl").read_text()
    assert run.returncode == 0, run.stdout + run.stderr  # every task ran: only audits stopped


NONCE = re.compile(r"<<<(\w+):BEGIN CANDIDATE>>>")


def test_a_judge_audit_grades_the_accepted_answers(tmp_path: Path, serve: Any) -> None:
    """``judge = MODEL``: the judge grades each sampled answer; its fails are disagreements."""

    def reply(body: dict[str, Any]) -> FakeReply:
        text = str(body["messages"][-1]["content"])
        if body["model"] != "judge-model":
            return FakeReply("ok")
        nonce = NONCE.search(text)
        assert nonce is not None
        failing = re.search(r"say ok (\d+)", text)
        verdict = "fail" if failing and int(failing.group(1)) % 4 == 0 else "pass"
        return FakeReply(json.dumps({"nonce": nonce.group(1), "verdict": verdict,
                                     "score": 1.0 if verdict == "pass" else 0.0,
                                     "reason": "graded"}))  # fmt: skip

    job = write_job(tmp_path, serve(reply), who='judge = "openai/judge-model"')
    run = cascade_run(job)
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": TASKS}
    steps = audit_steps(job)
    assert {s["task_id"] for s in steps} == expected_sample()
    wrong = {s["task_id"] for s in steps if s["decision"] == "disagree"}
    assert wrong == {t for t in expected_sample() if int(t[1:]) % 4 == 0}
    assert all(s["model_requested"] == "openai/judge-model" for s in steps)


def test_audits_still_running_when_time_is_up_are_cut_off_and_logged() -> None:
    """An interrupted run gives its audits the grace period, then cancels them, saying so.

    The call in flight was sent, and is billed: it is stored, at its prompt's price.
    """
    plan = AuditPlan(share=1.0, model="auditor", price=Price(1000.0, 2000.0))
    target = AuditTarget.of(plan, (Tier("cheap"), Tier("dear")), "{input}", (), JobBudget(None))
    backend = ScriptedBackend({"auditor": [Hang()]})
    with Store(":memory:") as store, capture_steps() as events:
        auditor = Auditor({"echo": target}, Caller(backend, RetryPolicy()), store, "r1",
                          log=StepLog())  # fmt: skip
        task = Task("t1", input="q", type="echo")
        outcome = Outcome("r1", "t1", "echo", Status.ACCEPTED, "ok", None, 0, "cheap", (), 0.0, 0.0)

        async def go() -> int:
            assert auditor.consider(task, outcome)
            return await auditor.drain(0.05)

        assert asyncio.run(go()) == 1
        (cut,) = [s for s in store.steps("r1", "t1") if s.kind is CallKind.AUDIT]
    assert any(e.get("what") == "cut off" for e in events)
    assert (cut.model_requested, cut.decision, cut.output) == ("auditor", Decision.CANCEL, None)
    assert cut.cost_usd == pytest.approx(count_tokens([{"role": "user", "content": "q"}]) * 1e-3)
