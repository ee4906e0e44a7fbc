"""Errors raised by cascade.

Decisions about an answer are values (:class:`cascade.Verdict`), never exceptions. Exceptions
are for real faults: a misconfigured ladder, a malformed task, a provider that cannot serve.

The tree::

    CascadeError
    ├── ConfigError                  a ladder, tier, validator or policy is misconfigured
    ├── TaskError                    a task is malformed (missing id, no input, wrong types)
    └── ProviderError                a backend call failed; never a rejection of the answer
        ├── TransientProviderError   worth retrying on the same model
        │   ├── ProviderTimeout      our own deadline, or the provider's, expired
        │   ├── RateLimited          429; carries ``retry_after_s`` when the provider said
        │   ├── ServerError          5xx, connection refused or reset
        │   │   └── ConnectionFailed the provider could not be reached: refused, reset, cut
        │   └── MalformedResponse    the provider answered, but not with a usable completion
        └── PermanentProviderError   retrying the same model will not help; go to a fallback
            ├── CircuitOpen          the model's breaker is open: it failed N times in a row
            ├── AuthenticationFailed 401 or 403: the key is wrong, or not allowed this model
            ├── BadRequest           400 and the like: the request itself is refused
            ├── BackendFault         the backend returned something that is not a Response
            ├── BackendCrashed       a local model's process keeps dying (SIGILL, SIGSEGV, OOM)
            ├── UnknownModel         no provider serves this model name
            ├── UnpricedModel        no price is known and the tier sets none
            └── ReplayMissing        a recorded dataset has no response for this task and model

The engine retries :class:`TransientProviderError` with backoff (honouring ``Retry-After``),
then moves to the tier's fallback models. When none of them answers, an error that time cures
(:attr:`ProviderError.passes`: the transient ones and an open breaker) makes the task wait for
the provider to come back, up to the run's outage bound; any other fails the task at once.
Neither is a rejection, so neither escalates, unless the policy asks for that.
"""

from __future__ import annotations

import email.utils
import time

__all__ = [
    "AuthenticationFailed",
    "BackendCrashed",
    "BackendFault",
    "BadRequest",
    "BatchUnanswered",
    "CascadeError",
    "CircuitOpen",
    "ConfigError",
    "ConnectionFailed",
    "MalformedResponse",
    "ModelRequestsForbidden",
    "PermanentProviderError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "ReplayMissing",
    "ServerError",
    "TaskError",
    "TransientProviderError",
    "UnknownModel",
    "UnpricedModel",
    "parse_retry_after",
]


class CascadeError(Exception):
    """Base of every error cascade raises on purpose."""


class ConfigError(CascadeError, ValueError):
    """A ladder, tier, validator or policy is misconfigured."""


class TaskError(CascadeError, ValueError):
    """A task is malformed: it names what is wrong and where."""


class ProviderError(CascadeError):
    """A backend call failed. The answer was never judged, so this is not a rejection."""

    transient: bool = False
    """Worth retrying on the same model at once (after a short wait)."""
    passes: bool = False
    """Cured by time: the provider will come back, so the task may wait for it."""


class TransientProviderError(ProviderError):
    """A failure worth retrying on the same model after a wait."""

    transient = True
    passes = True


class ProviderTimeout(TransientProviderError):
    """The call did not finish before its deadline."""


class RateLimited(TransientProviderError):
    """The provider answered 429. ``retry_after_s`` is its ``Retry-After``, when it sent one."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServerError(TransientProviderError):
    """A 5xx answer, or the connection was refused or cut."""


class ConnectionFailed(ServerError):
    """No answer came: the connection was refused, reset or cut before a reply (not a 5xx)."""


class MalformedResponse(TransientProviderError):
    """The provider answered with something that is not a usable completion."""


class BatchUnanswered(TransientProviderError):
    """A batch call its batch did not answer; the engine makes it as an ordinary call.

    The batch expired, was cancelled, passed the tier's ``batch_deadline_s``, or could not be
    submitted.
    """


class PermanentProviderError(ProviderError):
    """Retrying the same model will not help; the engine goes to the next fallback."""


class CircuitOpen(PermanentProviderError):
    """The model's circuit breaker is open, so no call was made; its fallbacks are tried.

    Time cures it: the breaker lets a probe through after its cooldown.
    """

    passes = True


class AuthenticationFailed(PermanentProviderError):
    """The provider refused the credentials (401), or this use of them (403)."""


class BadRequest(PermanentProviderError):
    """The provider refused the request itself (400, 404 on the route, 422 and the like)."""


class BackendFault(PermanentProviderError):
    """The backend returned something that is not a usable :class:`~cascade.Response`.

    A bug in the backend, which neither waiting nor a retry cures.
    """


class ModelRequestsForbidden(PermanentProviderError):
    """Calls to models off this machine are switched off (``CASCADE_ALLOW_MODEL_REQUESTS=0``).

    A test suite's guard against paying for live calls (see
    :func:`cascade.testing.no_model_requests`).
    """


class BackendCrashed(PermanentProviderError):
    """A local model's process died too many times in a row; the model is given up.

    Each death before that is a :class:`ServerError` naming the signal, retried like any other.
    """


class UnknownModel(PermanentProviderError):
    """No provider serves this model name."""


class UnpricedModel(PermanentProviderError):
    """No price is known for the model, and the tier sets none, so its cost cannot be counted."""


class ReplayMissing(PermanentProviderError):
    """The recorded dataset holds no response for this task and model."""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header, in seconds or as an HTTP date, as seconds from ``now``.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
