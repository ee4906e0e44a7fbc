"""How provider errors are retried: how long to wait, and when to give up on a model.

Kept apart from the engine, in the manner of tenacity: a small frozen policy that answers one
question, given the state of the retries so far.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cascade.errors import ConfigError

__all__ = ["RetryPolicy"]

_MAX_DOUBLINGS = 62
"""Past this many doublings every backoff is at its cap (and 2.0 ** n would overflow by 1024)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter that honours ``Retry-After``.

    The ``n``-th retry (from 0) waits ``base_s * 2**n`` seconds, capped at ``max_wait_s``, with up
    to ``jitter`` of it added at random. A provider's ``Retry-After`` wins when it is longer;
    when it is longer than ``max_wait_s`` the engine does not wait at all and moves to the next
    fallback, since that model is not coming back soon.

    >>> RetryPolicy(base_s=1.0, jitter=0.0).wait_s(2, retry_after_s=None)
    4.0
    >>> RetryPolicy().wait_s(0, retry_after_s=120.0) is None
    True
    """

    base_s: float = 0.5
    max_wait_s: float = 30.0
    jitter: float = 0.25
    sleep: Callable[[float], Awaitable[object]] = field(default=asyncio.sleep, compare=False)
    """How to wait; tests pass a recorder here to observe waits without waiting."""

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_wait_s < 0 or not 0 <= self.jitter <= 1:
            raise ConfigError("RetryPolicy needs base_s >= 0, max_wait_s >= 0, 0 <= jitter <= 1")

    def wait_s(self, retry_number: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before retry ``retry_number``, or ``None`` to move on instead."""
        if retry_after_s is not None and retry_after_s > self.max_wait_s:
            return None
        backoff = self.backoff_s(retry_number)
        backoff += backoff * self.jitter * random.random()  # noqa: S311  # jitter, not crypto
        return max(backoff, retry_after_s or 0.0)

    def backoff_s(self, number: int, *, floor_s: float = 0.0, cap_s: float | None = None) -> float:
        """The backoff before wait ``number`` (from 0), without jitter.

        ``base_s`` (or ``floor_s`` if that is longer) doubled per wait, capped at ``max_wait_s``
        (and at ``cap_s`` if given). The one backoff: retries and outage waits both use it.

        >>> RetryPolicy(base_s=0.01).backoff_s(3, floor_s=0.05, cap_s=1.0)
        0.4
        """
        ceiling = self.max_wait_s if cap_s is None else min(self.max_wait_s, cap_s)
        return min(ceiling, max(self.base_s, floor_s) * 2.0 ** min(number, _MAX_DOUBLINGS))
