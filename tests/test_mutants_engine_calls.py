"""Engine parts at the edges the mutation run found: outage waits, unrecorded calls, reuse."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from cascade.backends import ScriptedBackend
from cascade.engine.answers import Answers, reask_turns
from cascade.engine.call import Call
from cascade.engine.calls import Caller
from cascade.engine.clock import Clock
from cascade.engine.decide import Choice
from cascade.engine.outage import outage_wait, unavailable
from cascade.engine.record import Record
from cascade.engine.unrecorded import Unrecorded, branch_task, made, tracking
from cascade.enums import CallKind, Decision, Status
from cascade.errors import AuthenticationFailed, ServerError
from cascade.retry import RetryPolicy
from cascade.store import Store
from cascade.types import Message, Request, Response, Task, Tier, Usage, Verdict
from tests.test_batcher import TIER, MemoryBatches, batcher


def test_an_outage_bound_spent_to_the_second_waits_no_more() -> None:
    """With nothing left of the bound, the task stops waiting: no wait of zero to ask again."""
    assert outage_wait(RetryPolicy(base_s=0.1), left_s=0.0, waits=0, ready_in_s=lambda: 0.0) is None


@pytest.mark.parametrize(("waits", "expected"), [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0)])
def test_a_tasks_own_outage_backoff_doubles_up_to_a_second(waits: int, expected: float) -> None:
    """Each wait doubles the last, from the retry's base, and never passes one second."""
    wait = outage_wait(RetryPolicy(base_s=0.1), left_s=600.0, waits=waits, ready_in_s=lambda: 0.0)
    assert wait == pytest.approx(expected)


def test_unavailable_says_since_when_in_utc_and_how_long() -> None:
    """The reason names the outage's start as a UTC time, and the seconds waited."""
    said = unavailable(1_700_000_000.0, 12.4)
    assert said == "provider unavailable since 2023-11-14T22:13:20+00:00 (12 s)"


def test_a_hedge_legs_recorded_call_leaves_the_calls_at_risk() -> None:
    """A call a step records is taken out of its leg's branch: a cut-off records it only once."""
    task = Unrecorded(tier=0)
    leg_call, own_call = Call("big", CallKind.CALL, 0.5), Call("small", CallKind.CALL, 0.2)
    with tracking(task):
        made(own_call)

        async def leg() -> None:
            made(leg_call)

        async def race() -> Unrecorded | None:
            started, branch = branch_task(leg(), tier=1)
            await started
            return branch

        branch = asyncio.run(race())
    assert task.left() == [(0, own_call), (1, leg_call)]
    task.take(leg_call)
    assert task.left() == [(0, own_call)]
    assert branch is not None
    task.close(branch)
    task.take(own_call)
    assert task.left() == []


class _Counting:
    """A backend that answers each request at a cost, with a latency and local compute."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(
            f"answer {len(self.requests)}", request.model, Usage(3, 2), 0.01, 0.5, None, 2.0
        )


def _asked(*questions: tuple[str, int]) -> tuple[list[Response], _Counting]:
    backend = _Counting()
    answers = Answers(Caller(backend, RetryPolicy()), "t1")
    ask = answers.asker(Tier("judge", timeout_s=7.0))
    messages: tuple[Message, ...] = ({"role": "user", "content": "is it right?"},)

    async def run() -> list[Response]:
        got = []
        for model, sample in questions:
            got.append(await ask(model, messages, params={"temperature": 0}, sample=sample))
        return got

    return asyncio.run(run()), backend


def test_a_validators_repeated_question_is_answered_again_at_no_cost() -> None:
    """The same model, question and sample is served from what the task has: free and instant."""
    (first, again), backend = _asked(("judge", 0), ("judge", 0))
    assert len(backend.requests) == 1
    assert (first.cost_usd, first.latency_s, first.compute_s) == (0.01, 0.5, 2.0)
    assert again == dataclasses.replace(first, cost_usd=0.0, latency_s=0.0, compute_s=0.0)


def test_another_sample_or_model_is_a_new_question() -> None:
    """A second sample of the question, or another model, is asked (and paid for) anew."""
    answers, backend = _asked(("judge", 0), ("judge", 1), ("other", 0), ("judge", 1))
    assert [a.text for a in answers] == ["answer 1", "answer 2", "answer 3", "answer 2"]
    assert [(r.model, r.sample) for r in backend.requests] == [
        ("judge", 0),
        ("judge", 1),
        ("other", 0),
    ]


def test_a_validators_call_carries_the_task_its_params_and_the_tiers_timeout() -> None:
    """The request names the task, with the check's params and the lending tier's timeout."""
    _, backend = _asked(("judge", 0))
    (request,) = backend.requests
    assert (request.task_id, dict(request.params), request.timeout_s) == (
        "t1",
        {"temperature": 0},
        7.0,
    )


def _clock(deadline_s: float | None = 2.0) -> Clock:
    """A task's clock that has spent 0.75 s in two replayed (recorded) calls."""
    clock = Clock(deadline_s)
    clock.add(
        [
            Call("a", CallKind.CALL, 0.5, recorded=True),
            Call("a", CallKind.CALL, 0.25, recorded=True),
        ]
    )
    return clock


