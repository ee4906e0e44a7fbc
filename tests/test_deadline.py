"""Per-task deadlines: no re-ask or tier is started that could not answer in time; hedges."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, Plan, Price, Settings, Status, Tier
from cascade.backends import Hang, Reply, ScriptedBackend
from cascade.backends.scripted import Script
from cascade.cli import main
from cascade.enums import CallKind, Decision
from cascade.errors import AuthenticationFailed, ServerError
from cascade.policy import load_policy
from cascade.testing import FakeOpenAI, FakeReply
from cascade.tokens import count_tokens
from tests.helpers import NO_WAIT, assert_policy_refused, models_called, says_ok
from tests.test_run_trouble import cascade_run, results

PRICE = Price(1000.0, 2000.0)


def timed(
    script: Mapping[str, Script],
    ladder: Sequence[Tier],
    *,
    deadline_s: float | None = None,
    virtual: bool = True,
    **settings: Any,
) -> tuple[Cascade, ScriptedBackend]:
    """A quiet cascade whose scripted latencies are reported, not slept (unless not ``virtual``)."""
    backend = ScriptedBackend(
        dict(script), virtual_time=virtual, prices=dict.fromkeys(script, PRICE)
    )
    options: dict[str, Any] = {"log": False, "retry": NO_WAIT} | settings
    plan = Plan(ladder, says_ok, deadline_s=deadline_s)
    return Cascade(plan, settings=Settings(backend=backend, **options)), backend


def late(text: str, seconds: float) -> Reply:
    """An answer that takes ``seconds``."""
    return Reply(text, latency_s=seconds)


def test_a_tier_that_cannot_answer_in_time_is_not_asked() -> None:
    """With 0.8 s left and the next tier's p90 at 1.0 s, the task stops ``deadline``."""
    cascade, backend = timed(
        {"small": [late("no", 0.4)], "big": [late("ok", 0.9)]},
        [Tier("small"), Tier("big", expected_latency_s=1.0)],
        deadline_s=1.2,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert models_called(backend) == ["small"]
    assert outcome.output == "no"
    assert outcome.best_step == 0
    assert [s.decision for s in outcome.steps] == [Decision.STOP]
    assert "deadline 1.2 s" in outcome.reasons[0]
    assert "big" in outcome.reasons[0]
    assert outcome.to_result()["best_rejected"] is True


def test_a_tier_that_can_answer_in_time_is_asked() -> None:
    """The same ladder with 2 s to spend escalates and is accepted."""
    cascade, backend = timed(
        {"small": [late("no", 0.4)], "big": [late("ok", 0.9)]},
        [Tier("small"), Tier("big", expected_latency_s=1.0)],
        deadline_s=2.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert models_called(backend) == ["small", "big"]
    assert outcome.latency_s == pytest.approx(1.3)


def test_a_reask_is_checked_against_the_deadline_too() -> None:
    """A re-ask the tier could not answer in time is not made."""
    cascade, backend = timed(
        {"small": [late("no", 0.4), late("ok", 0.4)]},
        [Tier("small", reasks=1, expected_latency_s=0.5)],
        deadline_s=0.8,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert models_called(backend) == ["small"]
    assert "a re-ask of small" in outcome.reasons[0]


def test_a_first_ask_that_cannot_answer_in_time_goes_to_a_tier_that_can() -> None:
    """Tier 0 takes 2 s against a 1 s deadline: it is not asked; the faster tier 1 is."""
    cascade, backend = timed(
        {"slow": [late("ok", 2.0)], "fast": [late("ok", 0.1)]},
        [Tier("slow", expected_latency_s=2.0), Tier("fast", expected_latency_s=0.2)],
        deadline_s=1.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert models_called(backend) == ["fast"]
    assert outcome.latency_s <= 1.0


def test_a_first_ask_nothing_can_answer_in_time_is_never_made() -> None:
    """A lone tier expected to take 2 s, a 1 s deadline: no call, ``deadline``, said why."""
    cascade, backend = timed(
        {"slow": [late("ok", 2.0)]}, [Tier("slow", expected_latency_s=2.0)], deadline_s=1.0
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert models_called(backend) == []
    assert "asking slow not started" in outcome.reasons[0]


def test_a_reask_that_would_not_fit_escalates_to_a_tier_that_does() -> None:
    """The re-ask (0.5 s) does not fit in what is left; the next tier (0.2 s) does, and answers."""
    cascade, backend = timed(
        {"small": [late("no", 0.4), late("ok", 0.4)], "big": [late("ok", 0.1)]},
        [Tier("small", reasks=1, expected_latency_s=0.5), Tier("big", expected_latency_s=0.2)],
        deadline_s=0.8,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert models_called(backend) == ["small", "big"]
    assert outcome.latency_s <= 0.8


def test_the_task_deadline_overrides_the_plan() -> None:
    """A task's own ``deadline_s`` wins over the plan's."""
    cascade, backend = timed(
        {"small": [late("no", 0.4)], "big": [late("ok", 0.9)]},
        [Tier("small"), Tier("big", expected_latency_s=1.0)],
        deadline_s=1.2,
    )
    outcome = cascade.run({"id": "t", "input": "x", "deadline_s": 5})
    assert outcome.status is Status.ACCEPTED
    assert "deadline_s" not in cascade.plan.prompt
    assert models_called(backend) == ["small", "big"]


def test_the_measured_p90_replaces_the_tier_guess() -> None:
    """Once 20 calls of a model are seen, their p90 is what a deadline plans by."""
    cascade, backend = timed(
        {"small": [late("no", 0.1)], "big": [late("ok", 3.0)]},
        [Tier("small"), Tier("big", expected_latency_s=0.5)],
    )
    before = cascade.run({"id": "first", "input": "x", "deadline_s": 2.0})
    assert before.status is Status.ACCEPTED  # 0.5 s expected: asked, and it took 3 s
    for number in range(19):
        cascade.run({"id": f"t{number}", "input": "x"})
    after = cascade.run({"id": "last", "input": "x", "deadline_s": 2.0})
    assert after.status is Status.DEADLINE
    assert "it takes 3 s (p90)" in after.reasons[0]
    assert models_called(backend)[-1] == "small"


def test_without_any_estimate_only_a_spent_deadline_stops() -> None:
    """A tier of unknown latency is asked while time is left, and not once it is spent."""
    script = {"small": [late("no", 0.4)], "big": [late("ok", 0.1)]}
    in_time, _ = timed(script, [Tier("small"), Tier("big")], deadline_s=0.5)
    assert in_time.run({"id": "t", "input": "x"}).status is Status.ACCEPTED
    spent, _ = timed(script, [Tier("small"), Tier("big")], deadline_s=0.3)
    assert spent.run({"id": "t", "input": "x"}).status is Status.DEADLINE


def test_an_outage_wait_ends_at_the_deadline() -> None:
    """A provider that keeps failing ends the task ``deadline`` once waiting would pass it."""
    cascade, _ = timed(
        {"small": [ServerError("503")]}, [Tier("small", retries=0)], deadline_s=0.3, max_outage_s=2
    )
    began = time.monotonic()
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert time.monotonic() - began < 0.6
    assert "could not answer in time" in outcome.reasons[0]


@pytest.mark.parametrize("value", [0, -1, "soon", True, float("inf")])
def test_a_bad_task_deadline_is_quarantined(value: object) -> None:
    """A ``deadline_s`` that is not a positive number names the field; the task is not run."""
    cascade, backend = timed({"small": ["ok"]}, [Tier("small")])
    outcome = cascade.run({"id": "t", "input": "x", "deadline_s": value})
    assert outcome.status is Status.QUARANTINED
    assert "'deadline_s'" in outcome.reasons[0]
    assert backend.calls == []


def test_policy_deadline_and_hedge_load(tmp_path: Path) -> None:
    """``[budget] deadline_s`` and a tier's ``hedge`` and ``expected_latency_s`` load."""
    path = tmp_path / "fast.toml"
    path.write_text(
        'task_type = "fast"\n[budget]\ndeadline_s = 1.5\n'
        '[[tiers]]\nmodel = "a"\nhedge = true\nexpected_latency_s = 0.4\n'
        '[[tiers]]\nmodel = "b"\n'
    )
    plan = load_policy(path).plan
    assert plan.deadline_s == 1.5
    assert plan.tiers[0].hedge
    assert plan.tiers[0].expected_latency_s == 0.4


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ('[budget]\ndeadline_s = 0\n[[tiers]]\nmodel = "a"\n', 3, "budget.deadline_s"),
        ('[[tiers]]\nmodel = "a"\nhedge = true\n', 4, "tiers[0].hedge"),
        ('[[tiers]]\nmodel = "a"\nexpected_latency_s = -1\n', 4, "tiers[0].expected_latency_s"),
    ],
)
def test_bad_latency_settings_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str
) -> None:
    """A zero deadline, a hedge with no tier after it, a negative latency: file:line and field."""
    assert_policy_refused(tmp_path, body, line, field)


# --- hedges -------------------------------------------------------------------------------


def hedged(small: Script, big: Script, deadline_s: float = 1.0, **kwargs: Any) -> Cascade:
    """``small`` hedged by ``big`` (expected in 0.5 s), with ``deadline_s`` per task."""
    cascade, _ = timed(
        {"small": small, "big": big},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.5, **kwargs)],
        deadline_s=deadline_s,
    )
    return cascade


def test_a_slow_tier_is_hedged_and_the_faster_accepted_answer_wins() -> None:
    """Small takes 1.5 s; big, started at 0.5 s, answers at 1.0 s and wins; small is cut."""
    outcome = hedged([late("ok", 1.5)], [late("ok", 0.5)]).run({"id": "t", "input": "x"})
    assert outcome.status is Status.ACCEPTED
    assert outcome.model == "big"
    hedge, lost = outcome.steps
    assert (hedge.kind, hedge.decision) == (CallKind.HEDGE, Decision.ACCEPT)
    assert (lost.model_requested, lost.decision) == ("small", Decision.CANCEL)
    assert lost.latency_s == pytest.approx(1.0)  # cut where big won
    assert lost.cost_usd > 0
    assert outcome.cost_usd == pytest.approx(hedge.cost_usd + lost.cost_usd)
    assert outcome.latency_s == pytest.approx(1.0)


def test_an_answer_before_the_hedge_is_due_starts_no_hedge() -> None:
    """Small answers at 0.3 s, before the hedge's 0.5 s: big is never asked."""
    cascade, backend = timed(
        {"small": [late("ok", 0.3)], "big": [late("ok", 0.5)]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.5)],
        deadline_s=1.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.model == "small"
    assert models_called(backend) == ["small"]


def test_the_hedged_tier_wins_when_it_is_accepted_first() -> None:
    """Small answers at 0.8 s and passes; big (due at 1.5 s) is dropped, its cost counted."""
    outcome = hedged([late("ok", 0.8)], [late("ok", 1.0)]).run({"id": "t", "input": "x"})
    assert outcome.model == "small"
    assert outcome.status is Status.ACCEPTED
    won, lost = outcome.steps
    assert (lost.kind, lost.decision, lost.output) == (CallKind.HEDGE, Decision.CANCEL, "ok")
    assert lost.latency_s == pytest.approx(0.3)
    assert outcome.latency_s == pytest.approx(0.8)
    assert outcome.cost_usd == pytest.approx(won.cost_usd + lost.cost_usd)


def test_a_rejected_first_answer_leaves_the_race_to_the_hedge() -> None:
    """Small is first but wrong; big's later answer is accepted."""
    outcome = hedged([late("no", 0.8)], [late("ok", 1.0)]).run({"id": "t", "input": "x"})
    assert outcome.model == "big"
    assert [s.decision for s in outcome.steps] == [Decision.ESCALATE, Decision.ACCEPT]
    assert outcome.latency_s == pytest.approx(1.5)


def test_when_both_fail_the_tier_below_is_not_asked_again() -> None:
    """Both answers wrong: small is not re-asked, and big's re-ask would come too late."""
    cascade, backend = timed(
        {"small": [late("no", 1.5)], "big": [late("nope", 0.5), late("ok", 0.2)]},
        [Tier("small", hedge=True, reasks=2), Tier("big", expected_latency_s=0.5, reasks=1)],
        deadline_s=1.5,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert models_called(backend) == ["small", "big"]
    assert [s.decision for s in outcome.steps] == [Decision.ESCALATE, Decision.STOP]
    assert "a re-ask of big" in outcome.reasons[0]
    assert outcome.latency_s == pytest.approx(1.5)


def test_a_rejected_hedge_is_re_asked_when_its_measured_p90_leaves_time() -> None:
    """The hedge's own call makes 20: big's measured p90 (0.05 s) leaves room for a re-ask."""
    cascade, backend = timed(
        {"small": [late("no", 0.1)] * 19 + [late("no", 1.9)], "big": [late("ok", 0.05)] * 19
         + [late("nope", 0.05), late("ok", 0.05)]},
        [Tier("small", hedge=True, reasks=1), Tier("big", expected_latency_s=0.5, reasks=1)],
    )  # fmt: skip
    for number in range(19):  # big answers 19 calls: not enough to trust their p90 yet
        assert cascade.run({"id": f"w{number}", "input": "x"}).model == "big"
    outcome = cascade.run({"id": "t", "input": "x", "deadline_s": 2.0})
    assert outcome.status is Status.ACCEPTED
    assert outcome.model == "big"
    assert models_called(backend)[-3:] == ["small", "big", "big"]  # small is not re-asked
    assert backend.calls[-1].messages[-2] == {"role": "assistant", "content": "nope"}
    kinds = [(s.model_requested, s.kind, s.decision) for s in outcome.steps]
    assert kinds == [
        ("big", CallKind.HEDGE, Decision.REASK),
        ("small", CallKind.CALL, Decision.ESCALATE),
        ("big", CallKind.REASK, Decision.ACCEPT),
    ]


def test_a_hedge_that_cannot_be_asked_leaves_the_race_to_the_tier_below() -> None:
    """A refused key on the hedged tier: small's answer, due later, is still accepted."""
    outcome = hedged([late("ok", 1.5)], [AuthenticationFailed("401")]).run(
        {"id": "t", "input": "x"}
    )
    assert outcome.status is Status.ACCEPTED
    assert outcome.model == "small"
    assert [(s.model_requested, s.decision) for s in outcome.steps] == [
        ("big", Decision.ERROR),
        ("small", Decision.ACCEPT),
    ]


def test_when_neither_leg_can_be_asked_the_task_fails_and_says_why() -> None:
    """Both tiers refuse the key: the task ends failed with the hedged tier's reason."""
    error = AuthenticationFailed("401")
    outcome = hedged([error], [error], deadline_s=1.0).run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert any("cannot be asked" in r for r in outcome.reasons)


def test_a_hedge_that_runs_out_of_time_after_the_tier_below_failed_ends_deadline() -> None:
    """Live: small's wrong answer is judged first; big then times out at the deadline."""
    cascade, _ = timed(
        {"small": [late("no", 0.1)], "big": [Hang()]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.15, timeout_s=0.15,
                                          retries=0)],
        deadline_s=0.2,
        virtual=False,
    )  # fmt: skip
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.DEADLINE
    assert outcome.output == "no"  # the best answer so far is kept
    assert "big could not answer in time" in outcome.reasons[0]


def test_a_live_hedge_cancels_the_call_in_flight_and_counts_its_prompt() -> None:
    """With real time: big wins at about 0.15 s; small's call is cancelled, its prompt paid."""
    cascade, _ = timed(
        {"small": [late("ok", 0.4)], "big": [late("ok", 0.05)]},
        [Tier("small", hedge=True, price=PRICE), Tier("big", expected_latency_s=0.1)],
        deadline_s=0.2,
        virtual=False,
    )
    outcome = cascade.run({"id": "t", "input": "hello there"})
    assert outcome.model == "big"
    lost = next(s for s in outcome.steps if s.decision is Decision.CANCEL)
    assert lost.model_requested == "small"
    assert lost.output is None
    sent = count_tokens([{"role": "user", "content": "hello there"}])
    assert lost.cost_usd == pytest.approx(sent * PRICE.input_usd_per_mtok / 1e6)
    assert 0.1 <= lost.latency_s < 0.4  # cut off before its own answer at 0.4 s (0.15 when idle)


def test_a_hedge_is_never_started_without_a_deadline() -> None:
    """``hedge = true`` does nothing for a task with no deadline."""
    cascade, backend = timed(
        {"small": [late("ok", 5.0)], "big": [late("ok", 0.1)]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.1)],
    )
    assert cascade.run({"id": "t", "input": "x"}).model == "small"
    assert models_called(backend) == ["small"]


