"""Make one attempt's backend calls: a deadline on each, retries, then the tier's fallbacks.

This wraps around the decision loop and does not sit inside it: the loop asks for an answer
from a tier and gets back every call it took, the last of which either answered or failed.
With guard hooks (:class:`GuardHooks`, such as :class:`cascade.Guard`), each call first waits
for its model's rate limits and passes its circuit breaker (an open breaker sends the attempt
straight to the fallbacks), and its result feeds both back. Breaker transitions are logged as
``cascade.breaker`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Protocol

from cascade.backends.base import Backend
from cascade.engine.call import Call
from cascade.engine.unrecorded import made
from cascade.enums import SIDE_CALLS, CallKind
from cascade.errors import (
    BackendFault,
    CircuitOpen,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from cascade.latency import Latencies
from cascade.retry import RetryPolicy
from cascade.secrets import SecretRedactor
from cascade.steplog import StepLog
from cascade.tokens import count_tokens
from cascade.types import Message, Quote, Request, Response, Tier

__all__ = ["BatchSender", "Caller", "GuardHooks", "Transition"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A breaker changed state: the caller logs it as a ``cascade.breaker`` event."""

    key: str
    before: str
    after: str
    failures: int


class GuardHooks(Protocol):
    """What the calls ask of a guard: rate limits to wait for, breakers to pass and feed.

    :class:`cascade.Guard` keeps them in memory shared by a run's worker processes; another
    implementation may keep them anywhere (a cluster-wide actor, say).
    """

    def admit_transition(self, model: str) -> tuple[bool, Transition | None]:
        """Whether ``model``'s breaker lets a call through, and any change of its state."""
        ...

    def paused_s(self, model: str) -> float:
        """Seconds ``model`` stays paused after a 429 (0 when it is not)."""
        ...

    def needs_tokens(self, model: str) -> bool:
        """Whether a tokens-per-minute limit applies, so calls must reserve their tokens."""
        ...

    def wait_s(self, model: str, tokens: int) -> float:
        """Seconds to wait before a call of ``tokens``; 0 reserves them and lets it go."""
        ...

    def settle(self, model: str, reserved: int, used: int) -> None:
        """Correct a reservation with the tokens the call really used."""
        ...

    def succeeded(self, model: str) -> Transition | None:
        """A call answered: feed the breaker."""
        ...

    def failed(self, model: str) -> Transition | None:
        """A call failed for the provider's reasons: feed the breaker."""
        ...

    def rate_limited(self, model: str, retry_after_s: float | None) -> float:
        """A 429: pause the model for everyone; returns the pause."""
        ...

    def retry_in_s(self, model: str) -> float:
        """Seconds until a call to ``model`` could go: its 429 pause, or its breaker's cooldown."""
        ...


class BatchSender(Protocol):
    """Sends a batch tier's calls through a provider's batch API: a :class:`~cascade.Batcher`."""

    @property
    def waiting(self) -> int:
        """Calls waiting for a batch now: their tasks are parked, not working."""
        ...

    async def complete(self, tier: Tier, request: Request) -> Response:
        """The answer from a batch, or the :class:`ProviderError` the call ended in there."""
        ...


