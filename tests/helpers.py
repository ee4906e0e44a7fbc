"""Small builders shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cascade import Attempt, Cascade, RetryPolicy, Tier, Verdict
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Script
from cascade.validators import Validator

NO_WAIT = RetryPolicy(base_s=0.0, jitter=0.0)


def says_ok(attempt: Attempt) -> Verdict:
    """Pass when the output is exactly 'ok'."""
    if attempt.output == "ok":
        return Verdict(True)
    return Verdict(False, reason=f"wanted 'ok', got {attempt.output!r}", feedback="Say ok.")


def make(
    script: Mapping[str, Script],
    ladder: Sequence[Tier | str],
    validate: Validator | None = says_ok,
    **kwargs: object,
) -> tuple[Cascade, ScriptedBackend]:
    """A quiet cascade over a scripted backend that does not wait between retries."""
    backend = ScriptedBackend(dict(script))
    options: dict[str, object] = {"log": False, "retry": NO_WAIT, **kwargs}
    return Cascade(ladder, validate, backend=backend, **options), backend  # type: ignore[arg-type]


def models_called(backend: ScriptedBackend) -> list[str]:
    """The model of every call the backend received, in order."""
    return [request.model for request in backend.calls]
