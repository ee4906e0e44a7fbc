"""Rate limits and circuit breakers for a whole Ray cluster: one small actor, one client each.

``--executor processes`` shares its :class:`Guard` through shared memory, which reaches the
processes of one machine only. On Ray the same :class:`Guard` lives in one actor
(:class:`GuardKeeper`), and every task actor talks to it through a :class:`RayGuard`, which
answers the engine's :class:`~cascade.engine.calls.GuardHooks` like the guard itself.

Round trips to the actor cost about a millisecond, so the client asks only when it must:

- Everything that decides or changes shared state goes to the actor: taking from a rate limit's
  buckets, the probe of a breaker that is not closed, a failure, a 429.
- Whether a breaker is closed and whether a model is paused are read from a snapshot that is at
  most ``fresh_s`` old (50 ms). Within that time, another machine's 429 or open breaker may let
  a few more calls through; this client's own are seen at once.
- Successes while the breaker is closed are counted here and go with the next refresh of the
  snapshot, so a success reaches the actor within ``fresh_s`` too, and costs no call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from cascade.run.guard import Guard, Limit, Transition
from cascade.run.limits import counts_tokens, keys_of

__all__ = ["GuardKeeper", "RayGuard"]


class GuardKeeper(Guard):
    """The body of the guard actor: a :class:`Guard`, each method a call to the actor."""

    def report(self, successes: Mapping[str, int]) -> tuple[list[str], dict[str, float]]:
        """Count a client's successes since it last asked; then :meth:`Guard.troubled`."""
        for model, count in successes.items():
            for _ in range(count):
                self.succeeded(model)
        return self.troubled()


class RayGuard:
    """The engine's guard hooks, kept by a :class:`GuardKeeper` actor (see the module docstring).

    ``keeper`` is the actor's handle; ``get`` is ``ray.get`` (passed in, so that this module
    never imports Ray). It pickles, so one is sent to each task actor.
    """

    def __init__(
        self,
        keeper: Any,
        limits: Mapping[str, Limit],
        get: Callable[[Any], Any],
        *,
        fresh_s: float = 0.05,
    ) -> None:
        self.limits = dict(limits)
        self._keeper = keeper
        self._get = get
        self._fresh_s = fresh_s
        self._seen_at = -float("inf")
        self._not_closed: set[str] = set()
        self._paused_until: dict[str, float] = {}
        self._successes: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_not_closed"} | {
            "_seen_at": -float("inf"),
            "_paused_until": {},
            "_successes": {},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._not_closed = set()

    def _ask(self, method: str, *args: Any) -> Any:
        return self._get(getattr(self._keeper, method).remote(*args))

    def _look(self) -> float:
        """Refresh the snapshot when it is stale; the time now (``time.monotonic()``)."""
        now = time.monotonic()
        if now - self._seen_at >= self._fresh_s:
            successes, self._successes = self._successes, {}
            not_closed, paused = self._ask("report", successes)
            now = time.monotonic()
            self._not_closed = set(not_closed)
            self._paused_until = {key: now + left for key, left in paused.items()}
            self._seen_at = now
        return now

    def _limited(self, model: str) -> bool:
        return any(key in self.limits for key in keys_of(model, self.limits))

    def admit_transition(self, model: str) -> tuple[bool, Transition | None]:
        """Closed in the snapshot: let the call go; otherwise the keeper decides (the probe)."""
        self._look()
        if model not in self._not_closed:
            return True, None
        admitted, transition = self._ask("admit_transition", model)
        return admitted, transition

    def paused_s(self, model: str) -> float:
        """How long ``model`` stays paused by a 429, as the snapshot says."""
        now = self._look()
        return max(0.0, self._paused_until.get(model, 0.0) - now)

    def needs_tokens(self, model: str) -> bool:
        """Whether a tokens-per-minute limit applies (the limits never change during a run)."""
        return counts_tokens(model, self.limits)

    def wait_s(self, model: str, tokens: int) -> float:
        """A limited model takes from the keeper's buckets; any other only waits out a pause."""
        if self._limited(model):
            return float(self._ask("wait_s", model, tokens))
        return self.paused_s(model)

    def settle(self, model: str, reserved: int, used: int) -> None:
        """Correct a token reservation (sent, not waited for)."""
        if self.needs_tokens(model):
            self._keeper.settle.remote(model, reserved, used)

    def succeeded(self, model: str) -> Transition | None:
        """Feed the breaker: with the next refresh while it is closed, else at once."""
        self._look()
        if model not in self._not_closed:
            self._successes[model] = self._successes.get(model, 0) + 1
            return None
        transition: Transition | None = self._ask("succeeded", model)
        if transition is not None and transition.after == "closed":
            self._not_closed.discard(model)
        return transition

    def failed(self, model: str) -> Transition | None:
        """Count a failure at the keeper; an opened breaker holds here at once."""
        transition: Transition | None = self._ask("failed", model)
        if transition is not None:
            self._not_closed.add(model)
        return transition

    def rate_limited(self, model: str, retry_after_s: float | None) -> float:
        """A 429: pause the model for the whole cluster; this client sees the pause at once."""
        pause = float(self._ask("rate_limited", model, retry_after_s))
        self._paused_until[model] = time.monotonic() + pause
        return pause

    def retry_in_s(self, model: str) -> float:
        """Seconds until a call to ``model`` could go, as the keeper says."""
        return float(self._ask("retry_in_s", model))
