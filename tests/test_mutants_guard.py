"""The shared guard at its edges, where mutation testing found its lines unpinned.

Each test states what a run sees at a boundary: the longest pause a 429 may cause, the slowest
rate repeated 429s may leave, how much rate a success wins back, which keys a call is counted
against, what a snapshot of the guard reports, and how many breaker trips a run counts.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from cascade.policy import load_policies
from cascade.run.guard import BreakerSettings, Guard, Limit, Transition, guard_for

_POLICY = """
task_type = "{name}"
[[tiers]]
model = "openai/small"
[[tiers]]
model = "openai/big"
[breaker]
failures = {failures}
cooldown_s = {cooldown}
first_probe_s = {first}
[limits.openai]
rpm = {rpm}
[audit]
share = 0.1
model = "openai/audit-{name}"
"""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def _drained_wait(guard: Guard, model: str) -> float:
    """Take the call that may go now, then say how long the next one waits."""
    assert guard.wait_s(model, 0) == 0.0
    return guard.wait_s(model, 0)


@pytest.mark.parametrize(("retry_after", "pause"), [(59.0, 59.0), (60.0, 60.0), (600.0, 60.0)])
def test_a_429_pauses_at_most_a_minute(retry_after: float, pause: float) -> None:
    """A Retry-After up to 60 s is obeyed; a longer one pauses the model for 60 s."""
    clock = Clock()
    guard = Guard(keys=["m"], clock=clock)
    assert guard.rate_limited("m", retry_after) == pause
    assert guard.paused_s("m") == pause
    clock.now += pause
    assert guard.paused_s("m") == 0.0


def test_429s_without_retry_after_back_off_to_thirty_seconds() -> None:
    """Doubling from 0.5 s, the pause of a 429 with no Retry-After stops at 30 s."""
    guard = Guard(keys=["m"], clock=Clock())
    pauses = [guard.rate_limited("m", None) for _ in range(8)]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_shorter_429_does_not_cut_a_longer_pause_short() -> None:
    """A second 429 asking for less keeps the pause the first one set."""
    clock = Clock()
    guard = Guard(keys=["m"], clock=clock)
    guard.rate_limited("m", 20.0)
    guard.rate_limited("m", 5.0)
    assert guard.paused_s("m") == 20.0


def test_repeated_429s_leave_a_twentieth_of_the_rate() -> None:
    """However many 429s, a model keeps 5 % of its configured rate: at 60 rpm, one call per 20 s."""
    clock = Clock()
    guard = Guard({"m": Limit(rpm=60)}, keys=["m"], clock=clock)
    for _ in range(10):
        guard.rate_limited("m", 0.0)
    assert _drained_wait(guard, "m") == pytest.approx(20.0)


@pytest.mark.parametrize(("successes", "wait"), [(0, 2.0), (10, 1 / 0.7), (25, 1.0), (100, 1.0)])
def test_each_success_after_a_429_wins_back_two_percent_of_the_rate(
    successes: int, wait: float
) -> None:
    """After a 429 halves a 60 rpm rate, each success adds 2 %, up to the configured rate."""
    clock = Clock()
    guard = Guard({"m": Limit(rpm=60)}, keys=["m"], clock=clock)
    guard.rate_limited("m", 0.0)
    for _ in range(successes):
        guard.succeeded("m")
    assert _drained_wait(guard, "m") == pytest.approx(wait)


def test_a_slow_rate_lets_one_call_go_at_once() -> None:
    """Below one request a second, the bucket holds one call: at 30 rpm the next waits 2 s."""
    guard = Guard({"m": Limit(rpm=30)}, keys=["m"], clock=Clock())
    assert _drained_wait(guard, "m") == pytest.approx(2.0)


def test_a_call_under_two_limits_waits_for_the_slower() -> None:
    """A model limited itself and through its provider waits as long as the longer wait says."""
    clock = Clock()
    guard = Guard(
        {"openai": Limit(rpm=60), "openai/a": Limit(rpm=30)}, keys=["openai/a"], clock=clock
    )
    assert _drained_wait(guard, "openai/a") == pytest.approx(2.0)


def test_a_call_that_waits_under_one_limit_takes_nothing_from_the_other() -> None:
    """When the provider's bucket is empty, the model's own share is left for later."""
    clock = Clock()
    limits = {"openai": Limit(rpm=60), "openai/a": Limit(rpm=60)}
    guard = Guard(limits, keys=["openai/a", "openai/b"], clock=clock)
    assert guard.wait_s("openai/b", 0) == 0.0  # empties the provider's bucket only
    assert guard.wait_s("openai/a", 0) == pytest.approx(1.0)
    clock.now += 1.0
    assert guard.wait_s("openai/a", 0) == 0.0  # the model's bucket is still full
    clock.now += 1.0
    assert guard.wait_s("openai/a", 0) == 0.0  # and both refill at their rate


def test_settling_gives_tokens_back_only_to_token_limits() -> None:
    """Settling a call's real usage corrects the tpm bucket; a request limit is left as it was."""
    clock = Clock()
    guard = Guard(
        {"openai": Limit(tpm=60), "openai/a": Limit(rpm=60)}, keys=["openai/a"], clock=clock
    )
    assert guard.wait_s("openai/a", 2) == 0.0  # 1 token a second: into debt
    clock.now += 1.0
    assert guard.wait_s("openai/a", 0) == pytest.approx(1.0)
    guard.settle("openai/a", reserved=2, used=0)
    assert guard.wait_s("openai/a", 0) == 0.0
    assert guard.wait_s("openai/a", 0) == pytest.approx(1.0)  # the rpm bucket was not refilled


