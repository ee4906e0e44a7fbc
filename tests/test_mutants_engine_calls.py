"""Engine parts at the edges the mutation run found: outage waits, unrecorded calls, reuse."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Sequence

import pytest

from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Hang, Raw, Reply
from cascade.engine import Cascade, Plan, Settings
from cascade.engine.answers import Answers, reask_turns
from cascade.engine.call import Call
from cascade.engine.calls import Caller, Transition
from cascade.engine.clock import Clock
from cascade.engine.decide import Choice
from cascade.engine.outage import outage_wait, unavailable
from cascade.engine.record import Record
from cascade.engine.unrecorded import Unrecorded, branch_task, made, tracking
from cascade.enums import CallKind, Decision, Status
from cascade.errors import (
    AuthenticationFailed,
    BackendFault,
    MalformedResponse,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from cascade.latency import ENOUGH
from cascade.retry import RetryPolicy
from cascade.run.guard import Guard
from cascade.run.limits import BreakerSettings
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.tokens import count_tokens
from cascade.types import (
    Batching,
    Message,
    Price,
    Quote,
    Request,
    Response,
    Task,
    Tier,
    Usage,
    Verdict,
)
from tests.test_batcher import TIER, MemoryBatches, batcher
from tests.test_cut_off import cut_off, run


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
            Call("a", CallKind.CALL, 0.5, replayed=True),
            Call("a", CallKind.CALL, 0.25, replayed=True),
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
    replay.add([Call("a", CallKind.CALL, 1.0, replayed=True)])
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


# What one call comes back as: its words, its latency, its batch mark, its checks of the answer.

_Q: tuple[Message, ...] = ({"role": "user", "content": "q"},)


def _call_tier(backend: object, tier: Tier, **caller: object) -> list[Call]:
    """The calls of one attempt at ``tier``, on a caller that does not wait between retries."""
    made_by = Caller(backend, RetryPolicy(base_s=0.0, jitter=0.0), **caller)  # type: ignore[arg-type]
    return asyncio.run(made_by.call_tier(tier, _Q, "t1", CallKind.CALL))


def test_a_call_past_its_timeout_says_which_model_and_how_long() -> None:
    """A model that does not answer within the tier's timeout is a timeout naming both."""
    (call,) = _call_tier(ScriptedBackend({"a": [Hang()]}), Tier("a", timeout_s=0.05, retries=0))
    assert isinstance(call.error, ProviderTimeout)
    assert str(call.error) == "a did not answer within 0.05s"


def test_a_backend_that_raises_is_a_malformed_answer_naming_the_exception() -> None:
    """A backend's own exception (a bug, not a provider error) is kept as the call's error."""
    (call,) = _call_tier(
        ScriptedBackend({"a": [ValueError("boom")]}), Tier("a", timeout_s=5.0, retries=0)
    )
    assert isinstance(call.error, MalformedResponse)
    assert str(call.error) == "backend raised ValueError: boom"
    assert (call.model, call.kind, call.batch) == ("a", CallKind.CALL, False)


