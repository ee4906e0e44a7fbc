"""The engine: run a task up a ladder of tiers, cheapest first, until an answer passes.

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
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from cascade._calls import Caller
from cascade._task_run import TaskRun, failed_outcome, quarantined_outcome
from cascade.backends.base import Backend
from cascade.errors import CascadeError, ConfigError, TaskError
from cascade.guard import Guard
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog
from cascade.store import Store
from cascade.types import Message, Outcome, Task, Tier
from cascade.validators.base import Validator
from cascade.validators.combine import all_of

__all__ = ["Cascade", "Route"]

Route = Callable[[Task, tuple[Message, ...]], Sequence[int]]
"""Which tiers to try for a task, as ladder indices in order: start rules, context windows."""


class Cascade:
    """A ladder of tiers and the validators that gate it.

    ``validate`` is one validator, or a sequence that must all pass (run cheapest first); with
    none, the first answer is accepted. ``prompt`` builds the user message for tasks that carry
    ``input`` (``{input}`` and any extra task field may be named); tasks with ``messages`` are sent
    as they are. ``examples`` are chat turns (worked examples, say) sent before every task's own
    messages: few-shot prompting for models that need it. ``budget_usd`` caps the cost of one
    task; it is checked before every re-ask and escalation. ``log`` is a :class:`StepLog`,
    ``None`` for JSON lines on standard error, or ``False`` for no log. With a ``store``, every
    outcome and its steps are written through it.
    ``route`` picks the tiers to try per task (see :data:`Route`); by default, all in order.
    ``guard`` holds the rate limits and circuit breakers the calls go through (see
    :class:`~cascade.guard.Guard`); share one guard between cascades that call the same models.
    ``record_all_tiers`` is the share of tasks (drawn by id) whose every model tier is asked,
    even those the ladder did not need, to record what each tier answers for calibration
    (``cascade optimize`` reads such a store); those calls are paid and kept as steps of kind
    ``calibration``, and never change the outcome.
    """

    def __init__(  # noqa: PLR0913  # keyword-only settings, each with a sane default
        self,
        ladder: Sequence[Tier | str],
        validate: Validator | Sequence[Validator] | None = None,
        *,
        backend: Backend | None = None,
        prompt: str = "{input}",
        examples: Sequence[Message] = (),
        budget_usd: float | None = None,
        store: Store | None = None,
        log: StepLog | bool | None = None,
        retry: RetryPolicy | None = None,
        run_id: str | None = None,
        route: Route | None = None,
        guard: Guard | None = None,
        record_all_tiers: float = 0.0,
    ) -> None:
        if not 0.0 <= record_all_tiers <= 1.0:
            raise ConfigError(f"record_all_tiers must be between 0 and 1, got {record_all_tiers!r}")
        self.record_all_tiers = record_all_tiers
        self.ladder = tuple(Tier(t) if isinstance(t, str) else t for t in ladder)
        if not self.ladder:
            raise ConfigError("a ladder needs at least one tier")
        if budget_usd is not None and not budget_usd > 0:
            raise ConfigError(f"budget_usd must be > 0, got {budget_usd!r}")
        self.validate = _as_validator(validate)
        self.backend = backend if backend is not None else default_backend()
        self.prompt = prompt
        self.examples = tuple(examples)
        self.budget_usd = budget_usd
        self.store = store
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._log = StepLog() if log is None or log is True else (log or None)
        self.guard = guard
        self._caller = Caller(self.backend, retry or RetryPolicy(), guard, self._log)
        self.route = route

    def __repr__(self) -> str:
        models = " → ".join(t.model for t in self.ladder)
        return f"Cascade({models}, validate={self.validate!r})"

    def run(self, task: Task | Mapping[str, Any]) -> Outcome:
        """Run one task to its outcome. Use :meth:`arun` inside an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task))
        raise CascadeError("Cascade.run() was called inside a running event loop; await arun()")

    async def arun(self, task: Task | Mapping[str, Any]) -> Outcome:
        """Run one task to its outcome; a malformed task ends ``quarantined``, never raises."""
        try:
            parsed = task if isinstance(task, Task) else Task.from_dict(task)
        except TaskError as exc:
            outcome = quarantined_outcome(self.run_id, task, str(exc))
            if self.store is not None:
                self.store.record(outcome)
            return outcome
        try:
            messages = _first_messages(parsed, self.prompt)
        except TaskError as exc:
            outcome = failed_outcome(self.run_id, parsed, str(exc))
        else:
            outcome = await self._climb(parsed, messages)
        if self.store is not None:
            self.store.record(outcome, parsed)
        return outcome

    async def _climb(self, task: Task, messages: tuple[Message, ...]) -> Outcome:
        order = None
        if self.route is not None:
            sent = (*self.examples, *messages)
            order = [i for i in self.route(task, sent) if 0 <= i < len(self.ladder)]
            if not order:
                reason = "no tier of the ladder can take this task (see the policy's start rules"
                return failed_outcome(self.run_id, task, reason + " and context windows)")
        run = TaskRun(task, self.ladder, self.validate, self._caller, self._log, self.run_id)
        calibrate = _sampled(task.id, self.record_all_tiers)
        return await run.run(messages, self.budget_usd, order, self.examples, calibrate=calibrate)

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


def _sampled(task_id: str, share: float) -> bool:
    """Whether a task is in the calibration sample: decided by its id, so a resume agrees."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(task_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def _as_validator(validate: Validator | Sequence[Validator] | None) -> Validator:
    if validate is None:
        return all_of()
    if isinstance(validate, Sequence):
        return validate[0] if len(validate) == 1 else all_of(*validate)
    if not callable(validate):
        raise ConfigError(f"a validator must be callable, got {type(validate).__name__}")
    return validate


def default_backend() -> Backend:
    """``local/...`` models on llama.cpp, every other model through litellm.

    Both are imported only when first needed: ``import cascade`` stays fast.
    """
    from cascade.backends.litellm import LiteLLMBackend  # noqa: PLC0415  # litellm stays lazy
    from cascade.backends.local import LOCAL_PREFIX, LocalBackend  # noqa: PLC0415
    from cascade.backends.routed import PrefixBackend  # noqa: PLC0415

    return PrefixBackend({LOCAL_PREFIX: LocalBackend}, default=LiteLLMBackend)


def _first_messages(task: Task, prompt: str) -> tuple[dict[str, str], ...]:
    if task.messages is not None:
        return tuple(dict(m) for m in task.messages)
    try:
        content = prompt.format_map({**task.extra, "input": task.input, "id": task.id})
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskError(
            f"task {task.id!r}: the prompt template needs {exc} and the task lacks it"
        ) from exc
    return ({"role": "user", "content": content},)