def test_a_snapshot_names_the_troubled_keys_and_their_pauses() -> None:
    """troubled() lists breakers not closed (shared or local) and the time each pause has left."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=1, cooldown_s=10), keys=["a", "b"], clock=clock)
    assert guard.troubled() == ([], {})
    guard.failed("a")
    guard.failed("local/model")
    guard.rate_limited("b", 4.0)
    clock.now += 1.0
    not_closed, paused = guard.troubled()
    assert sorted(not_closed) == ["a", "local/model"]
    assert paused == {"b": 3.0}
    clock.now += 3.0
    assert guard.troubled()[1] == {}


def test_a_half_open_breaker_waits_out_its_probe() -> None:
    """While the probe is out, the next call could go once the probe's turn (the wait) is over."""
    clock = Clock()
    breaker = BreakerSettings(failures=1, cooldown_s=10, first_probe_s=2)
    guard = Guard(breaker=breaker, keys=["m"], clock=clock)
    assert guard.retry_in_s("m") == 0.0
    guard.failed("m")
    clock.now += 0.5
    assert guard.retry_in_s("m") == 1.5
    clock.now += 1.5
    assert guard.admit("m")
    clock.now += 0.5
    assert guard.state("m") == "half_open"
    assert guard.retry_in_s("m") == 1.5


def test_a_paused_model_with_a_closed_breaker_waits_for_the_pause() -> None:
    """retry_in_s is the 429 pause when the breaker is closed, the longer wait when both apply."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=10, first_probe_s=3), keys=["m"], clock=clock
    )
    guard.rate_limited("m", 5.0)
    assert guard.retry_in_s("m") == 5.0
    guard.failed("m")
    assert guard.retry_in_s("m") == 5.0
    clock.now += 5.0
    assert guard.retry_in_s("m") == 0.0


def test_the_probe_turn_ends_exactly_at_its_wait() -> None:
    """A half-open breaker refuses a second call just before the wait is over and lets it after."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=4, first_probe_s=None),
        keys=["m"],
        clock=clock,
    )
    guard.failed("m")
    clock.now += 4.0
    probe = guard.admit_transition("m")[1]
    assert probe == Transition("m", "open", "half_open", 1)
    clock.now += 3.999
    assert guard.admit_transition("m") == (False, None)
    clock.now += 0.001
    assert guard.admit_transition("m") == (True, None)  # the lost probe's place, no transition
    assert guard.admit_transition("m") == (False, None)  # and the new probe holds it


def test_a_success_resets_the_count_of_failures() -> None:
    """Failures must be consecutive: one answer in between starts the count again."""
    guard = Guard(breaker=BreakerSettings(failures=3), keys=["m"], clock=Clock())
    guard.failed("m")
    guard.failed("m")
    assert guard.succeeded("m") is None
    assert [guard.failed("m"), guard.failed("m")] == [None, None]
    assert guard.state("m") == "closed"
    opened = guard.failed("m")
    assert opened is not None
    assert opened.failures == 3


