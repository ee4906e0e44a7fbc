"""The edges of the retry and rate-limit settings, where mutation testing found them unpinned.

Each test states one behaviour at a boundary: the last value a setting accepts, the first it
refuses, and what a wait or a key list is right at the edge.
"""

from __future__ import annotations

import random

import pytest

from cascade.errors import ConfigError
from cascade.retry import RetryPolicy
from cascade.run.limits import BreakerSettings, Limit, counts_tokens, keys_of


@pytest.mark.parametrize(
    ("base_s", "max_wait_s", "jitter"),
    [(0.0, 30.0, 0.25), (0.5, 0.0, 0.25), (0.5, 30.0, 0.0), (0.5, 30.0, 1.0)],
)
def test_a_retry_policy_accepts_the_edges_of_its_ranges(
    base_s: float, max_wait_s: float, jitter: float
) -> None:
    """Zero waits and a jitter of exactly 0 or 1 are valid settings."""
    assert RetryPolicy(base_s, max_wait_s, jitter).jitter == jitter


@pytest.mark.parametrize(
    ("base_s", "max_wait_s", "jitter"),
    [(-0.001, 30.0, 0.25), (0.5, -0.001, 0.25), (0.5, 30.0, -0.001), (0.5, 30.0, 1.001)],
)
def test_a_retry_policy_refuses_settings_just_past_them(
    base_s: float, max_wait_s: float, jitter: float
) -> None:
    """A negative wait or a jitter outside [0, 1] is a configuration error that says the ranges."""
    with pytest.raises(
        ConfigError, match=r"^RetryPolicy needs base_s >= 0, max_wait_s >= 0, 0 <= jitter <= 1$"
    ):
        RetryPolicy(base_s, max_wait_s, jitter)


def test_backoff_is_capped_at_max_wait_s() -> None:
    """A late retry waits max_wait_s, not base_s * 2**n."""
    retry = RetryPolicy(base_s=1.0, max_wait_s=5.0, jitter=0.0)
    assert [retry.wait_s(n, None) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_no_base_and_no_retry_after_is_no_wait() -> None:
    """With base_s = 0 and no Retry-After, the retry goes at once."""
    assert RetryPolicy(base_s=0.0, jitter=0.0).wait_s(3, None) == 0.0


def test_jitter_adds_up_to_its_share_of_the_backoff() -> None:
    """With jitter 0.25, every wait lies in [backoff, 1.25 * backoff], and they differ."""
    random.seed(34)
    retry = RetryPolicy(base_s=2.0, max_wait_s=30.0, jitter=0.25)
    waits = [retry.wait_s(1, None) for _ in range(200)]
    assert all(w is not None and 4.0 <= w <= 5.0 for w in waits)
    assert len(set(waits)) > 100
    assert max(w or 0.0 for w in waits) > 4.9  # the whole share is reachable


def test_a_retry_after_longer_than_the_backoff_wins() -> None:
    """A provider's Retry-After within max_wait_s is waited whole, jitter or not."""
    assert RetryPolicy(base_s=0.5, jitter=1.0).wait_s(0, retry_after_s=7.0) == 7.0


def test_a_bare_model_limited_by_its_own_name_counts_once() -> None:
    """A model with no provider prefix is one key, even when a limit names it."""
    assert keys_of("local", {"local": Limit(rpm=5)}) == ["local"]


def test_a_provider_without_a_limit_is_not_a_key() -> None:
    """A call counts against its provider only when that provider has a limit."""
    assert keys_of("openai/gpt-4o", {"anthropic": Limit(rpm=5)}) == ["openai/gpt-4o"]


@pytest.mark.parametrize(
    ("limits", "counts"),
    [
        ({}, False),
        ({"openai": Limit(rpm=5)}, False),
        ({"openai": Limit(tpm=1000)}, True),
        ({"openai/gpt-4o": Limit(tpm=1000)}, True),
        ({"openai/gpt-4o": Limit(rpm=5), "openai": Limit(tpm=1000)}, True),
        ({"anthropic": Limit(tpm=1000)}, False),
    ],
)
def test_tokens_are_counted_only_under_a_tokens_limit(
    limits: dict[str, Limit], counts: bool
) -> None:
    """A tpm limit on the model or its provider makes its calls count tokens; nothing else does."""
    assert counts_tokens("openai/gpt-4o", limits) is counts


@pytest.mark.parametrize("field", ["rpm", "tpm"])
def test_a_limit_refuses_zero_and_accepts_the_smallest_positive_rate(field: str) -> None:
    """Zero per minute is refused, naming the field and value; any positive rate is valid."""
    with pytest.raises(ConfigError, match=rf"^{field} must be > 0, got 0$"):
        Limit(**{field: 0})
    assert getattr(Limit(**{field: 0.001}), field) == 0.001


def test_the_tighter_limit_is_the_lower_either_way_round() -> None:
    """tighter() keeps the lower rate whichever side has it, and a limit where one side has none."""
    assert Limit(rpm=50, tpm=1000).tighter(Limit(rpm=100)) == Limit(rpm=50, tpm=1000)
    assert Limit(tpm=10).tighter(Limit(rpm=7, tpm=20)) == Limit(rpm=7, tpm=10)
    assert Limit().tighter(Limit()) == Limit()


def test_a_breaker_of_one_failure_is_valid() -> None:
    """A breaker that opens at the first failure is the smallest valid one."""
    assert BreakerSettings(failures=1).failures == 1


@pytest.mark.parametrize(
    ("failures", "cooldown_s", "first_probe_s", "message"),
    [
        (0, 30.0, 1.0, "^a breaker needs failures >= 1 and cooldown_s > 0$"),
        (5, 0.0, 1.0, "^a breaker needs failures >= 1 and cooldown_s > 0$"),
        (5, 30.0, 0.0, "^a breaker's first_probe_s must be > 0$"),
    ],
)
def test_a_breaker_refuses_settings_at_zero(
    failures: int, cooldown_s: float, first_probe_s: float, message: str
) -> None:
    """No failures, no cooldown or an instant first probe is a configuration error."""
    with pytest.raises(ConfigError, match=message):
        BreakerSettings(failures, cooldown_s, first_probe_s)


@pytest.mark.parametrize(
    ("first_probe_s", "cooldown_s", "wait"),
    [(1.0, 30.0, 1.0), (None, 30.0, 30.0), (60.0, 30.0, 30.0)],
)
def test_the_first_probe_waits_the_shorter_of_its_wait_and_the_cooldown(
    first_probe_s: float | None, cooldown_s: float, wait: float
) -> None:
    """The first probe goes after first_probe_s, capped at cooldown_s; None means cooldown_s."""
    breaker = BreakerSettings(cooldown_s=cooldown_s, first_probe_s=first_probe_s)
    assert breaker.first_wait_s() == wait


def test_the_provider_is_the_first_part_of_a_nested_model_name() -> None:
    """A three-part name is limited under its first part, not its first two."""
    assert keys_of("openrouter/meta-llama/llama-3", {"openrouter": Limit(rpm=5)}) == [
        "openrouter/meta-llama/llama-3",
        "openrouter",
    ]


def test_a_breaker_may_cool_down_for_under_a_second() -> None:
    """Any positive cooldown is valid, half a second included."""
    assert BreakerSettings(cooldown_s=0.5, first_probe_s=0.25).first_wait_s() == 0.25