class _Sender:
    """A batch API stand-in: answers (or raises, or returns) what it is given, at once."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.asked: list[Request] = []

    @property
    def waiting(self) -> int:
        """No call ever waits here."""
        return 0

    async def complete(self, tier: Tier, request: Request) -> Response:
        """The scripted answer."""
        self.asked.append(request)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[return-value]  # garbage on purpose


_BATCH_TIER = Tier("a", batch=Batching(size=1, wait_s=0.01), retries=0, timeout_s=5.0)


def test_a_batch_answer_is_a_batch_call_of_the_model_asked() -> None:
    """The batch's answer comes back as the tier's call, marked as sent through the batch API."""
    sender = _Sender(Response("batched", "a", Usage(1, 1), 0.0))
    (call,) = _call_tier(ScriptedBackend({"a": ["direct"]}), _BATCH_TIER, batcher=sender)
    assert (call.model, call.kind, call.batch, call.error) == ("a", CallKind.CALL, True, None)
    assert call.response is not None
    assert call.response.text == "batched"
    assert 0.0 <= call.latency_s < 5.0
    assert len(sender.asked) == 1


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (RuntimeError("lost"), "batcher raised RuntimeError: lost"),
        ({"text": "ok"}, "backend returned dict, not a Response"),
    ],
)
def test_a_batch_that_fails_its_call_is_a_batch_call_then_asked_at_once(
    answer: object, said: str
) -> None:
    """A batcher that raises, or answers garbage, fails the batch call; the model is then asked."""
    (failed, answered) = _call_tier(
        ScriptedBackend({"a": ["direct"]}), _BATCH_TIER, batcher=_Sender(answer)
    )
    assert str(failed.error) == said
    assert (failed.model, failed.batch) == ("a", True)
    assert answered.response is not None
    assert (answered.response.text, answered.batch) == ("direct", False)


@pytest.mark.parametrize(
    ("garbage", "said"),
    [
        ({"text": "ok"}, "backend returned dict, not a Response"),
        (Response(5, "a", Usage(), 0.0), "backend returned text of type int"),  # type: ignore[arg-type]
        (Response("ok", "a", Usage(), -0.01), "backend returned cost -0.01"),
        (Response("ok", "a", Usage(), math.inf), "backend returned cost inf"),
        (Response("ok", "a", Usage(), math.nan), "backend returned cost nan"),
        (Response("ok", "a", Usage(), "free"), "backend returned cost 'free'"),  # type: ignore[arg-type]
    ],
)
def test_a_backends_garbage_fails_the_call_saying_what_was_wrong(
    garbage: object, said: str
) -> None:
    """A reply that is no Response, or one with a text or cost that cannot be, is a fault."""
    (call,) = _call_tier(ScriptedBackend({"a": [Raw(garbage)]}), Tier("a", retries=0))
    assert isinstance(call.error, BackendFault)
    assert str(call.error) == said
    assert (call.model, call.response) == ("a", None)


def test_a_fine_answers_free_costs_pass_the_checks() -> None:
    """A cost of zero, as an int or a float, is a cost: only a negative or unknown one is not."""
    for cost in (0, 0.0, 1e-9):
        (call,) = _call_tier(
            ScriptedBackend({"a": [Raw(Response("ok", "a", Usage(), cost))]}), Tier("a")
        )
        assert call.error is None


class _Timed:
    """A backend that sleeps, then reports the time it measured itself, as an HTTP client does."""

    async def complete(self, request: Request) -> Response:
        start = time.perf_counter()
        await asyncio.sleep(0.02)
        return Response("ok", request.model, Usage(1, 1), 0.0, time.perf_counter() - start)


def test_a_latency_the_backend_measured_on_the_way_is_not_a_recorded_one() -> None:
    """A backend's own figure, within the wall clock's, really passed: the task runs on the wall."""
    (call,) = _call_tier(_Timed(), Tier("a"))
    assert not call.replayed
    assert 0.02 <= call.latency_s < 1.0


def test_a_latency_longer_than_the_wall_clock_is_a_recorded_one() -> None:
    """A replayed call's 5 s did not pass here: the call keeps them and says they are recorded."""
    backend = ScriptedBackend({"a": [Reply("ok", latency_s=5.0)]}, virtual_time=True)
    (call,) = _call_tier(backend, Tier("a"))
    assert call.replayed
    assert call.latency_s == 5.0


def test_a_measured_answer_keeps_the_wall_clocks_latency() -> None:
    """Without a figure from the backend, the latency is the time the call took here."""
    before = time.perf_counter()
    (call,) = _call_tier(ScriptedBackend({"a": ["ok"]}), Tier("a"))
    assert not call.replayed
    assert 0.0 <= call.latency_s <= time.perf_counter() - before


def test_answered_calls_set_the_tiers_expected_latency_and_when_it_last_answered() -> None:
    """After enough answers, a deadline plans by their p90; the model is known to answer."""
    backend = ScriptedBackend({"a": [Reply("ok", latency_s=0.5)]}, virtual_time=True)
    caller = Caller(backend, RetryPolicy())
    tier = Tier("a")
    since = time.monotonic()

    async def ask(times: int) -> None:
        for _ in range(times):
            await caller.call_tier(tier, _Q, "t1", CallKind.CALL)

    assert not caller.answered_since(tier, since)
    asyncio.run(ask(ENOUGH))
    assert caller.answered_since(tier, since)
    assert caller.expected_s(tier) == 0.5


class _Hooks:
    """Guard hooks that record what the caller asks and tells them, with scripted answers."""

    def __init__(self, *, paused_s: float = 0.0, waits: Sequence[float] = ()) -> None:
        self.paused = paused_s
        self.waits = list(waits)
        self.asked_to_wait: list[tuple[float, int]] = []
        self.settled: list[tuple[str, int, int]] = []

    def admit_transition(self, model: str) -> tuple[bool, Transition | None]:
        return True, None

    def paused_s(self, model: str) -> float:
        return self.paused

    def needs_tokens(self, model: str) -> bool:
        return True

    def wait_s(self, model: str, tokens: int) -> float:
        self.asked_to_wait.append((time.monotonic(), tokens))
        return self.waits.pop(0) if self.waits else 0.0

    def settle(self, model: str, reserved: int, used: int) -> None:
        self.settled.append((model, reserved, used))

    def succeeded(self, model: str) -> Transition | None:
        return None

    def failed(self, model: str) -> Transition | None:
        return None

    def rate_limited(self, model: str, retry_after_s: float | None) -> float:
        return retry_after_s or 0.0

    def retry_in_s(self, model: str) -> float:
        return 0.0