def test_a_breaker_closed_by_its_probe_reports_the_failures_it_saw() -> None:
    """Closing, a breaker reports every failure since the last answer; then counting starts over."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=2, cooldown_s=1, first_probe_s=None),
        keys=["m"],
        clock=clock,
    )
    guard.failed("m")
    guard.failed("m")
    clock.now += 1.0
    assert guard.admit("m")
    reopened = guard.failed("m")
    assert reopened is not None
    assert (reopened.before, reopened.after, reopened.failures) == ("half_open", "open", 3)
    clock.now += 1.0
    assert guard.admit("m")
    closed = guard.succeeded("m")
    assert closed is not None
    assert (closed.key, closed.before, closed.after, closed.failures) == (
        "m",
        "half_open",
        "closed",
        3,
    )
    assert guard.failed("m") is None  # counting starts over


def test_an_open_breaker_counts_failures_without_a_new_transition() -> None:
    """Late failures while the breaker is open change nothing a user sees but the count."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=5, first_probe_s=None),
        keys=["m"],
        clock=clock,
    )
    assert guard.failed("m") is not None
    assert guard.failed("m") is None
    assert guard.retry_in_s("m") == 5.0  # a late failure does not restart the cooldown
    clock.now += 5.0
    probe = guard.admit_transition("m")[1]
    assert probe is not None
    assert probe.failures == 2


def test_trips_count_breakers_opening_from_closed_only() -> None:
    """A failed probe is not a new trip; a trip after the breaker closed again is."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=1, first_probe_s=None),
        keys=["a", "b"],
        clock=clock,
    )
    assert guard.trips() == 0
    guard.failed("a")
    guard.failed("b")
    assert guard.trips() == 2
    clock.now += 1.0
    assert guard.admit("a")
    guard.failed("a")  # the probe fails
    assert guard.trips() == 2
    clock.now += 2.0
    assert guard.admit("a")
    guard.succeeded("a")
    guard.failed("a")
    assert guard.trips() == 3


def test_the_shared_keys_are_the_models_their_providers_and_the_limits() -> None:
    """Every model, its provider and every limited key is shared, each once, in order."""
    guard = Guard({"x": Limit(rpm=1)}, keys=["openai/a", "openai/b", "x"])
    assert guard.keys == ["openai", "openai/a", "openai/b", "x"]
    assert repr(guard) == (
        "Guard(keys=4, limits={'x': Limit(rpm=1, tpm=None)}, "
        "breaker=BreakerSettings(failures=5, cooldown_s=30.0, first_probe_s=1.0))"
    )


def test_a_guard_with_no_keys_still_works() -> None:
    """With nothing to share, every model is local, and there are no trips."""
    guard = Guard()
    assert guard.keys == []
    assert guard.wait_s("m", 0) == 0.0
    assert guard.trips() == 0


def _in_worker(guard: Guard) -> None:
    if (guard.state("m"), guard.state("local/model"), guard.trips()) != ("open", "closed", 1):
        raise SystemExit(3)


def test_a_guard_sent_to_a_worker_shares_its_keys_but_not_its_local_state() -> None:
    """A worker process sees the shared breakers as they are, and local ones afresh."""
    guard = Guard(breaker=BreakerSettings(failures=1), keys=["m"])
    guard.failed("m")
    guard.failed("local/model")
    process = multiprocessing.get_context("spawn").Process(target=_in_worker, args=(guard,))
    process.start()
    process.join(60)
    assert process.exitcode == 0


def test_the_strictest_breaker_of_the_policies_holds(tmp_path: Path) -> None:
    """A run's guard takes the fewest failures, shortest cooldown, soonest probe, lowest rate.

    Every tier's model and every audit model is a shared key.
    """
    for name, failures, cooldown, first, rpm in [("a", 7, 20, 3, 300), ("b", 3, 60, 5, 500)]:
        text = _POLICY.format(name=name, failures=failures, cooldown=cooldown, first=first, rpm=rpm)
        (tmp_path / f"{name}.toml").write_text(text)
    guard = guard_for(load_policies(tmp_path))
    assert guard.breaker == BreakerSettings(3, 20.0, 3.0)
    assert guard.limits == {"openai": Limit(rpm=300)}
    assert guard.keys == [
        "openai",
        "openai/audit-a",
        "openai/audit-b",
        "openai/big",
        "openai/small",
    ]


def test_a_model_is_failing_from_its_first_failure_until_an_answer() -> None:
    """failing() counts from the first failure with no answer since, past the threshold only."""
    clock = Clock()
    guard = Guard(breaker=BreakerSettings(failures=9), keys=["a", "b"], clock=clock)
    assert guard.failing() == {}
    guard.failed("b")
    guard.failed("local/model")
    assert guard.failing() == {}
    clock.now += 0.5
    assert guard.failing() == {"b": 0.5, "local/model": 0.5}  # by default, any time at all
    clock.now += 3.5
    guard.failed("b")  # a later failure does not restart the count
    assert guard.failing() == {"b": 4.0, "local/model": 4.0}
    assert guard.failing(longer_than_s=3.5) == {"b": 4.0, "local/model": 4.0}
    assert guard.failing(longer_than_s=4.0) == {}  # over the threshold, not at it
    guard.succeeded("b")
    assert guard.failing() == {"local/model": 4.0}


def test_each_shared_key_keeps_its_own_breaker() -> None:
    """Opening the breaker of one shared key leaves its neighbours' closed."""
    guard = Guard(breaker=BreakerSettings(failures=1), keys=["a", "b", "c"], clock=Clock())
    guard.failed("b")
    assert [guard.state(k) for k in ("a", "b", "c")] == ["closed", "open", "closed"]
    assert guard.troubled() == (["b"], {})
    assert (guard.retry_in_s("a"), guard.retry_in_s("b")) == (0.0, 1.0)
    assert guard.failing() == {}  # failing since now: not over 0 s yet


