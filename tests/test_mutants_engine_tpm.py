"""A tier under a tokens-per-minute limit: each call reserves its prompt and longest answer.

The engine's caller reserves a call's worst tokens (its prompt, and ``max_tokens`` or 256)
against the guard before it goes, waits while the bucket is empty, and settles the real usage
after. Time here is virtual: the guard's clock moves only when the caller sleeps.
"""

from __future__ import annotations

import asyncio

import pytest

from cascade.engine.calls import Caller
from cascade.enums import CallKind
from cascade.retry import RetryPolicy
from cascade.run.guard import Guard
from cascade.run.limits import Limit
from cascade.tokens import count_tokens
from cascade.types import Message, Price, Request, Response, Tier, Usage

ASKED: tuple[Message, ...] = ({"role": "user", "content": "hello there"},)


class _Time:
    """Virtual seconds, moved only by the caller's sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Backend:
    """Answers at once, noting the virtual time of each call; each answer uses ``used`` tokens."""

    def __init__(self, time: _Time, used: int) -> None:
        self.time, self.used, self.at = time, used, list[float]()

    async def complete(self, request: Request) -> Response:
        self.at.append(self.time.now)
        return Response("ok", request.model, Usage(self.used, 0), 0.0, 0.0, None, 0.0)


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> _Time:
    """The virtual clock; the caller's sleeps move it instead of waiting."""
    clock = _Time()
    real = asyncio.sleep

    async def sleep(seconds: float, result: object = None) -> object:
        clock.now += max(seconds, 1e-6)  # as a real clock, time passes: rounding cannot stall it
        return await real(0, result)

    monkeypatch.setattr("cascade.engine.calls.asyncio.sleep", sleep)
    return clock


def _two_calls(time: _Time, tpm: float, max_tokens: int, used: int) -> list[float]:
    """Two calls of one tier in turn; the virtual times they reached the backend."""
    guard = Guard({"m": Limit(tpm=tpm)}, keys=["m"], clock=time)
    backend = _Backend(time, used)
    caller = Caller(backend, RetryPolicy(), guard)
    tier = Tier("m", params={"max_tokens": max_tokens}, price=Price(1.0, 1.0))

    async def go() -> None:
        for task in ("t1", "t2"):
            await caller.call_tier(tier, ASKED, task, CallKind.CALL)

    asyncio.run(go())
    return backend.at


class _Held(_Backend):
    """The first call is held until the second one reaches the backend: both in flight."""

    def __init__(self, time: _Time, used: int) -> None:
        super().__init__(time, used)
        self.second = asyncio.Event()

    async def complete(self, request: Request) -> Response:
        answer = await super().complete(request)
        if request.task_id == "t1":
            await self.second.wait()
        else:
            self.second.set()
        return answer


def test_a_call_in_flight_holds_its_prompt_and_longest_answer_against_the_next(
    time: _Time,
) -> None:
    """A call of prompt + 200 still in flight: the next waits for the bucket to refill.

    100 tokens a second, 100 at once: it waits until one token is back, before anything was
    settled.
    """
    worst = count_tokens(list(ASKED)) + 200
    guard = Guard({"m": Limit(tpm=6000)}, keys=["m"], clock=time)
    backend = _Held(time, used=worst)
    caller = Caller(backend, RetryPolicy(), guard)
    tier = Tier("m", params={"max_tokens": 200}, price=Price(1.0, 1.0))

    async def go() -> None:
        first = asyncio.ensure_future(caller.call_tier(tier, ASKED, "t1", CallKind.CALL))
        await asyncio.sleep(0)  # the first takes its tokens, then the second asks
        await caller.call_tier(tier, ASKED, "t2", CallKind.CALL)
        await first

    asyncio.run(go())
    first_at, second_at = backend.at
    assert second_at - first_at == pytest.approx((worst - 100 + 1) / 100, abs=0.02)


def test_a_wait_under_a_second_is_waited_too(time: _Time) -> None:
    """A call just over the bucket: the next waits a fraction of a second, not nothing."""
    worst = count_tokens(list(ASKED)) + 95
    first, second = _two_calls(time, tpm=6000, max_tokens=95, used=worst)
    assert 0.0 < second - first < 1.0
    assert second - first == pytest.approx((worst - 100 + 1) / 100, abs=0.02)


def test_tokens_reserved_but_not_used_are_given_back(time: _Time) -> None:
    """Settled at its real use (1 token), the first call leaves room: the next goes at once."""
    first, second = _two_calls(time, tpm=6000, max_tokens=400, used=1)
    assert second == first
