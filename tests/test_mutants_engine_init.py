"""``Cascade``'s own arguments, where mutation testing found them unpinned.

A ladder given as a list takes ``validate`` and ``prompt`` beside it; a whole :class:`Plan`
refuses them. ``backend``, ``store`` and ``log`` stand in for the same fields of the settings.
"""

from __future__ import annotations

import asyncio

import pytest

from cascade.backends import ScriptedBackend
from cascade.engine import Cascade, Plan, Settings, _sampled
from cascade.errors import CascadeError, ConfigError
from cascade.steplog import capture_steps
from cascade.store import Store
from cascade.types import Attempt, Verdict

_REFUSED = "give validate and prompt in the Plan, not beside it"


def _never(attempt: Attempt) -> Verdict:
    """A validator that rejects every answer."""
    return Verdict(False, reason=f"never {attempt.output}")


@pytest.mark.parametrize(
    "beside", [{"validate": _never}, {"prompt": "Q: {input}"}, {"validate": _never, "prompt": "x"}]
)
def test_a_whole_plan_refuses_validate_or_prompt_beside_it(beside: dict[str, object]) -> None:
    """Either one given beside a Plan is refused, saying where it belongs."""
    with pytest.raises(ConfigError) as refused:
        Cascade(Plan(["a"]), **beside, settings=Settings(log=False))  # type: ignore[arg-type]
    assert str(refused.value) == _REFUSED


def test_a_ladder_given_as_a_list_takes_validate_and_prompt_beside_it() -> None:
    """The validator judges the answers and the prompt builds the question."""
    backend = ScriptedBackend({"a": ["fine"]})
    cascade = Cascade(["a"], _never, prompt="Q: {input}", backend=backend, log=False)
    outcome = cascade.run({"id": "t1", "input": "hi"})
    assert not outcome.accepted
    assert [v.reason for s in outcome.steps for v in s.verdicts] == ["never fine"]
    assert [call.messages[-1]["content"] for call in backend.calls] == ["Q: hi"]


def test_a_ladder_given_as_a_list_sends_the_input_as_it_is_by_default() -> None:
    """With no prompt, the task's input is the question; with no validator, the answer passes."""
    backend = ScriptedBackend({"a": ["fine"]})
    outcome = Cascade(["a"], backend=backend, log=False).run({"id": "t1", "input": "hi"})
    assert outcome.accepted
    assert [call.messages[-1]["content"] for call in backend.calls] == ["hi"]


def test_a_store_given_beside_the_settings_keeps_the_outcome() -> None:
    """``store=`` stands in for the settings' store: the task's steps are written to it."""
    with Store(":memory:") as store:
        backend = ScriptedBackend({"a": ["fine"]})
        cascade = Cascade(["a"], backend=backend, store=store, log=False)
        cascade.run({"id": "t1", "input": "hi"})
        assert [s.output for s in store.steps(cascade.run_id, "t1")] == ["fine"]


@pytest.mark.parametrize(("log", "events"), [(False, 0), (None, 1), (True, 1)])
def test_log_false_beside_the_settings_logs_nothing(log: bool | None, events: int) -> None:
    """``log=False`` silences the step log; by default, or with ``True``, each step is logged."""
    with capture_steps() as steps:
        backend = ScriptedBackend({"a": ["fine"]})
        Cascade(["a"], backend=backend, log=log).run({"id": "t1", "input": "hi"})
    assert len([s for s in steps if s.get("event") == "cascade.step"]) == events


def test_a_run_without_an_id_gets_twelve_hex_digits() -> None:
    """The run id made for a cascade is 12 hex digits: short enough to read, unique enough."""
    run_id = Cascade(["a"], backend=ScriptedBackend({"a": []}), log=False).run_id
    assert len(run_id) == 12
    assert int(run_id, 16) >= 0


_IDS = [f"t{n}" for n in range(2000)]


@pytest.mark.parametrize(
    ("share", "low", "high"), [(0.0, 0, 0), (0.5, 900, 1100), (1.0, 2000, 2000)]
)
def test_the_calibration_sample_is_the_share_asked_of_the_ids(
    share: float, low: int, high: int
) -> None:
    """record_all_tiers at 0, one half and 1 samples none, about half and all of 2000 tasks."""
    assert low <= sum(_sampled(task_id, share) for task_id in _IDS) <= high


def test_the_calibration_sample_is_decided_by_the_id_alone() -> None:
    """The same id is in or out every time (a resume agrees); a larger share keeps it in."""
    half = {task_id for task_id in _IDS if _sampled(task_id, 0.5)}
    assert half == {task_id for task_id in _IDS if _sampled(task_id, 0.5)}
    assert half <= {task_id for task_id in _IDS if _sampled(task_id, 0.75)}


def test_a_prompt_may_name_the_tasks_id() -> None:
    """``{id}`` in the prompt is the task's id, as ``{input}`` is its input."""
    backend = ScriptedBackend({"a": ["fine"]})
    cascade = Cascade(["a"], prompt="{id}: {input}", backend=backend, log=False)
    cascade.run({"id": "t1", "input": "hi"})
    assert [call.messages[-1]["content"] for call in backend.calls] == ["t1: hi"]