def test_a_pause_with_under_a_second_left_is_still_reported() -> None:
    """troubled() lists a 429 pause however little of it is left."""
    clock = Clock()
    guard = Guard(keys=["m"], clock=clock)
    guard.rate_limited("m", 1.0)
    clock.now += 0.75
    assert guard.troubled() == ([], {"m": 0.25})


def test_a_breaker_closed_by_its_probe_lets_the_next_call_go_at_once() -> None:
    """Once the probe answered, retry_in_s is 0: no cooldown is left over."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=10, first_probe_s=None),
        keys=["m"],
        clock=clock,
    )
    guard.failed("m")
    clock.now += 10.0
    assert guard.admit("m")
    assert guard.succeeded("m") is not None
    assert guard.retry_in_s("m") == 0.0


def test_a_wait_long_over_is_zero_not_negative() -> None:
    """Long after a pause and a cooldown ended, retry_in_s is 0."""
    clock = Clock()
    guard = Guard(
        breaker=BreakerSettings(failures=1, cooldown_s=2, first_probe_s=None),
        keys=["m"],
        clock=clock,
    )
    guard.rate_limited("m", 1.0)
    guard.failed("m")
    clock.now += 100.0
    assert guard.retry_in_s("m") == 0.0


def test_a_guard_on_a_clock_of_its_own_can_still_be_sent_to_a_worker() -> None:
    """A worker runs on the real clock: a guard built with any clock pickles and starts one."""
    guard = Guard(breaker=BreakerSettings(failures=1), keys=["m"], clock=lambda: 1000.0)
    guard.failed("m")
    guard.failed("local/model")
    process = multiprocessing.get_context("spawn").Process(target=_in_worker, args=(guard,))
    process.start()
    process.join(60)
    assert process.exitcode == 0


def test_a_429_on_a_model_the_guard_was_not_told_about_starts_at_half_a_second() -> None:
    """A local key backs off from 0.5 s like a shared one."""
    guard = Guard(keys=["m"], clock=Clock())
    assert [guard.rate_limited("local/model", None) for _ in range(2)] == [0.5, 1.0]


def test_a_pause_of_under_a_second_is_waited() -> None:
    """A call to a model paused for half a second waits that half second."""
    clock = Clock()
    guard = Guard(keys=["m"], clock=clock)
    guard.rate_limited("m", 0.5)
    assert guard.wait_s("m", 0) == 0.5
    clock.now += 0.5
    assert guard.wait_s("m", 0) == 0.0


def test_a_bucket_starts_full_even_at_time_zero() -> None:
    """On a clock that starts at 0, the first call still goes at once."""
    guard = Guard({"m": Limit(rpm=60)}, keys=["m"], clock=lambda: 0.0)
    assert guard.wait_s("m", 0) == 0.0


def test_settling_adds_the_unused_tokens_to_what_is_left() -> None:
    """A 30-token reservation that used 10 gives 20 back: the bucket is then at 0, not refilled."""
    clock = Clock()
    guard = Guard({"m": Limit(tpm=600)}, keys=["m"], clock=clock)  # 10 tokens a second
    assert guard.wait_s("m", 30) == 0.0  # 10 in the bucket: 20 in debt
    guard.settle("m", reserved=30, used=10)
    assert guard.wait_s("m", 1) == pytest.approx(0.1)
