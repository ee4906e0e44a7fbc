"""The engine: run a task up a ladder of tiers, cheapest first, until an answer passes.

A :class:`Cascade` is a :class:`Plan` (what to do: ladder, validators, prompt, budget, start
rules) run with :class:`Settings` (how: backend, store, step log, retries, guard, run id).
The loop itself is :mod:`cascade.engine.loop`; its decisions, one pure function, are
:mod:`cascade.engine.decide`; the calls, retries and guard hooks are :mod:`cascade.engine.calls`.

>>> from cascade import Cascade, Tier, json_schema
>>> from cascade.backends import ScriptedBackend
>>> backend = ScriptedBackend({"small": ["not json"], "big": ['{"name": "Ada"}']})
>>> cascade = Cascade(
...     [Tier("small"), Tier("big")],
...     validate=json_schema({"type": "object", "required": ["name"]}),
...     backend=backend,
...     log=False,
... )
>>> outcome = cascade.run({"id": "t1", "input": "Ada wrote the first program."})
>>> outcome.status, outcome.model, outcome.parsed
(<Status.ACCEPTED: 'accepted'>, 'big', {'name': 'Ada'})
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cascade.engine.calls import BatchSender, Caller, GuardHooks
from cascade.engine.loop import TaskRun
from cascade.engine.plan import Plan, Route, Settings
from cascade.errors import CascadeError, ConfigError, TaskError
from cascade.outcome import Outcome, Step
from cascade.secrets import SecretRedactor, register_secrets, secret_values
from cascade.steplog import StepLog
from cascade.types import Message, Task, Tier
from cascade.validators.base import Validator

if TYPE_CHECKING:
    from cascade.backends.base import Backend
    from cascade.store import Store

__all__ = ["Cascade", "GuardHooks", "Plan", "Route", "Settings", "first_messages"]


class Cascade:
    """A :class:`Plan` run with :class:`Settings`.

    The plan may be given whole, or as a ladder with ``validate`` and ``prompt`` beside it;
    ``backend``, ``store`` and ``log`` stand in for the same fields of ``settings``.

    >>> Cascade(Plan(["small", "big"]), settings=Settings(log=False, run_id="r1")).run_id
    'r1'
    """

    def __init__(
        self,
        plan: Plan | Sequence[Tier | str],
        validate: Validator | Sequence[Validator] | None = None,
        *,
        prompt: str | None = None,
        backend: Backend | None = None,
        store: Store | None = None,
        log: StepLog | bool | None = None,
        settings: Settings | None = None,
    ) -> None:
        if isinstance(plan, Plan):
            if validate is not None or prompt is not None:
                raise ConfigError("give validate and prompt in the Plan, not beside it")
        else:
            plan = Plan(plan, validate, prompt if prompt is not None else "{input}")
        settings = settings or Settings()
        if backend is not None:
            settings = dataclasses.replace(settings, backend=backend)
        if store is not None:
            settings = dataclasses.replace(settings, store=store)
        if log is not None:
            settings = dataclasses.replace(settings, log=log)
        self.plan = plan
        self.settings = settings
        self._tiers = plan.tiers  # read once: the plan is frozen
        self._validator = plan.validator
        self.run_id = settings.run_id or uuid.uuid4().hex[:12]
        self.backend = (
            settings.backend if settings.backend is not None else _default_backend(self._tiers)
        )
        self._log = (
            StepLog() if settings.log is None or settings.log is True else (settings.log or None)
        )
        secrets = [v for tier in self._tiers for v in secret_values(tier.params)]
        register_secrets(secrets)  # the store redacts them too
        redactor = SecretRedactor(extra=secrets)
        batcher = settings.batcher
        if batcher is None and any(tier.batch is not None for tier in self._tiers):
            batcher = _default_batcher(self.backend, settings.store, self.run_id, self._log)
        self._caller = Caller(
            self.backend, settings.retry, settings.guard, self._log, redactor, batcher
        )

    def __repr__(self) -> str:
        models = " → ".join(t.model for t in self.plan.tiers)
        return f"Cascade({models}, validate={self.plan.validator!r})"

    @property
    def ladder(self) -> tuple[Tier, ...]:
        """The plan's tiers."""
        return self._tiers

    def run(self, task: Task | Mapping[str, Any]) -> Outcome:
        """Run one task to its outcome. Use :meth:`arun` inside an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task))
        raise CascadeError("Cascade.run() was called inside a running event loop; await arun()")

    async def arun(
        self, task: Task | Mapping[str, Any], *, steps: list[Step] | None = None
    ) -> Outcome:
        """Run one task to its outcome; a malformed task ends ``quarantined``, never raises.

        ``steps``, when given, receives each step as it is made: if the run is cancelled part
        way, it still holds the calls made (and paid for) so far.
        """
        store = self.settings.store
        try:
            parsed = task if isinstance(task, Task) else Task.from_dict(task)
        except TaskError as exc:
            outcome = Outcome.quarantined(self.run_id, task, str(exc))
            if store is not None:
                store.record(outcome)
            return outcome
        try:
            messages = first_messages(parsed, self.plan.prompt)
        except TaskError as exc:
            outcome = Outcome.failed(self.run_id, parsed, str(exc))
        else:
            outcome = await self._climb(parsed, messages, steps)
        if store is not None:
            store.record(outcome, parsed)
        return outcome

    async def _climb(
        self, task: Task, messages: tuple[Message, ...], steps: list[Step] | None
    ) -> Outcome:
        plan = self.plan
        order = None
        if plan.route is not None:
            sent = (*plan.examples, *messages)
            order = [i for i in plan.route(task, sent) if 0 <= i < len(self._tiers)]
            if not order:
                reason = "no tier of the ladder can take this task (see the policy's start rules"
                return Outcome.failed(self.run_id, task, reason + " and context windows)")
        run = TaskRun(
            task,
            self._tiers,
            self._validator,
            self._caller,
            self._log,
            self.run_id,
            escalate_on_provider_error=plan.escalate_on_provider_error,
            max_outage_s=self.settings.max_outage_s,
            steps=steps,
            deadline_s=plan.deadline_s,
        )
        calibrate = _sampled(task.id, self.settings.record_all_tiers)
        examples = tuple(plan.examples)  # already a tuple: no copy
        return await run.run(messages, plan.budget_usd, order, examples, calibrate=calibrate)

    async def amap(
        self, tasks: Iterable[Task | Mapping[str, Any]], *, concurrency: int = 16
    ) -> AsyncIterator[Outcome]:
        """Run many tasks, at most ``concurrency`` at once, yielding outcomes as they finish.

        Tasks are drawn from ``tasks`` lazily, so a generator over a huge file is never loaded
        whole.
        """
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        source = iter(tasks)
        running: set[asyncio.Task[Outcome]] = set()
        while True:
            for task in source:
                running.add(asyncio.ensure_future(self.arun(task)))
                if len(running) >= concurrency:
                    break
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                yield finished.result()


def _default_backend(tiers: tuple[Tier, ...]) -> Backend:
    from cascade.backends.default import default_backend, http_models  # noqa: PLC0415

    return default_backend(http_models(tiers))


def _default_batcher(
    backend: Backend, store: Store | None, run_id: str, log: StepLog | None
) -> BatchSender | None:
    """A batcher for a cascade's batch tiers, keeping its ledger in the store (or in memory)."""
    from cascade.backends.batcher import Batcher  # noqa: PLC0415  # only batch tiers need it
    from cascade.store import Store  # noqa: PLC0415
    from cascade.store.batches import BatchBook  # noqa: PLC0415

    return Batcher.for_backend(backend, BatchBook(store or Store(":memory:"), run_id), log)


def _sampled(task_id: str, share: float) -> bool:
    """Whether a task is in the calibration sample: decided by its id, so a resume agrees."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(task_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def first_messages(task: Task, prompt: str) -> tuple[dict[str, str], ...]:
    """The messages a task's first ask sends: its own, or the prompt filled in with it."""
    if task.messages is not None:
        return tuple(dict(m) for m in task.messages)
    try:
        content = prompt.format_map({**task.extra, "input": task.input, "id": task.id})
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskError(
            f"task {task.id!r}: the prompt template needs {exc} and the task lacks it"
        ) from exc
    return ({"role": "user", "content": content},)
