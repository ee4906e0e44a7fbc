"""Rate limits and circuit breakers: shared state, adaptive 429 pauses, breaker transitions."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from cascade import Tier
from cascade.errors import ConfigError, RateLimited, ServerError
from cascade.run.guard import BreakerSettings, Guard, Limit, provider_of
from cascade.steplog import StepLog, capture_steps
from tests.helpers import make, models_called


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def test_provider_is_the_prefix_of_the_model_name() -> None:
    """``openai/gpt-4o`` belongs to ``openai``; a bare name is its own provider."""
    assert provider_of("openai/gpt-4o") == "openai"
    assert provider_of("gpt-4o") == "gpt-4o"


def test_limits_reject_non_positive_rates() -> None:
    """A zero or negative rate is a configuration error."""
    with pytest.raises(ConfigError, match="rpm"):
        Limit(rpm=0)


def test_the_tighter_limit_wins_field_by_field() -> None:
    """Two policies naming one model get the lower rpm and the lower tpm."""
    assert Limit(rpm=100).tighter(Limit(rpm=50, tpm=1000)) == Limit(50, 1000)


def test_requests_per_minute_space_the_calls() -> None:
    """At 120 rpm a second call in the same instant waits half a second, then goes."""
    clock = Clock()
    guard = Guard({"m": Limit(rpm=120)}, keys=["m"], clock=clock)
    assert guard.wait_s("m", 0) == 0.0
    assert guard.wait_s("m", 0) == 0.0  # one second's worth (2) may go at once
    wait = guard.wait_s("m", 0)
    assert wait == pytest.approx(0.5)
    clock.now += wait
    assert guard.wait_s("m", 0) == 0.0


def test_a_provider_limit_covers_every_model_of_the_provider() -> None:
    """A limit on ``openai`` is shared by ``openai/a`` and ``openai/b``."""
    clock = Clock()
    guard = Guard({"openai": Limit(rpm=60)}, keys=["openai/a", "openai/b"], clock=clock)
    assert guard.wait_s("openai/a", 0) == 0.0
    assert guard.wait_s("openai/b", 0) == pytest.approx(1.0)


def test_tokens_per_minute_count_reserved_then_settled_tokens() -> None:
    """A big reservation waits the next call; settling the real usage gives tokens back."""
    clock = Clock()
    guard = Guard({"m": Limit(tpm=6000)}, keys=["m"], clock=clock)
    assert guard.needs_tokens("m")
    assert guard.wait_s("m", 300) == 0.0  # 100 tokens/s: this goes into debt
    assert guard.wait_s("m", 10) == pytest.approx(2.01)
    guard.settle("m", reserved=300, used=50)
    assert guard.wait_s("m", 10) == 0.0


def test_a_429_pauses_the_model_and_halves_its_rate() -> None:
    """Retry-After pauses every caller of the model; the rate comes back with successes."""
    clock = Clock()
    guard = Guard({"m": Limit(rpm=60)}, keys=["m"], clock=clock)
    assert guard.rate_limited("m", 7.0) == 7.0
    assert guard.wait_s("m", 0) == pytest.approx(7.0)
    assert guard.paused_s("m") == pytest.approx(7.0)
    clock.now += 7.0
    assert guard.wait_s("m", 0) == 0.0
    # Half the rate: one call a second becomes one every two seconds.
    assert guard.wait_s("m", 0) == pytest.approx(2.0)
    for _ in range(50):
        guard.succeeded("m")
    clock.now += 2.0
    assert guard.wait_s("m", 0) == 0.0
    assert guard.wait_s("m", 0) == pytest.approx(1.0)


def test_a_429_without_retry_after_backs_off_exponentially() -> None:
    """Without Retry-After, consecutive 429s pause 0.5 s, 1 s, 2 s..."""
    guard = Guard(keys=["m"], clock=Clock())
    assert [guard.rate_limited("m", None) for _ in range(3)] == [0.5, 1.0, 2.0]
    guard.succeeded("m")
    assert guard.rate_limited("m", None) == 0.5


def _hit_429(guard: Guard) -> None:
    guard.rate_limited("shared/model", 30.0)


def test_a_429_in_another_process_pauses_this_one() -> None:
    """The guard's state is shared memory: a worker process's 429 pauses the parent too."""
    guard = Guard(keys=["shared/model"])
    process = multiprocessing.get_context("spawn").Process(target=_hit_429, args=(guard,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert guard.paused_s("shared/model") > 25


def test_the_breaker_opens_after_n_failures_and_probes_after_the_cooldown() -> None:
    """A breaker goes closed → open at N failures → half_open for one probe → closed on success."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=3, cooldown_s=10), keys=["m"], clock=clock)
    assert [guard.failed("m") for _ in range(2)] == [None, None]
    opened = guard.failed("m")
    assert opened is not None
    assert (opened.before, opened.after, opened.failures) == ("closed", "open", 3)
    assert not guard.admit("m")
    clock.now += 10
    admitted, probe = guard.admit_transition("m")
    assert admitted
    assert probe is not None
    assert (probe.before, probe.after) == ("open", "half_open")
    assert not guard.admit("m")  # one probe at a time
    closed = guard.succeeded("m")
    assert closed is not None
    assert (closed.before, closed.after) == ("half_open", "closed")
    assert guard.admit("m")