class Caller:
    """Call a tier's models in order, retrying transient errors on each before moving on."""

    def __init__(
        self,
        backend: Backend,
        retry: RetryPolicy,
        guard: GuardHooks | None = None,
        log: StepLog | None = None,
        redactor: SecretRedactor | None = None,
        batcher: BatchSender | None = None,
    ) -> None:
        self._backend = backend
        self._batcher = batcher
        self.retry = retry
        self._guard = guard
        self._log = log
        self._redactor = redactor or SecretRedactor()
        self._answered_at: dict[str, float] = {}
        """When each model last answered a call of this caller (``time.monotonic()``)."""
        self.latencies = Latencies()
        """Each model's latest answered-call latencies, for tasks with a deadline."""

    async def _ready(self, model: str) -> None:
        """The backend's one-time setup for ``model`` (litellm's import), before any deadline.

        It is no provider's latency, and inside a call it would spend that call's timeout; it
        comes before the guard's checks, which a wait of seconds would leave stale.
        """
        ready = getattr(self._backend, "ready", None)
        if callable(ready):
            # One that cannot get ready fails its call, where the fault is recorded.
            with contextlib.suppress(Exception):
                await ready(model)

    def quote(self, model: str) -> Quote | None:
        """The backend's price and longest answer for ``model``, when it can say before a call."""
        quote = getattr(self._backend, "quote", None)
        return quote(model) if callable(quote) else None

    def expected_s(self, tier: Tier) -> float | None:
        """Seconds an answer of ``tier`` is expected to take (see :mod:`~cascade.latency`).

        A batch tier's answer may take its whole ``batch_deadline_s``: that is what a task with a
        deadline plans by.
        """
        if tier.batch is not None and self._batcher is not None:
            return tier.batch.deadline_s
        known = getattr(self._backend, "expected_latency_s", None)
        return self.latencies.expected_s(tier, known(tier.model) if callable(known) else None)

    def answered_since(self, tier: Tier, since: float) -> bool:
        """Whether a model of ``tier`` answered some call after ``since`` (a monotonic time)."""
        return any(self._answered_at.get(model, -math.inf) > since for model in tier.models)

    def retry_in_s(self, tier: Tier) -> float:
        """Seconds until some model of ``tier`` could take a call again (0 without a guard)."""
        if self._guard is None:
            return 0.0
        return min(self._guard.retry_in_s(model) for model in tier.models)

    async def call_tier(
        self,
        tier: Tier,
        messages: tuple[Message, ...],
        task_id: str,
        kind: CallKind,
        *,
        reask: int = 0,
        sample: int = 0,
        confidence: bool = False,
    ) -> list[Call]:
        """Every call made for one attempt; it stops at the first that answers.

        ``reask`` is how many times this tier was already asked the task (0 for a first ask),
        ``sample`` which extra sample of the question this is (0: none), and ``confidence``
        whether the answer's confidence will be read (see :class:`Request`).
        """
        calls: list[Call] = []
        # A validator's calls keep their kind through retries and fallbacks: they never answer
        # the task, and reports must be able to tell them apart.
        own = kind in SIDE_CALLS
        for position, model in enumerate(tier.models):
            call_kind = kind if position == 0 or own else CallKind.FALLBACK
            request = Request(
                model,
                messages,
                task_id,
                tier.params,
                tier.timeout_s,
                tier.price,
                reask=reask,
                sample=sample,
                confidence=confidence,
            )
            if position == 0 and tier.batch is not None and self._batcher is not None:
                call = await self._once(tier, request, kind, batch=True)
                calls.append(call)
                if call.error is None:
                    return calls
                # What the batch did not answer is asked at once, as an ordinary call.
                call_kind = kind if own else CallKind.RETRY
            for retry_number in range(tier.retries + 1):
                call = await self._guarded(tier, request, call_kind)
                calls.append(call)
                if call.error is None:
                    return calls
                if not call.error.transient or retry_number == tier.retries:
                    break
                retry_after = (
                    call.error.retry_after_s if isinstance(call.error, RateLimited) else None
                )
                wait = self.retry.wait_s(retry_number, retry_after)
                if wait is None:
                    break
                await self.retry.sleep(wait)
                call_kind = kind if own else CallKind.RETRY
        return calls

    async def _guarded(self, tier: Tier, request: Request, kind: CallKind) -> Call:
        """One call through the guard: breaker first, then the rate limits, then the call."""
        guard, model, task_id = self._guard, request.model, request.task_id
        await self._ready(model)  # first: the guard's pauses and limits are read after it
        if guard is None:
            return await self._once(tier, request, kind)
        admitted, transition = guard.admit_transition(model)
        self._note(transition, task_id)
        if not admitted:
            return Call(model, kind, 0.0, error=CircuitOpen(f"{model}: circuit breaker is open"))
        paused = guard.paused_s(model)
        if paused > self.retry.max_wait_s:
            # Paused by a 429 for longer than we wait: treat it as unavailable, try a fallback.
            message = f"{model}: paused for {paused:.0f}s after a 429"
            return Call(model, kind, 0.0, error=RateLimited(message, paused))
        reserved = _estimate(tier, request.messages) if guard.needs_tokens(model) else 0
        # The limits live in memory shared with other processes: no event can signal them.
        while (wait := guard.wait_s(model, reserved)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(wait, 1.0))
        call = await self._once(tier, request, kind)
        error = call.error
        if error is None:
            assert call.response is not None  # a call without an error answered
            usage = call.response.usage
            guard.settle(model, reserved, usage.prompt_tokens + usage.completion_tokens)
            self._note(guard.succeeded(model), task_id)
        elif isinstance(error, RateLimited):
            guard.rate_limited(model, error.retry_after_s)
        elif isinstance(error, ServerError | ProviderTimeout | MalformedResponse):
            self._note(guard.failed(model), task_id)
        return call

    def _note(self, transition: Transition | None, task_id: str) -> None:
        if transition is not None and self._log is not None:
            self._log.event(
                "cascade.breaker",
                model=transition.key,
                before=transition.before,
                after=transition.after,
                failures=transition.failures,
                task_id=task_id,
            )

    def _failed(
        self, model: str, kind: CallKind, start: float, error: ProviderError, *, batch: bool = False
    ) -> Call:
        # A provider may echo the key in its error: it never reaches a step, a reason or a row.
        error.args = (self._redactor.text(str(error)),)
        return Call(model, kind, time.perf_counter() - start, error=error, batch=batch)

    def sent_usd(self, tier: Tier, messages: tuple[Message, ...]) -> float:
        """What sending ``messages`` to ``tier``'s model costs: its prompt at the input price.

        What a call cut off in flight is billed; 0 where no price is known.
        """
        quote = self.quote(tier.model)
        price = tier.price or (quote.price if quote is not None else None)
        return count_tokens(messages) * price.input_usd_per_mtok / 1e6 if price is not None else 0.0

    async def _once(
        self, tier: Tier, request: Request, kind: CallKind, *, batch: bool = False
    ) -> Call:
        """One call, held for the task's record (:mod:`~cascade.engine.unrecorded`).

        A call cut off in flight is held too, at what its prompt cost; but not a batch call,
        whose request stays in the run's ledger for a resumed run to collect, and pay for, then.
        """
        start = time.perf_counter()
        try:
            call = await self._asked(tier, request, kind, batch=batch)
        except asyncio.CancelledError:
            if not batch:
                cost = self.sent_usd(tier, request.messages)
                made(Call(request.model, kind, time.perf_counter() - start, cut_usd=cost))
            raise
        return made(call)

    async def _asked(
        self, tier: Tier, request: Request, kind: CallKind, *, batch: bool = False
    ) -> Call:
        """One call: to the backend within the tier's timeout, or through the batch API.

        A ``batch`` call waits for its batch however long: its deadline is the batcher's.
        """
        model = request.model
        start = time.perf_counter()
        error: ProviderError
        try:
            if batch:
                assert self._batcher is not None  # only batch tiers with a batcher come here
                response = await self._batcher.complete(tier, request)
            else:
                # Our own deadline: litellm's timeouts are not reliable.
                async with asyncio.timeout(tier.timeout_s):
                    response = await self._backend.complete(request)
        except TimeoutError:
            error = ProviderTimeout(f"{model} did not answer within {tier.timeout_s:g}s")
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001  # a broken backend is a fault of the call
            broken = "batcher" if batch else "backend"
            error = MalformedResponse(f"{broken} raised {type(exc).__name__}: {exc}")
        else:
            latency = time.perf_counter() - start
            problem = _malformed(response)
            if problem is None and batch:  # the wait for a batch is no model's latency
                return Call(model, kind, latency, response=response, batch=True)
            if problem is None:
                replayed = False
                if response.latency_s is not None:
                    replayed = response.latency_s > latency + _SLACK_S
                    latency = response.latency_s
                self._answered_at[model] = time.monotonic()
                self.latencies.add(model, latency)
                return Call(model, kind, latency, response=response, replayed=replayed)
            error = BackendFault(problem)
        return self._failed(model, kind, start, error, batch=batch)


_SLACK_S = 0.001
"""A reported latency this much longer than the wall clock's did not really pass."""


def _estimate(tier: Tier, messages: tuple[Message, ...]) -> int:
    """Tokens a call may use, reserved against a tokens-per-minute limit before it goes."""
    answer = tier.params.get("max_tokens")
    return count_tokens(messages) + (answer if isinstance(answer, int) else 256)


def _malformed(response: object) -> str | None:
    if not isinstance(response, Response):
        return f"backend returned {type(response).__name__}, not a Response"
    # Typed as object: a third-party backend may fill a Response with anything.
    text: object = response.text
    cost: object = response.cost_usd
    if not isinstance(text, str):
        return f"backend returned text of type {type(text).__name__}"
    if not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0:
        return f"backend returned cost {cost!r}"
    return None