def test_a_cascade_shows_its_ladder_and_validator() -> None:
    """The repr names the tiers in order, joined by arrows, and the validator."""
    cascade = Cascade(["a", "b"], backend=ScriptedBackend({}), log=False)
    assert repr(cascade) == "Cascade(a → b, validate=all_of())"


def test_run_inside_an_event_loop_says_what_to_do_instead() -> None:
    """Inside a running loop ``run`` cannot block: it says to await ``arun``."""
    cascade = Cascade(["a"], backend=ScriptedBackend({"a": ["fine"]}), log=False)

    async def inside() -> None:
        cascade.run({"id": "t1", "input": "hi"})

    with pytest.raises(CascadeError) as refused:
        asyncio.run(inside())
    assert str(refused.value) == (
        "Cascade.run() was called inside a running event loop; await arun()"
    )


def test_a_task_the_prompt_cannot_be_filled_for_fails_and_is_stored() -> None:
    """A prompt naming a field the task lacks: the task fails, saying which, under this run."""
    with Store(":memory:") as store:
        backend = ScriptedBackend({"a": ["fine"]})
        cascade = Cascade(
            ["a"], prompt="{input} {missing}", backend=backend, store=store, log=False
        )
        outcome = cascade.run({"id": "t1", "input": "hi"})
        stored = store.outcome(cascade.run_id, "t1")
    expected = ("task 't1': the prompt template needs 'missing' and the task lacks it",)
    assert (outcome.run_id, outcome.task_id, outcome.reasons) == (cascade.run_id, "t1", expected)
    assert stored is not None
    assert (stored.status, stored.reasons) == (outcome.status, expected)
    assert backend.calls == []


def test_a_malformed_task_is_quarantined_under_this_run_and_stored() -> None:
    """A task with no id is quarantined, not raised: under this run, and kept in the store."""
    with Store(":memory:") as store:
        cascade = Cascade(["a"], backend=ScriptedBackend({}), store=store, log=False)
        outcome = cascade.run({"input": "hi"})
        stored = store.outcome(cascade.run_id, outcome.task_id)
    assert outcome.run_id == cascade.run_id
    assert outcome.task_id.startswith("<malformed:")
    assert stored is not None
    assert stored.status == outcome.status


@pytest.mark.parametrize(
    ("route", "asked"), [([5, -1, 1], ["b"]), ([0], ["a"]), ([2, 1, 0], ["b"])]
)
def test_a_route_keeps_only_the_tiers_of_the_ladder(route: list[int], asked: list[str]) -> None:
    """Indices outside the ladder are dropped; the first kept is asked first."""
    backend = ScriptedBackend({"a": ["fine"], "b": ["fine"]})
    plan = Plan(["a", "b"], route=lambda _task, _sent: route)
    Cascade(plan, settings=Settings(backend=backend, log=False)).run({"id": "t1", "input": "q"})
    assert [call.model for call in backend.calls] == asked


def test_a_route_that_keeps_no_tier_fails_the_task_and_says_why() -> None:
    """No tier of the ladder left: the task fails under this run, naming where to look."""
    plan = Plan(["a"], route=lambda _task, _sent: [3])
    cascade = Cascade(plan, settings=Settings(backend=ScriptedBackend({}), log=False))
    outcome = cascade.run({"id": "t1", "input": "q"})
    assert (outcome.run_id, outcome.reasons) == (
        cascade.run_id,
        (
            "no tier of the ladder can take this task (see the policy's start rules and"
            " context windows)",
        ),
    )


def test_two_malformed_tasks_are_quarantined_apart() -> None:
    """Each malformed task is named by what it holds: two different ones get two names."""
    cascade = Cascade(["a"], backend=ScriptedBackend({}), log=False)
    first, second = cascade.run({"input": "hi"}), cascade.run({"input": "bye"})
    assert first.task_id != second.task_id


def test_amap_refuses_a_concurrency_below_one() -> None:
    """No task could ever run: it says so at once."""
    cascade = Cascade(["a"], backend=ScriptedBackend({}), log=False)

    async def first() -> None:
        async for _ in cascade.amap([], concurrency=0):
            pass

    with pytest.raises(ConfigError) as refused:
        asyncio.run(first())
    assert str(refused.value) == "concurrency must be >= 1, got 0"


def test_amap_with_a_concurrency_of_one_runs_every_task() -> None:
    """One at a time is a concurrency like any other: every task's outcome is yielded."""
    cascade = Cascade(["a"], backend=ScriptedBackend({"a": ["fine", "fine"]}), log=False)

    async def run_all() -> list[str]:
        tasks = [{"id": "t1", "input": "q"}, {"id": "t2", "input": "q"}]
        return [outcome.task_id async for outcome in cascade.amap(tasks, concurrency=1)]

    assert asyncio.run(run_all()) == ["t1", "t2"]