def test_a_call_reserves_its_prompt_and_answer_then_settles_what_it_used() -> None:
    """The reservation is the prompt's tokens and max_tokens (256 unsaid); then what was used."""
    used = Reply("ok", usage=Usage(prompt_tokens=40, completion_tokens=7))
    for params, answer in (({}, 256), ({"max_tokens": 32}, 32)):
        hooks = _Hooks()
        tier = Tier("a", params=params)
        (call,) = _call_tier(ScriptedBackend({"a": [used]}), tier, guard=hooks)
        assert call.error is None
        reserved = count_tokens(_Q) + answer
        assert [tokens for _, tokens in hooks.asked_to_wait] == [reserved]
        assert hooks.settled == [("a", reserved, 47)]


def test_a_pause_as_long_as_the_retry_wait_is_waited_not_skipped() -> None:
    """Only a 429 pause longer than the retry policy's longest wait sends the call elsewhere."""
    hooks = _Hooks(paused_s=30.0)
    caller = Caller(ScriptedBackend({"a": ["ok"]}), RetryPolicy(max_wait_s=30.0), guard=hooks)
    (call,) = asyncio.run(caller.call_tier(Tier("a", retries=0), _Q, "t1", CallKind.CALL))
    assert call.error is None
    hooks.paused = 30.5
    (paused,) = asyncio.run(caller.call_tier(Tier("a", retries=0), _Q, "t1", CallKind.CALL))
    assert isinstance(paused.error, RateLimited)
    assert str(paused.error) == "a: paused for 30s after a 429"


def test_a_long_rate_limit_wait_looks_again_within_a_second() -> None:
    """Limits shared with other processes send no signal: a wait of 60 s is re-read each second."""
    hooks = _Hooks(waits=[60.0])
    (call,) = _call_tier(ScriptedBackend({"a": ["ok"]}), Tier("a"), guard=hooks)
    assert call.error is None
    (first, _), (second, _) = hooks.asked_to_wait
    assert 0.9 <= second - first < 1.6


def test_breaker_transitions_are_logged_with_their_failures_and_task() -> None:
    """Opened by a failure, probed after its wait and closed by an answer: three events."""
    now = [1000.0]
    guard = Guard(keys=["a"], breaker=BreakerSettings(failures=2), clock=lambda: now[0])
    backend = ScriptedBackend({"a": [ServerError("503"), ServerError("503"), "ok"]})
    caller = Caller(backend, RetryPolicy(), guard=guard, log=StepLog())
    tier = Tier("a", retries=0)

    async def ask(task_id: str) -> None:
        await caller.call_tier(tier, _Q, task_id, CallKind.CALL)

    with capture_steps() as events:
        asyncio.run(ask("t1"))
        asyncio.run(ask("t2"))
        now[0] += 60.0
        asyncio.run(ask("t3"))
    breaker = [
        (e["before"], e["after"], e["failures"], e["task_id"])
        for e in events
        if e["event"] == "cascade.breaker" and e["model"] == "a"
    ]
    assert breaker == [
        ("closed", "open", 2, "t2"),
        ("open", "half_open", 2, "t3"),
        ("half_open", "closed", 2, "t3"),
    ]


class _Quoting(ScriptedBackend):
    """A scripted backend that quotes ``small``'s price before a call, as litellm's does."""

    def quote(self, model: str) -> Quote | None:
        return Quote(_PRICE) if model == "small" else None


_PRICE = Price(1000.0, 2000.0)


@pytest.mark.parametrize(("backend_type", "cost"), [(_Quoting, 1.0), (ScriptedBackend, 0.0)])
def test_a_call_cut_off_in_flight_costs_its_prompt_at_the_quoted_price(
    backend_type: type[ScriptedBackend], cost: float
) -> None:
    """With no price on the tier, the backend's quote prices the prompt; with none, it is free."""
    backend = backend_type({"small": [Hang()]})
    cascade = Cascade(Plan([Tier("small")]), settings=Settings(backend=backend, log=False))
    sent = [{"role": "user", "content": "x"}]
    started = time.perf_counter()
    steps = run(cut_off(cascade, lambda: len(backend.calls) >= 1))
    took = time.perf_counter() - started
    (step,) = steps
    assert step.decision is Decision.CANCEL
    assert step.cost_usd == pytest.approx(
        cost * count_tokens(sent) * _PRICE.input_usd_per_mtok / 1_000_000, rel=1e-12, abs=0.0
    )
    assert 0.0 < step.latency_s <= took