def test_a_replayed_tasks_time_is_the_sum_of_its_calls() -> None:
    """Recorded latencies add up, and the wall clock does not count in a replay."""
    assert _clock().elapsed_s() == 0.75


@pytest.mark.parametrize(
    ("up_s", "decided", "late"),
    [
        (
            2.0,
            Choice(Decision.STOP, "deadline"),
            "deadline 2 s: a re-ask of a not started with 1.25 s left, and it takes 1.5 s (p90); "
            "escalating to b not started with 1.25 s left, and it takes 2 s (p90)",
        ),
        (
            1.0,
            Choice(Decision.ESCALATE, "escalate"),
            "deadline 2 s: a re-ask of a not started with 1.25 s left, and it takes 1.5 s (p90)",
        ),
    ],
)
def test_a_re_ask_that_does_not_fit_escalates_if_that_fits_else_stops_saying_why(
    up_s: float, decided: Choice, late: str
) -> None:
    """A re-ask too slow for what is left goes up when the next tier fits; else both are named."""
    clock = _clock()
    times = {"a": 1.5, "b": up_s}
    choice = clock.fit(
        Choice(Decision.REASK, "reask"), Tier("a"), Tier("b"), lambda t: times[t.model]
    )
    assert (choice, clock.late) == (decided, late)


def test_a_first_ask_that_does_not_fit_says_asking() -> None:
    """The first ask of a tier is worded as asking it, not as a re-ask."""
    clock = _clock()
    choice = clock.fit(Choice(Decision.REASK, "reask"), Tier("a"), None, lambda t: 2.0, first=True)
    assert choice == Choice(Decision.STOP, "deadline")
    assert (
        clock.late == "deadline 2 s: asking a not started with 1.25 s left, and it takes 2 s (p90)"
    )


def test_an_ask_expected_to_take_exactly_what_is_left_does_not_start() -> None:
    """Time left equal to the expected latency is not enough: the task stops."""
    clock = _clock()
    assert clock.in_time(Choice(Decision.ESCALATE, "escalate"), Tier("b"), 1.25).why == "deadline"
    assert clock.in_time(Choice(Decision.ESCALATE, "escalate"), Tier("b"), 1.0).why == "escalate"


def test_a_wait_that_ends_exactly_at_the_deadline_is_not_past_it() -> None:
    """Waiting out an outage up to the deadline itself is allowed; a moment more is not."""
    clock = _clock()
    assert clock.waits_past(1.25, "a", "503") is False
    assert clock.waits_past(1.5, "a", "503") is True
    assert clock.late == "deadline 2 s: a could not answer in time: 503"


def test_a_hedge_starts_when_the_next_tier_would_just_fit() -> None:
    """The next tier is asked early at what is left minus its latency; never without a deadline."""
    assert _clock().hedge_after(Tier("a", hedge=True), 1.0) == 0.25
    assert _clock().hedge_after(Tier("a", hedge=True), 2.0) == 0.0
    assert _clock().hedge_after(Tier("a"), 1.0) is None
    assert _clock().hedge_after(Tier("a", hedge=True), None) is None
    assert _clock(None).hedge_after(Tier("a", hedge=True), 1.0) is None


def test_a_live_tasks_time_is_the_wall_clock_when_that_is_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Validators and waits count in a live run; a replay counts only its recorded latencies."""
    now = [100.0]
    monkeypatch.setattr("cascade.engine.clock.time.monotonic", lambda: now[0])
    live, replay = Clock(10.0), Clock(10.0)
    live.add([Call("a", CallKind.CALL, 1.0)])
    replay.add([Call("a", CallKind.CALL, 1.0, recorded=True)])
    now[0] += 5.0
    assert (live.elapsed_s(), replay.elapsed_s()) == (5.0, 1.0)


def test_a_spent_deadline_says_how_little_was_left() -> None:
    """With no latency estimate, only a spent deadline stops; the reason ends at the time left."""
    clock = _clock(0.5)
    assert clock.in_time(Choice(Decision.ESCALATE, "escalate"), Tier("b"), None).why == "deadline"
    assert clock.late == "deadline 0.5 s: escalating to b not started with 0 s left"
    clock = _clock(1.25)
    assert clock.in_time(Choice(Decision.ESCALATE, "escalate"), Tier("b"), 1.0).why == "deadline"
    assert clock.late.endswith("with 0.5 s left, and it takes 1 s (p90)")


@pytest.mark.parametrize(
    ("verdict", "said"),
    [
        (Verdict(False, reason="too long", feedback="cut it to 10 words"), "cut it to 10 words"),
        (Verdict(False, reason="too long"), "too long"),
        (Verdict(False), "it did not pass validation"),
    ],
)
def test_a_re_ask_quotes_the_answer_and_the_best_words_for_what_was_wrong(
    verdict: Verdict, said: str
) -> None:
    """A re-ask repeats the rejected answer, then its feedback, else its reason, else a default."""
    answer = Response("42", "m", Usage(), 0.0)
    assert reask_turns(answer, verdict) == (
        {"role": "assistant", "content": "42"},
        {"role": "user", "content": f"Your answer was rejected: {said}\nPlease answer again."},
    )
    assert reask_turns(None, verdict)[0] == {"role": "assistant", "content": ""}


def test_the_same_words_in_another_role_are_another_question() -> None:
    """A question is its messages' roles and contents: a system turn is not a user turn."""
    backend = _Counting()
    answers = Answers(Caller(backend, RetryPolicy()), "t1")
    ask = answers.asker(Tier("judge"))

    async def run() -> None:
        await ask("judge", ({"role": "user", "content": "same"},))
        await ask("judge", ({"role": "system", "content": "same"},))

    asyncio.run(run())
    assert [r.messages[0]["role"] for r in backend.requests] == ["user", "system"]


