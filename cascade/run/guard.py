"""Rate limits and circuit breakers per provider and model, shared by every worker process.

A :class:`Guard` holds, for each model (``openai/gpt-4o-mini``) and each provider (``openai``)
it was told about, a token bucket for requests per minute, one for tokens per minute, the time
until which a 429 paused the key, and a circuit breaker. The state lives in one shared-memory
array behind one lock, so worker processes started with the guard as an argument share it:
one worker's 429 pauses every worker, and one breaker opens for all. Keys the guard was not
told about get the same machinery, local to the process.

Every method answers with a value: how long to wait, whether a call may go, and which breaker
transition a result caused. The caller sleeps, logs and moves on; nothing here raises.

>>> guard = Guard(limits={"openai/gpt-4o-mini": Limit(rpm=600)}, breaker=BreakerSettings(2))
>>> guard.wait_s("openai/gpt-4o-mini", tokens=0)
0.0
>>> guard.admit("openai/gpt-4o-mini")
True
>>> guard.failed("openai/gpt-4o-mini"), guard.failed("openai/gpt-4o-mini")
(None, Transition(key='openai/gpt-4o-mini', before='closed', after='open', failures=2))
>>> guard.admit("openai/gpt-4o-mini")
False
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableSequence
from typing import TYPE_CHECKING, Any

from cascade.engine.calls import Transition
from cascade.run.limits import BreakerSettings, Limit, counts_tokens, keys_of, provider_of

if TYPE_CHECKING:
    from cascade.policy import PolicySet

__all__ = [
    "BreakerSettings",
    "Guard",
    "Limit",
    "Transition",
    "counts_tokens",
    "guard_for",
    "keys_of",
    "provider_of",
]

# The slots of one key, in the shared array.
_RPM_LEVEL, _RPM_AT, _TPM_LEVEL, _TPM_AT, _PAUSED_UNTIL, _FACTOR, _STREAK_429 = range(7)
_STATE, _FAILURES, _OPENED_AT, _PROBE_AT, _TRIPS, _COOLDOWN, _FAILING_SINCE = range(7, 14)
_SLOTS = 14

_CLOSED, _OPEN, _HALF_OPEN = 0.0, 1.0, 2.0
_STATE_NAMES = {_CLOSED: "closed", _OPEN: "open", _HALF_OPEN: "half_open"}

_MIN_FACTOR = 0.05
"""The adaptive share of a configured rate never falls below this after repeated 429s."""
_RECOVERY = 0.02
"""How much of the configured rate each success wins back after a 429."""
_MAX_PAUSE_S = 60.0


class Guard:
    """The shared rate limits and breakers of a run (see the module docstring).

    ``keys`` are the models (and providers) to share across processes: pass every model of
    every tier, fallbacks included. ``clock`` is for tests.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit] | None = None,
        breaker: BreakerSettings | None = None,
        *,
        keys: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits or {})
        self.breaker = breaker or BreakerSettings()
        names = sorted({*keys, *self.limits, *(provider_of(k) for k in keys)})
        self._index = {name: i for i, name in enumerate(names)}
        import multiprocessing  # noqa: PLC0415  # ~3 ms, for a guard only: not with cascade

        context = multiprocessing.get_context("spawn")
        self._lock: Any = context.Lock()
        self._shared: MutableSequence[float] = context.RawArray("d", max(1, len(names)) * _SLOTS)
        for i in range(len(names)):
            self._reset(self._shared, i * _SLOTS)
        self._clock = clock
        self._local: dict[str, list[float]] = {}
        self._local_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Guard(keys={len(self._index)}, limits={self.limits!r}, breaker={self.breaker!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Only the shared state travels to a worker process; the local overflow stays behind.
        state = {k: v for k, v in self.__dict__.items() if k not in {"_local", "_local_lock"}}
        state["_clock"] = time.monotonic
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = {}
        self._local_lock = threading.Lock()

    @property
    def keys(self) -> list[str]:
        """The models and providers whose state is shared across processes."""
        return list(self._index)

    def troubled(self) -> tuple[list[str], dict[str, float]]:
        """The keys whose breaker is not closed, and the seconds each paused key stays paused.

        A snapshot, for a guard that serves other machines (see :mod:`cascade.run.ray_guard`).
        """
        now = self._clock()
        not_closed: list[str] = []
        paused: dict[str, float] = {}
        with self._local_lock:
            local = list(self._local)
        for key in [*self._index, *local]:
            slots, base, lock = self._slots(key)
            with lock:
                if slots[base + _STATE] != _CLOSED:
                    not_closed.append(key)
                if (left := slots[base + _PAUSED_UNTIL] - now) > 0:
                    paused[key] = left
        return not_closed, paused

    def failing(self, longer_than_s: float = 0.0) -> dict[str, float]:
        """The keys whose calls have failed, with no answer since, for over ``longer_than_s``.

        Each with how long it has been failing, in seconds: a provider outage in progress, for
        the coordinator's progress line while tasks wait it out.
        """
        now = self._clock()
        found: dict[str, float] = {}
        with self._local_lock:
            local = list(self._local)
        for key in [*self._index, *local]:
            slots, base, lock = self._slots(key)
            with lock:
                since = slots[base + _FAILING_SINCE]
            if since and now - since > longer_than_s:
                found[key] = now - since
        return found

    @staticmethod
    def _reset(slots: MutableSequence[float], base: int) -> None:
        slots[base + _FACTOR] = 1.0  # the levels start empty, with 0 as "never filled"

    def _slots(self, key: str) -> tuple[MutableSequence[float], int, Any]:
        index = self._index.get(key)
        if index is not None:
            return self._shared, index * _SLOTS, self._lock
        with self._local_lock:
            local = self._local.get(key)
            if local is None:
                local = self._local[key] = [0.0] * _SLOTS
                self._reset(local, 0)
        return local, 0, self._local_lock

    def needs_tokens(self, model: str) -> bool:
        """Whether a tokens-per-minute limit applies, so the caller must count the prompt."""
        return counts_tokens(model, self.limits)

    # Rate limits ------------------------------------------------------------------------

    def wait_s(self, model: str, tokens: int) -> float:
        """Take one request (and ``tokens``) for ``model``, or say how long to wait first.

        A zero means the call may go now and its share was taken; otherwise nothing was
        taken, and the caller sleeps that long and asks again.
        """
        keys = keys_of(model, self.limits)
        now = self._clock()
        if len(keys) == 1:  # the usual case: check and take in one pass under the lock
            return self._key_wait(model, tokens, now, take=True)
        waits = [self._key_wait(key, tokens, now, take=False) for key in keys]
        if max(waits) > 0:
            return max(waits)
        for key in keys:
            self._key_wait(key, tokens, now, take=True)
        return 0.0

    def _key_wait(self, key: str, tokens: int, now: float, *, take: bool) -> float:
        limit = self.limits.get(key, Limit())
        slots, base, lock = self._slots(key)
        with lock:
            paused = slots[base + _PAUSED_UNTIL] - now
            if paused > 0:
                return paused
            factor = slots[base + _FACTOR]
            wait = 0.0
            for rate, level, at, amount in (
                (limit.rpm, _RPM_LEVEL, _RPM_AT, 1.0),
                (limit.tpm, _TPM_LEVEL, _TPM_AT, float(tokens)),
            ):
                if rate is None:
                    continue
                per_s = rate * factor / 60.0
                capacity = max(1.0, per_s)  # at most one second's worth at once
                current = slots[base + level]
                if slots[base + at] == 0.0:
                    current = capacity  # a bucket starts full
                else:
                    current = min(capacity, current + (now - slots[base + at]) * per_s)
                slots[base + level], slots[base + at] = current, now
                if current < 1.0:
                    wait = max(wait, (1.0 - current) / per_s)
                elif take:
                    # A request bigger than a second's worth may go into debt, never wait forever.
                    slots[base + level] = current - amount
            return wait

    def settle(self, model: str, reserved: int, used: int) -> None:
        """Correct the token buckets once a call's real usage is known."""
        for key in keys_of(model, self.limits):
            if (limit := self.limits.get(key)) is not None and limit.tpm is not None:
                slots, base, lock = self._slots(key)
                with lock:
                    slots[base + _TPM_LEVEL] += reserved - used

    def rate_limited(self, model: str, retry_after_s: float | None) -> float:
        """A 429: pause the model for every worker and slow its rate; returns the pause."""
        slots, base, lock = self._slots(model)
        now = self._clock()
        with lock:
            streak = slots[base + _STREAK_429]
            pause = retry_after_s if retry_after_s is not None else min(30.0, 0.5 * 2.0**streak)
            pause = min(pause, _MAX_PAUSE_S)
            slots[base + _PAUSED_UNTIL] = max(slots[base + _PAUSED_UNTIL], now + pause)
            slots[base + _STREAK_429] = streak + 1
            slots[base + _FACTOR] = max(_MIN_FACTOR, slots[base + _FACTOR] * 0.5)
        return pause

    def paused_s(self, model: str) -> float:
        """How long ``model`` stays paused by a 429 (zero when it is not)."""
        slots, base, lock = self._slots(model)
        with lock:
            return max(0.0, slots[base + _PAUSED_UNTIL] - self._clock())

    def retry_in_s(self, model: str) -> float:
        """Seconds until a call to ``model`` could go: its 429 pause, or its breaker's cooldown.

        A half-open breaker counts until its probe's turn is over: the probe answers first.
        """
        slots, base, lock = self._slots(model)
        now = self._clock()
        with lock:
            paused = slots[base + _PAUSED_UNTIL] - now
            state = slots[base + _STATE]
            since = slots[base + _OPENED_AT] if state == _OPEN else slots[base + _PROBE_AT]
            cooling = since + slots[base + _COOLDOWN] - now if state != _CLOSED else 0.0
        return max(0.0, paused, cooling)

    # Breakers ---------------------------------------------------------------------------

    def admit(self, model: str) -> bool:
        """Whether a call to ``model`` may go: its breaker is closed, or this call is the probe."""
        return self.admit_transition(model)[0]

    def admit_transition(self, model: str) -> tuple[bool, Transition | None]:
        """:meth:`admit`, with the transition to half-open when this call becomes the probe."""
        slots, base, lock = self._slots(model)
        now = self._clock()
        with lock:
            state = slots[base + _STATE]
            if state == _CLOSED:
                return True, None
            cooldown = slots[base + _COOLDOWN]
            if state == _OPEN:
                if now < slots[base + _OPENED_AT] + cooldown:
                    return False, None
                slots[base + _STATE], slots[base + _PROBE_AT] = _HALF_OPEN, now
                failures = int(slots[base + _FAILURES])
                return True, Transition(model, "open", "half_open", failures)
            # Half-open: one probe at a time; a probe that never reported frees its place.
            if now < slots[base + _PROBE_AT] + cooldown:
                return False, None
            slots[base + _PROBE_AT] = now
            return True, None

    def succeeded(self, model: str) -> Transition | None:
        """A call to ``model`` answered: reset its failures, close its breaker, regain rate.

        An open breaker stays open: the call was let through before it opened, and says
        nothing about the provider now. Only the probe, once the cooldown is over, closes it.
        """
        slots, base, lock = self._slots(model)
        with lock:
            slots[base + _STREAK_429] = slots[base + _FAILING_SINCE] = 0.0
            slots[base + _FACTOR] = min(1.0, slots[base + _FACTOR] + _RECOVERY)
            before = slots[base + _STATE]
            if before == _OPEN:
                return None
            failures = int(slots[base + _FAILURES])
            slots[base + _FAILURES] = 0.0
            if before == _CLOSED:
                return None
            slots[base + _STATE] = _CLOSED
        return Transition(model, _STATE_NAMES[before], "closed", failures)

    def failed(self, model: str) -> Transition | None:
        """A call to ``model`` failed at the provider: count it, and open the breaker at N."""
        slots, base, lock = self._slots(model)
        now = self._clock()
        with lock:
            failures = slots[base + _FAILURES] + 1
            slots[base + _FAILURES] = failures
            slots[base + _FAILING_SINCE] = slots[base + _FAILING_SINCE] or now
            before = slots[base + _STATE]
            if before == _OPEN:
                return None
            if before == _CLOSED and failures < self.breaker.failures:
                return None
            slots[base + _STATE], slots[base + _OPENED_AT] = _OPEN, now
            slots[base + _TRIPS] += before == _CLOSED
            if before == _CLOSED:
                slots[base + _COOLDOWN] = self.breaker.first_wait_s()
            else:  # a failed probe: wait twice as long before the next, up to the cooldown
                slots[base + _COOLDOWN] = min(self.breaker.cooldown_s, 2 * slots[base + _COOLDOWN])
        return Transition(model, _STATE_NAMES[before], "open", int(failures))

    def trips(self) -> int:
        """How many times a breaker opened from closed, over every model, in every process."""
        with self._lock:
            return int(sum(self._shared[i * _SLOTS + _TRIPS] for i in range(len(self._index))))

    def state(self, model: str) -> str:
        """The breaker's state for ``model``: ``closed``, ``open`` or ``half_open``."""
        slots, base, lock = self._slots(model)
        with lock:
            return _STATE_NAMES[slots[base + _STATE]]


def guard_for(policies: PolicySet, limits: Mapping[str, Limit] | None = None) -> Guard:
    """One :class:`Guard` for every model of every policy (audits' too), to share across a run.

    ``limits`` (from the command line, say) join the policies' own; for a key named twice
    the stricter limit holds. The breaker settings are the strictest any policy asks for.
    """
    merged: dict[str, Limit] = {}
    models: set[str] = set()
    breakers: list[BreakerSettings] = []
    for policy in policies:
        models.update(model for tier in policy.ladder for model in tier.models)
        if policy.audit is not None:  # shared too: one breaker, and its trips counted
            models.add(policy.audit.model)
        for key, spec in policy.spec.limits.items():
            merged[key] = merged.get(key, Limit()).tighter(Limit(spec.rpm, spec.tpm))
        if (breaker := policy.spec.breaker) is not None:
            breakers.append(
                BreakerSettings(breaker.failures, breaker.cooldown_s, breaker.first_probe_s)
            )
    for key, limit in (limits or {}).items():
        merged[key] = merged.get(key, Limit()).tighter(limit)
    settings = BreakerSettings()
    if breakers:
        firsts = [b.first_wait_s() for b in breakers]
        settings = BreakerSettings(
            min(b.failures for b in breakers), min(b.cooldown_s for b in breakers), min(firsts)
        )
    return Guard(merged, settings, keys=models)
