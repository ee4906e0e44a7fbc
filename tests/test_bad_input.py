"""Bad input ends as a clear status and reason on its own task, leaving the others alone."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from cascade import Attempt, Cascade, Settings, Status, Store, Tier, Verdict
from cascade.backends import Request, ScriptedBackend
from cascade.backends.scripted import Item, Raw
from tests.helpers import NO_WAIT


def answer(request: Request) -> Item:
    """Answer 'ok', or garbage for the task that asks for it."""
    if request.task_id == "garbage":
        return Raw({"not": "a response"})
    return "ok"


def picky(attempt: Attempt) -> Verdict:
    """Crash on the task that asks for it; accept the rest."""
    if attempt.task.id == "raises":
        raise ZeroDivisionError("validator bug")
    return Verdict(True)


TASKS: list[Any] = [
    {"id": "good-1", "input": "x"},
    {"id": "no-input"},
    ["not", "an", "object"],
    {"id": "bad-messages", "messages": [{"role": "user"}]},
    {"id": "unknown-model", "input": "x", "model_hint": "none"},
    {"id": "garbage", "input": "x"},
    {"id": "raises", "input": "x"},
    {"id": "good-2", "input": "x"},
]


def run_all(tmp_path: Any) -> dict[str, Any]:
    """Run the mixed batch through one cascade and one store; outcomes by task id."""
    backend = ScriptedBackend({"m": answer})
    with Store(tmp_path / "run.db") as store:
        settings = Settings(backend=backend, store=store, log=False, retry=NO_WAIT)
        cascade = Cascade([Tier("m", retries=1)], picky, settings=settings)
        unknown = Cascade(
            [Tier("no-such-model")], picky,
            settings=dataclasses.replace(settings, run_id=cascade.run_id),
        )  # fmt: skip

        async def main() -> list[Any]:
            outcomes = [o async for o in cascade.amap(t for t in TASKS if t is not TASKS[4])]
            return [*outcomes, await unknown.arun(TASKS[4])]

        outcomes = asyncio.run(main())
        assert store.count("results") == len(TASKS)
    return {o.task_id: o for o in outcomes}


@pytest.fixture
def outcomes(tmp_path: Any) -> dict[str, Any]:
    """The outcomes of the mixed batch."""
    return run_all(tmp_path)


def test_good_tasks_are_unaffected(outcomes: dict[str, Any]) -> None:
    """The well-formed tasks beside the bad ones are accepted."""
    assert outcomes["good-1"].status is Status.ACCEPTED
    assert outcomes["good-2"].status is Status.ACCEPTED
    assert len(outcomes) == len(TASKS)


@pytest.mark.parametrize(
    ("task_id", "status", "reason"),
    [
        ("no-input", Status.QUARANTINED, "needs exactly one of 'input' or 'messages'"),
        ("bad-messages", Status.QUARANTINED, "messages[0] must be an object"),
        ("unknown-model", Status.FAILED, "no model 'no-such-model'"),
        ("garbage", Status.FAILED, "backend returned dict, not a Response"),
        ("raises", Status.FAILED, "raised ZeroDivisionError: validator bug"),
    ],
)
def test_each_bad_task_gets_a_clear_status_and_reason(
    outcomes: dict[str, Any], task_id: str, status: Status, reason: str
) -> None:
    """Each kind of bad input is named in its own task's reasons."""
    outcome = outcomes[task_id]
    assert outcome.status is status
    assert any(reason in r for r in outcome.reasons), outcome.reasons


def test_a_non_object_task_is_quarantined_under_a_stable_id(outcomes: dict[str, Any]) -> None:
    """A task that is not even an object is kept, named by a digest of what it was."""
    malformed = [o for key, o in outcomes.items() if key.startswith("<malformed:")]
    assert len(malformed) == 1
    assert malformed[0].status is Status.QUARANTINED
    assert "must be a JSON object" in malformed[0].reasons[0]


def test_a_validator_crash_does_not_escalate() -> None:
    """A crashed validator stops its task at once rather than paying for bigger models."""
    backend = ScriptedBackend({"a": ["x"], "b": ["x"]})
    cascade = Cascade(["a", "b"], picky, backend=backend, log=False)
    outcome = cascade.run({"id": "raises", "input": "x"})
    assert outcome.status is Status.FAILED
    assert [r.model for r in backend.calls] == ["a"]
    assert outcome.steps[-1].verdicts[0].fault


def test_a_prompt_needing_a_missing_field_fails_that_task() -> None:
    """A prompt template naming a field the task lacks fails the task, with the field named."""
    cascade = Cascade(
        ["a"], backend=ScriptedBackend({"a": ["x"]}), prompt="{lang}: {input}", log=False
    )
    outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status is Status.FAILED
    assert "'lang'" in outcome.reasons[0]
