"""Small builders shared by the tests."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cascade import Attempt, Cascade, Plan, RetryPolicy, Settings, Tier, Verdict
from cascade.backends import ScriptedBackend
from cascade.backends.scripted import Script
from cascade.policy import PolicyError, load_policy
from cascade.validators import Validator

NO_WAIT = RetryPolicy(base_s=0.0, jitter=0.0)


def says_ok(attempt: Attempt) -> Verdict:
    """Pass when the output is exactly 'ok'."""
    if attempt.output == "ok":
        return Verdict(True)
    return Verdict(False, reason=f"wanted 'ok', got {attempt.output!r}", feedback="Say ok.")


_PLAN_FIELDS = frozenset(
    {"prompt", "examples", "budget_usd", "route", "escalate_on_provider_error"}
)


def make(
    script: Mapping[str, Script],
    ladder: Sequence[Tier | str],
    validate: Validator | None = says_ok,
    **kwargs: Any,
) -> tuple[Cascade, ScriptedBackend]:
    """A quiet cascade over a scripted backend that does not wait between retries.

    Keyword arguments go to the :class:`Plan` (prompt, examples, budget_usd, route) or to the
    :class:`Settings` (everything else).
    """
    backend = ScriptedBackend(dict(script))
    planned = {k: v for k, v in kwargs.items() if k in _PLAN_FIELDS}
    options: dict[str, Any] = {"log": False, "retry": NO_WAIT}
    options |= {k: v for k, v in kwargs.items() if k not in _PLAN_FIELDS}
    settings = Settings(backend=backend, **options)
    return Cascade(Plan(ladder, validate, **planned), settings=settings), backend


def models_called(backend: ScriptedBackend) -> list[str]:
    """The model of every call the backend received, in order."""
    return [request.model for request in backend.calls]


def assert_policy_refused(folder: Path, body: str, line: int, field: str) -> None:
    """A policy of ``body`` (after its task_type line) is refused naming file, line and field."""
    path = folder / "bad.toml"
    path.write_text('task_type = "x"\n' + body)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert f"bad.toml:{line}" in str(raised.value)
    assert field in str(raised.value)


def processes_of(uids: set[int]) -> int:
    """How many processes run as one of ``uids`` on this host right now."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid in uids
            except OSError:
                continue
    return count