def test_a_cancelled_task_cancels_both_legs() -> None:
    """Cancelling a task mid-race leaves no call of either leg running."""
    cascade, _ = timed(
        {"small": [late("ok", 30.0)], "big": [late("ok", 30.0)]},
        [Tier("small", hedge=True), Tier("big", expected_latency_s=0.01)],
        deadline_s=0.05,
        virtual=False,
    )

    async def main() -> int:
        job = asyncio.ensure_future(cascade.arun({"id": "t", "input": "x"}))
        await asyncio.sleep(0.1)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        await asyncio.sleep(0)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert asyncio.run(main()) == 0


# --- a whole run ---------------------------------------------------------------------------

RUN_POLICY = """\
task_type = "echo"
[budget]
deadline_s = 0.3
[[tiers]]
model = "openai/slow-model"
hedge = true
timeout_s = 30
params = {{ api_base = "{url}", api_key = "sk-fake" }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[tiers]]
model = "openai/fast-model"
expected_latency_s = 0.1
timeout_s = 30
params = {{ api_base = "{url}", api_key = "sk-fake" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
"""


def test_a_run_hedges_against_a_slow_provider_and_keeps_both_calls(tmp_path: Path) -> None:
    """``cascade run`` on loopback: slow answers are raced and lost; the cut calls are stored."""

    def reply(body: dict[str, Any]) -> FakeReply:
        slow = "slow" in str(body.get("model"))
        return FakeReply("ok", delay_s=0.6 if slow else 0.02)

    with FakeOpenAI(reply) as server:
        (tmp_path / "policy.toml").write_text(RUN_POLICY.format(url=server.base_url))
        lines: list[dict[str, Any]] = [
            {"id": f"t{n}", "type": "echo", "input": f"say ok {n}"} for n in range(6)
        ]
        lines.append({"id": "patient", "type": "echo", "input": "say ok", "deadline_s": 60})
        (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        done = cascade_run(tmp_path)
    assert done.returncode == 0, done.stderr
    found = {r["id"]: r for r in results(tmp_path)}
    assert len(found) == 7
    assert {found[f"t{n}"]["model"] for n in range(6)} == {"fast-model"}
    # 60 s to spend: no hedge, even when litellm's first calls in a fresh process take seconds
    assert found["patient"]["model"] == "slow-model"
    assert all(r["status"] == "accepted" for r in found.values())
    with sqlite3.connect(tmp_path / "run.db") as db:
        rows = db.execute(
            "SELECT task_id, model_requested, kind, decision, cost_usd FROM attempts"
        ).fetchall()
    for n in range(6):
        mine = {(m, k, d): c for t, m, k, d, c in rows if t == f"t{n}"}
        assert mine[("openai/fast-model", "hedge", "accept")] > 0
        assert mine[("openai/slow-model", "call", "cancel")] > 0  # its prompt, paid
    assert [(m, k, d) for t, m, k, d, _ in rows if t == "patient"] == [
        ("openai/slow-model", "call", "accept")
    ]


def test_policy_check_says_what_a_hedge_waits_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hedge onto a tier with no expected latency: policy check says when it starts."""
    path = tmp_path / "fast.toml"
    path.write_text(
        'task_type = "fast"\n[budget]\ndeadline_s = 1.5\n'
        '[[tiers]]\nmodel = "a"\nhedge = true\nprice = { input_usd_per_mtok = 1.0, '
        'output_usd_per_mtok = 1.0 }\n[[tiers]]\nmodel = "b"\nprice = { input_usd_per_mtok = '
        "1.0, output_usd_per_mtok = 1.0 }\n"
    )
    assert main(["policy", "check", str(path)]) == 0
    said = capsys.readouterr().out
    assert "tiers[0] hedges onto b, whose expected_latency_s is not set" in said
    assert "once the run has measured 20 answers of b" in said
    path.write_text(path.read_text().replace('model = "b"', 'model = "b"\nexpected_latency_s = 1'))
    assert main(["policy", "check", str(path)]) == 0
    assert "hedges onto" not in capsys.readouterr().out