def test_a_late_answer_does_not_close_an_open_breaker() -> None:
    """A call let through before the breaker opened may answer after: the breaker stays open."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=2, cooldown_s=10), keys=["m"], clock=clock)
    guard.failed("m")
    assert guard.failed("m") is not None
    assert guard.succeeded("m") is None
    assert guard.state("m") == "open"
    assert not guard.admit("m")
    clock.now += 10
    assert guard.admit("m")  # the probe
    closed = guard.succeeded("m")
    assert closed is not None
    assert (closed.before, closed.after) == ("half_open", "closed")


def test_a_failed_probe_opens_the_breaker_again() -> None:
    """A probe that fails sends the breaker back to open for another cooldown."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=1, cooldown_s=5), keys=["m"], clock=clock)
    guard.failed("m")
    clock.now += 5
    assert guard.admit("m")
    reopened = guard.failed("m")
    assert reopened is not None
    assert (reopened.before, reopened.after) == ("half_open", "open")
    assert not guard.admit("m")
    clock.now += 5
    assert guard.admit("m")


def test_a_lost_probe_frees_its_place_after_the_cooldown() -> None:
    """A probe that never reports (its worker died) does not hold the breaker half-open."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=1, cooldown_s=5), keys=["m"], clock=clock)
    guard.failed("m")
    clock.now += 5
    assert guard.admit("m")
    clock.now += 5
    assert guard.admit("m")


def test_a_model_the_guard_was_not_told_about_gets_a_local_breaker() -> None:
    """Unknown keys work too, in this process only."""
    guard = Guard(breaker=BreakerSettings(failures=1))
    guard.failed("judge/model")
    assert guard.state("judge/model") == "open"


def test_an_open_breaker_sends_calls_to_the_fallback_and_logs_each_change() -> None:
    """Once the primary fails N times, tasks skip it for the fallback, and the change is logged."""
    guard = Guard(breaker=BreakerSettings(failures=2, cooldown_s=60), keys=["a", "b"])
    cascade, backend = make(
        {"a": [ServerError("503")], "b": ["ok"]},
        [Tier("a", fallbacks=("b",), retries=0)],
        guard=guard,
        log=StepLog(),
    )
    with capture_steps() as events:
        outcomes = [cascade.run({"id": f"t{i}", "input": "x"}) for i in range(5)]
    assert all(o.status == "accepted" for o in outcomes)
    assert models_called(backend) == ["a", "b", "a", "b", "b", "b", "b"]
    changes = [e for e in events if e["event"] == "cascade.breaker"]
    assert [(e["model"], e["before"], e["after"]) for e in changes] == [("a", "closed", "open")]
    skipped = [s for o in outcomes[2:] for s in o.steps if s.error]
    assert all("circuit breaker is open" in (s.error or "") for s in skipped)


def test_a_rate_limited_model_is_paused_for_every_task() -> None:
    """One 429 with Retry-After makes the next task wait before calling the model."""
    guard = Guard(keys=["a"])
    cascade, backend = make(
        {"a": [RateLimited("429", 0.3), "ok"]}, [Tier("a", retries=1)], guard=guard
    )

    async def two() -> float:
        first = await cascade.arun({"id": "t1", "input": "x"})
        assert first.status == "accepted"
        start = time.monotonic()
        await cascade.arun({"id": "t2", "input": "x"})
        return time.monotonic() - start

    assert asyncio.run(two()) < 0.3  # the first task's retry already waited out the pause
    assert models_called(backend) == ["a", "a", "a"]
    assert guard.paused_s("a") == 0.0


def test_probes_start_soon_and_slow_down_while_the_provider_stays_down() -> None:
    """First probe after first_probe_s; each failed probe doubles the wait, up to cooldown_s."""
    clock = Clock()
    breaker = BreakerSettings(failures=1, cooldown_s=5, first_probe_s=1)
    guard = Guard(breaker=breaker, keys=["m"], clock=clock)
    guard.failed("m")
    waits = []
    for _ in range(5):
        waits.append(guard.retry_in_s("m"))
        assert not guard.admit("m")
        clock.now += waits[-1]
        assert guard.admit("m")  # the probe
        guard.failed("m")  # and it fails
    assert waits == [1, 2, 4, 5, 5]
    clock.now += 5
    assert guard.admit("m")
    assert guard.succeeded("m") is not None  # back: closed, and the next trip starts at 1 s
    guard.failed("m")
    assert guard.retry_in_s("m") == 1
