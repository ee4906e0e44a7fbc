"""Provider trouble never fails or escalates a task by itself: it waits, within a bound."""

from __future__ import annotations

import pytest

from cascade import CallKind, Decision, RetryPolicy, Status, Tier, capture_steps
from cascade.backends.scripted import Item
from cascade.errors import AuthenticationFailed, RateLimited, ServerError
from cascade.run.guard import BreakerSettings, Guard
from tests.helpers import make, models_called


class Sleeps:
    """A sleep that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        """Record the wait."""
        self.waits.append(seconds)


class Clock(Sleeps):
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        super().__init__()
        self.time = 0.0

    def now(self) -> float:
        """The time: the sum of the sleeps so far."""
        return self.time

    async def sleep(self, seconds: float) -> None:
        """Sleep at once, moving the clock."""
        self.waits.append(seconds)
        self.time += seconds


def retry(sleeps: Sleeps) -> RetryPolicy:
    """Backoff from 0.5 s, recorded rather than slept."""
    return RetryPolicy(base_s=0.5, jitter=0.0, sleep=sleeps)


def test_a_provider_that_comes_back_is_waited_for_not_escalated() -> None:
    """Five 5xx in a row on the only model: the task waits, asks again, and tier 0 answers."""
    sleeps = Sleeps()
    script: dict[str, list[Item]] = {"cheap": [*[ServerError("503")] * 5, "ok"], "dear": ["ok"]}
    with capture_steps() as events:
        cascade, backend = make(
            script, [Tier("cheap", retries=1), "dear"], retry=retry(sleeps), log=None
        )
        outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert outcome.tier == 0
    assert "dear" not in models_called(backend)
    waits = [e["seconds"] for e in events if e["event"] == "cascade.wait"]
    assert waits == [0.5, 1.0]  # backoff between asks of the tier, on top of its own retries
    assert outcome.waited_s >= sum(waits)
    assert sum(sleeps.waits) == pytest.approx(sum(waits) + 3 * 0.5)
    assert all(s.decision is Decision.ERROR for s in outcome.steps[:5])


def test_an_outage_longer_than_the_bound_fails_the_task_and_says_since_when() -> None:
    """A provider down for good: the task waits up to max_outage_s, then fails; no escalation."""
    sleeps = Sleeps()
    cascade, backend = make(
        {"cheap": [ServerError("503 down")], "dear": ["ok"]},
        [Tier("cheap", retries=0), "dear"],
        retry=retry(sleeps),
        max_outage_s=10.0,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert outcome.reasons[0].startswith("tier 0 (cheap) provider unavailable since ")
    assert "503 down" in outcome.reasons[0]
    assert "dear" not in models_called(backend)
    assert sum(sleeps.waits) == pytest.approx(10.0, abs=0.01)  # less the calls' own time
    assert sleeps.waits[:4] == [0.5, 1.0, 1.0, 1.0]  # backoff, capped at 1 s between asks


def test_a_refused_key_fails_at_once_naming_the_refusal() -> None:
    """A 401 is not cured by waiting nor by a dearer tier: the task fails at once."""
    cascade, backend = make(
        {"cheap": [AuthenticationFailed("the provider refused the credentials (401)")]},
        [Tier("cheap", retries=3), "dear"],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert models_called(backend) == ["cheap"]
    assert "refused the credentials (401)" in outcome.reasons[0]


def test_a_429_pause_longer_than_the_retry_wait_is_waited_out_not_escalated() -> None:
    """Retry-After of 60 s, past the retry policy's patience: the task waits for the pause."""
    clock = Clock()
    guard = Guard(keys=["cheap"], clock=clock.now)
    cascade, backend = make(
        {"cheap": [RateLimited("429", retry_after_s=60.0), "ok"], "dear": ["ok"]},
        [Tier("cheap", retries=2), "dear"],
        retry=RetryPolicy(base_s=0.5, max_wait_s=30.0, jitter=0.0, sleep=clock.sleep),
        guard=guard,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert outcome.tier == 0
    assert "dear" not in models_called(backend)
    assert clock.waits == [pytest.approx(60.0, abs=1.0)]


def test_an_open_breaker_with_no_fallback_makes_the_task_wait_for_the_probe() -> None:
    """The breaker opens on the third failure; the task waits for its first probe (1 s)."""
    clock = Clock()
    guard = Guard(keys=["cheap"], breaker=BreakerSettings(3, 30.0), clock=clock.now)
    cascade, backend = make(
        {"cheap": [ServerError("503")] * 3 + ["ok"], "dear": ["ok"]},
        [Tier("cheap", retries=2), "dear"],
        retry=RetryPolicy(base_s=0.5, jitter=0.0, sleep=clock.sleep),
        guard=guard,
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.accepted
    assert models_called(backend) == ["cheap"] * 4
    assert 0.99 <= max(clock.waits) < 29.0  # the breaker's first probe, not its full cooldown
    kinds = [s.error.split(":")[0] for s in outcome.steps if s.error]
    assert kinds == ["ServerError"] * 3  # it waited for the probe, not knocked on the breaker
    assert outcome.steps[-1].kind is not CallKind.FALLBACK


def test_a_key_echoed_by_the_provider_never_reaches_a_step_or_a_reason() -> None:
    """A provider error that quotes the key is cleaned before it is kept anywhere."""
    key = "sk-proj-0123456789abcdefghij"
    cascade, _ = make(
        {"cheap": [AuthenticationFailed(f"Incorrect API key provided: {key}")]},
        [Tier("cheap", params={"api_key": key})],
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert key not in repr(outcome)
    assert "[REDACTED]" in outcome.reasons[0]
