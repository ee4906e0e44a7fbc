"""What a run's guard enforces: rate limits and breaker settings, and the keys a call counts on.

Values only; :class:`cascade.run.guard.Guard` keeps the state that they govern.

>>> Limit(rpm=600).tighter(Limit(rpm=300, tpm=10_000))
Limit(rpm=300, tpm=10000)
>>> keys_of("openai/gpt-4o-mini", {"openai": Limit(rpm=500)})
['openai/gpt-4o-mini', 'openai']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cascade.errors import ConfigError

__all__ = [
    "BreakerSettings",
    "Limit",
    "counts_tokens",
    "keys_of",
    "limits_from_flags",
    "provider_of",
]


def provider_of(model: str) -> str:
    """The provider part of a litellm model name: ``openai`` for ``openai/gpt-4o``."""
    return model.split("/", 1)[0] if "/" in model else model


def keys_of(model: str, limits: Mapping[str, object]) -> list[str]:
    """The keys a call to ``model`` counts against: the model, and its provider when limited."""
    provider = provider_of(model)
    return [model, provider] if provider != model and provider in limits else [model]


def counts_tokens(model: str, limits: Mapping[str, Limit]) -> bool:
    """Whether a tokens-per-minute limit in ``limits`` applies to calls to ``model``."""
    return any(
        limit.tpm is not None
        for key in keys_of(model, limits)
        if (limit := limits.get(key)) is not None
    )


@dataclass(frozen=True, slots=True)
class Limit:
    """Requests and tokens per minute for one model or provider; ``None`` is unlimited."""

    rpm: float | None = None
    tpm: float | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value!r}")

    def tighter(self, other: Limit) -> Limit:
        """The stricter of two limits, field by field (two policies may name one model)."""

        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        return Limit(low(self.rpm, other.rpm), low(self.tpm, other.tpm))


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Open after ``failures`` consecutive provider failures, then probe with one call.

    The first probe goes ``first_probe_s`` after the breaker opens; each probe that fails
    doubles the wait, up to ``cooldown_s``. A short outage is over after a probe or two, and a
    long one is probed no more than once per ``cooldown_s``. ``first_probe_s=None`` always waits
    ``cooldown_s``.
    """

    failures: int = 5
    cooldown_s: float = 30.0
    first_probe_s: float | None = 1.0

    def __post_init__(self) -> None:
        if self.failures < 1 or not self.cooldown_s > 0:
            raise ConfigError("a breaker needs failures >= 1 and cooldown_s > 0")
        if self.first_probe_s is not None and not self.first_probe_s > 0:
            raise ConfigError("a breaker's first_probe_s must be > 0")

    def first_wait_s(self) -> float:
        """How long a breaker that just opened waits before its first probe."""
        first = self.cooldown_s if self.first_probe_s is None else self.first_probe_s
        return min(first, self.cooldown_s)


def limits_from_flags(rpm: Sequence[str], tpm: Sequence[str]) -> dict[str, Limit]:
    """Rate limits from ``--rpm KEY=N`` and ``--tpm KEY=N``; the stricter wins per key.

    >>> limits_from_flags(["openai=500"], ["openai=90000", "openai=60000"])
    {'openai': Limit(rpm=500.0, tpm=60000.0)}
    """
    limits: dict[str, Limit] = {}
    for flag, values in (("rpm", rpm), ("tpm", tpm)):
        for value in values:
            key, _, number = value.rpartition("=")
            try:
                rate = float(number)
            except ValueError:
                rate = -1.0
            if not key or not rate > 0:
                raise ConfigError(f"--{flag} {value!r}: expected KEY=N with N > 0")
            limit = Limit(rate, None) if flag == "rpm" else Limit(None, rate)
            limits[key] = limits.get(key, Limit()).tighter(limit)
    return limits