def _answered(cost: float, latency_s: float = 0.1) -> Call:
    response = Response("ok", "m", Usage(3, 2), cost, latency_s, 0.8, 1.5)
    return Call("m", CallKind.CALL, latency_s, response=response)


def test_a_step_keeps_its_answers_usage_confidence_and_compute_and_adds_its_cost() -> None:
    """Each answered call's cost adds to what the task spent; its step keeps what it reported."""
    record = Record(Task("t1", input="x"), "r1", None)
    record.step(0, _answered(0.25), (), Decision.ESCALATE)
    record.step(1, _answered(0.5), (), Decision.ACCEPT)
    failed = Call("m", CallKind.CALL, 0.3, error=ServerError("503"))
    record.step(1, failed, (), Decision.ERROR, cost_usd=0.125)
    first, _, error = record.steps
    assert record.spent == 0.875
    assert (first.prompt_tokens, first.completion_tokens, first.confidence, first.compute_s) == (
        3,
        2,
        0.8,
        1.5,
    )
    assert (error.cost_usd, error.confidence, error.compute_s, error.prompt_tokens) == (
        0.125,
        None,
        0.0,
        0,
    )
    outcome = record.refresh(record.finish(Status.ACCEPTED, (), accepted=1))
    assert (outcome.cost_usd, outcome.compute_s) == (0.875, 3.0)


def test_a_cut_off_task_records_an_answered_call_at_its_own_cost() -> None:
    """An answer left unrecorded when the task is cut off keeps its cost, not its prompt's."""
    record = Record(Task("t1", input="x"), "r1", None)
    answered = dataclasses.replace(_answered(0.25), cut_usd=0.01)
    in_flight = Call("m", CallKind.CALL, 0.2, cut_usd=0.01)
    record.unrecorded.calls.extend([answered, in_flight])
    record.cut_off()
    assert [(s.cost_usd, s.decision) for s in record.steps] == [
        (0.25, Decision.CANCEL),
        (0.01, Decision.CANCEL),
    ]


def test_a_judges_failed_call_is_an_error_step_and_its_answer_takes_the_decision() -> None:
    """Validator calls are recorded after the answer: a failed one as an error, else as decided."""
    record = Record(Task("t1", input="x"), "r1", None)
    judged = [_answered(0.01), Call("judge", CallKind.VALIDATOR, 0.1, error=ServerError("503"))]
    record.answer(0, _answered(0.25), Verdict(True), Decision.ACCEPT, judged)
    assert [s.decision for s in record.steps] == [Decision.ACCEPT, Decision.ACCEPT, Decision.ERROR]


def test_only_failed_checks_reasons_are_a_tasks_reasons() -> None:
    """A passing verdict's reason ("looks fine") is not a reason the task was rejected."""
    record = Record(Task("t1", input="x"), "r1", None)
    verdicts = (Verdict(True, reason="looks fine"), Verdict(False, reason="too long"))
    record.step(0, _answered(0.0), verdicts, Decision.ESCALATE)
    assert record.reasons() == ["too long"]


@pytest.mark.parametrize("kind", [CallKind.VALIDATOR, CallKind.AUDIT])
def test_a_side_call_a_batch_did_not_answer_keeps_its_kind(kind: CallKind) -> None:
    """A validator's or audit's call through a batch tier is asked again as itself, not a retry."""
    api = MemoryBatches()
    api.faults = {"upload": [AuthenticationFailed("401: bad key")]}
    with Store(":memory:") as store:
        backend = ScriptedBackend({"openai/cheap": ["ok"]})
        caller = Caller(backend, RetryPolicy(), batcher=batcher(api, store))
        question: tuple[Message, ...] = ({"role": "user", "content": "q"},)
        calls = asyncio.run(caller.call_tier(TIER, question, "t1", kind))
    assert [(call.kind, call.error is None) for call in calls] == [(kind, False), (kind, True)]
