"""``Cascade``'s own arguments, where mutation testing found them unpinned.

A ladder given as a list takes ``validate`` and ``prompt`` beside it; a whole :class:`Plan`
refuses them. ``backend``, ``store`` and ``log`` stand in for the same fields of the settings.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cascade.backends import ScriptedBackend
from cascade.backends.http import HttpBackend
from cascade.backends.routed import PrefixBackend
from cascade.engine import Cascade, Plan, Settings, _sampled
from cascade.enums import Status
from cascade.errors import CascadeError, ConfigError, ServerError
from cascade.retry import RetryPolicy
from cascade.steplog import capture_steps
from cascade.store import Store
from cascade.store.batches import BatchBook
from cascade.store.queries import task_payload
from cascade.types import Attempt, Batching, Request, Response, Tier, Usage, Verdict
from tests.test_batcher import MemoryBatches

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


def test_a_tasks_own_input_is_stored_beside_its_outcome() -> None:
    """The stored task is the one run, as review and export read it back: id, input and extras."""
    with Store(":memory:") as store:
        backend = ScriptedBackend({"a": ["fine"]})
        cascade = Cascade(["a"], backend=backend, store=store, log=False)
        cascade.run({"id": "t1", "input": "hi", "lang": "fr"})
        payload = task_payload(store, cascade.run_id, "t1")
    assert payload is not None
    stored = json.loads(payload)
    assert (stored["id"], stored["input"], stored["lang"]) == ("t1", "hi", "fr")


def test_a_provider_down_is_waited_for_the_cascades_own_outage_bound() -> None:
    """The settings' ``max_outage_s`` bounds the wait, not the default of 600 s."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    backend = ScriptedBackend({"a": [ServerError("503 down")]})
    retry = RetryPolicy(base_s=0.5, jitter=0.0, sleep=sleep)
    settings = Settings(backend=backend, log=False, retry=retry, max_outage_s=3.0)
    cascade = Cascade(Plan([Tier("a", retries=0)]), settings=settings)
    outcome = cascade.run({"id": "t1", "input": "q"})
    assert outcome.status is Status.FAILED
    assert outcome.reasons[0].startswith("tier 0 (a) provider unavailable since ")
    assert sum(waits) == pytest.approx(3.0, abs=0.01)


class _InFlight:
    """A backend that counts its calls in flight; each answers after its task's pause."""

    def __init__(self, pauses: dict[str, float] | None = None) -> None:
        self.pauses = pauses or {}
        self.running: set[str] = set()
        self.most = 0

    async def complete(self, request: Request) -> Response:
        self.running.add(request.task_id)
        self.most = max(self.most, len(self.running))
        try:
            await asyncio.sleep(self.pauses.get(request.task_id, 0.1))
        finally:
            self.running.discard(request.task_id)
        return Response("fine", request.model, Usage(1, 1), 0.0)


def _amap(backend: _InFlight, ids: list[str], **options: int) -> list[tuple[str, set[str]]]:
    """Each outcome's task id as ``amap`` yields it, with the tasks still in flight then."""
    cascade = Cascade(["a"], backend=backend, log=False)

    async def run_all() -> list[tuple[str, set[str]]]:
        tasks = [{"id": task_id, "input": "q"} for task_id in ids]
        return [(o.task_id, set(backend.running)) async for o in cascade.amap(tasks, **options)]

    return asyncio.run(run_all())


@pytest.mark.parametrize(("options", "most"), [({}, 16), ({"concurrency": 3}, 3)])
def test_amap_runs_as_many_tasks_at_once_as_asked(options: dict[str, int], most: int) -> None:
    """Sixteen at once by default, or the concurrency given: never more, and no fewer."""
    backend = _InFlight()
    yielded = _amap(backend, [f"t{n}" for n in range(40)], **options)
    assert sorted(task_id for task_id, _ in yielded) == sorted(f"t{n}" for n in range(40))
    assert backend.most == most


def test_amap_yields_each_outcome_as_it_finishes_and_starts_the_next() -> None:
    """A slow task does not hold back the fast ones: they are yielded, and the next one started."""
    backend = _InFlight({"slow": 0.5, "fast": 0.01, "next": 0.01})
    yielded = _amap(backend, ["slow", "fast", "next"], concurrency=2)
    assert yielded == [("fast", {"slow"}), ("next", {"slow"}), ("slow", set())]
    assert backend.most == 2


class _WithBatches(ScriptedBackend):
    """A scripted backend with a batch API in memory, as litellm's is for OpenAI's models."""

    def __init__(self, api: MemoryBatches) -> None:
        super().__init__({"openai/cheap": ["asked directly"]})
        self.api = api

    def batch_api(self, model: str) -> MemoryBatches:
        """The one batch API, for every model."""
        return self.api


_BATCH_TIER = Tier("openai/cheap", batch=Batching(size=1, wait_s=0.01), retries=0)


def test_a_batch_tier_with_no_batcher_given_goes_through_the_backends_batch_api() -> None:
    """The cascade makes the batcher: the ledger is in its store under its run, events logged."""
    backend = _WithBatches(MemoryBatches())
    with Store(":memory:") as store, capture_steps() as events:
        cascade = Cascade([_BATCH_TIER], backend=backend, store=store)
        outcome = cascade.run({"id": "t1", "input": "q"})
        batches = BatchBook(store, cascade.run_id).all()
    assert outcome.accepted
    assert [(s.batch, s.output) for s in outcome.steps] == [(True, "ok")]
    assert backend.calls == []
    assert [(b.model, b.items, b.state) for b in batches] == [("openai/cheap", 1, "completed")]
    logged = [e for e in events if e["event"] == "cascade.batch"]
    assert logged
    assert {e["run_id"] for e in logged} == {cascade.run_id}


def test_a_batch_tier_with_no_store_keeps_its_ledger_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a store the batches are still sent and followed, and no file is left behind."""
    monkeypatch.chdir(tmp_path)
    backend = _WithBatches(MemoryBatches())
    outcome = Cascade([_BATCH_TIER], backend=backend, log=False).run({"id": "t1", "input": "q"})
    assert [(s.batch, s.output) for s in outcome.steps] == [(True, "ok")]
    assert list(tmp_path.iterdir()) == []


def test_a_ladder_of_plain_tiers_makes_no_batcher() -> None:
    """With no batch tier, every call is an ordinary one, even on a backend with batches."""
    api = MemoryBatches()
    backend = _WithBatches(api)
    outcome = Cascade(["openai/cheap"], backend=backend, log=False).run({"id": "t1", "input": "q"})
    assert [(s.batch, s.output) for s in outcome.steps] == [(False, "asked directly")]
    assert api.calls == []


def test_the_default_backend_sends_http_tiers_over_http() -> None:
    """With no backend given, a tier on ``backend = "http"`` has its model called over HTTP."""
    cascade = Cascade([Tier("openai/a", backend="http")], log=False)
    assert isinstance(cascade.backend, PrefixBackend)
    assert isinstance(cascade.backend.backend_for("openai/a"), HttpBackend)


def test_the_default_backend_refuses_a_model_on_two_backends() -> None:
    """A model on http in one tier and on litellm in another is refused when the cascade is made."""
    ladder = [Tier("openai/a", backend="http"), Tier("openai/b", fallbacks=("openai/a",))]
    with pytest.raises(ConfigError) as refused:
        Cascade(ladder, log=False)
    assert str(refused.value) == (
        "openai/a is on backend = 'http' in one tier and on litellm in another: one backend per"
        " model"
    )
