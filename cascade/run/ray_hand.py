"""A task actor on Ray (:class:`TaskHand`), and how the coordinator talks to it (:class:`Hand`).

A Ray call costs about a millisecond of CPU at each end, as much as the engine spends on a task,
so tasks do not travel one call each. The coordinator hands over every task leased in one turn
of its event loop with one ``submit``, and a ``take`` that waits for the first to finish
brings back every outcome finished by then, with the step log lines written since (rendered
and redacted on the actor). Under load one call carries tens of tasks.

A task cut off by an interrupt gives back the calls it made: ``cut`` cancels it on the actor
and returns its steps, or, when it had already finished, the outcome it finished with comes
back with a ``take`` and its steps are used instead. Nothing that was paid for is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cascade.backends.routed import close_backend
from cascade.engine import Settings
from cascade.errors import CascadeError
from cascade.outcome import Outcome, Step
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.ray_guard import RayGuard
from cascade.run.worker import Cascades
from cascade.steplog import StepLog
from cascade.types import Task

__all__ = ["ActorLost", "Hand", "TaskHand"]

_TAKE_WAIT_S = 1.0
"""How long a ``take`` waits for a task to finish before it answers with none."""
_LATE_WAIT_S = 10.0
"""How long a cut-off task waits for the outcome that its actor had already sent."""


class ActorLost(CascadeError):
    """The actor running a task died; its tasks go back to the ledger."""


class _Lines:
    """A file that keeps what is written until it is drained (one actor's step log)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush: :meth:`drain` hands the lines over."""

    def drain(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


class TaskHand:
    """The body of a task actor: runs tasks with the engine, many at once on Ray's event loop.

    Its methods are coroutines, so Ray makes it an async actor, and they interleave there.
    """

    def __init__(self, job: Job, run_id: str, guard: RayGuard, *, log: bool) -> None:
        self._lines = _Lines()
        self._backend = job.backend_factory()()
        settings = Settings(
            backend=self._backend,
            log=StepLog(self._lines) if log else False,
            guard=guard,
            run_id=run_id,
            record_all_tiers=job.record_all_tiers,
            max_outage_s=job.max_outage_s,
        )
        self._cascades = Cascades(load_policies(job.policy), settings)
        self._running: dict[str, tuple[asyncio.Future[Outcome], list[Step]]] = {}
        self._finished: dict[str, Outcome] = {}
        self._news = asyncio.Event()

    async def ready(self) -> bool:
        """True once the actor is built (its backend and policies loaded)."""
        return True

    async def submit(self, tasks: list[Task]) -> int:
        """Start running ``tasks``; how many are running now."""
        for task in tasks:
            steps: list[Step] = []
            future = asyncio.ensure_future(self._run(task, steps))
            self._running[task.id] = future, steps
        return len(self._running)

    async def _run(self, task: Task, steps: list[Step]) -> Outcome:
        cascade = self._cascades.for_task(task)
        try:
            if cascade is None:
                reason = f"no policy serves task type {task.type!r} on this actor"
                run_id = self._cascades.settings.run_id or ""
                outcome = Outcome.quarantined(run_id, {"id": task.id}, reason)
            else:
                outcome = await cascade.arun(task, steps=steps)
        finally:
            self._running.pop(task.id, None)
        self._finished[task.id] = outcome
        self._news.set()
        return outcome

    async def take(self) -> tuple[list[tuple[str, Outcome]], str]:
        """The outcomes finished since the last take, and the step log since.

        With none finished, it waits up to a second for one.
        """
        if not self._finished:
            self._news.clear()
            try:
                async with asyncio.timeout(_TAKE_WAIT_S):
                    await self._news.wait()
            except TimeoutError:
                pass
        done, self._finished = list(self._finished.items()), {}
        return done, self._lines.drain()

    async def cut(self, task_id: str) -> tuple[list[Step] | None, str]:
        """Cut a task off: the calls it made, and the step log since.

        ``None`` instead of the calls when the task was not here: its outcome was taken
        already, and is on its way to the coordinator.
        """
        if (outcome := self._finished.pop(task_id, None)) is not None:
            return list(outcome.steps), self._lines.drain()
        future, steps = self._running.get(task_id, (None, None))
        if future is None or steps is None:
            return None, self._lines.drain()
        future.cancel()
        await asyncio.gather(future, return_exceptions=True)
        return list(steps), self._lines.drain()

    async def close(self) -> str:
        """Close the backend; the step log's last lines."""
        close_backend(self._backend)
        return self._lines.drain()


class Hand:
    """The coordinator's side of one :class:`TaskHand`: a cascade that runs tasks there."""

    def __init__(self, actor: Any, write_log: Callable[[str], None]) -> None:
        self.actor = actor
        self._write_log = write_log
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._late: dict[str, asyncio.Future[Outcome]] = {}
        self._outbox: list[Task] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._pump: asyncio.Future[None] | None = None
        self._lost: ActorLost | None = None

    async def arun(self, task: Task, *, steps: list[Step]) -> Outcome:
        """Run ``task`` on the actor; ``steps`` gets its calls if it is cut off."""
        if self._lost is not None:
            raise self._lost
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting[task.id] = future
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._send)
        self._outbox.append(task)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._take_all())
        try:
            return await future
        except asyncio.CancelledError:
            self._waiting.pop(task.id, None)
            if future.done() and not future.cancelled() and future.exception() is None:
                steps.extend(future.result().steps)  # finished as the cut came
            else:
                # Watched for from now on: its outcome may be on its way in a take.
                late = self._late[task.id] = asyncio.get_running_loop().create_future()
                steps.extend(await asyncio.shield(self._cut(task.id, late)))
            raise

    def _send(self) -> None:
        """Hand every task leased in this turn of the loop to the actor, in one call."""
        batch, self._outbox = self._outbox, []
        if batch:
            self._keep(asyncio.ensure_future(self._submitted(self.actor.submit.remote(batch))))

    async def _submitted(self, ref: Any) -> None:
        try:
            await ref
        except Exception as exc:  # noqa: BLE001  # Ray's errors: the actor is gone
            self._lose(exc)

    async def _take_all(self) -> None:
        """Bring back outcomes while tasks are out; fail them all if the actor is lost."""
        while self._waiting or self._late:
            try:
                done, log = await self.actor.take.remote()
            except Exception as exc:  # noqa: BLE001  # Ray's errors: the actor is gone
                self._lose(exc)
                return
            self._write_log(log)
            for task_id, outcome in done:
                future = self._waiting.pop(task_id, None) or self._late.pop(task_id, None)
                if future is not None and not future.done():
                    future.set_result(outcome)

    async def _cut(self, task_id: str, late: asyncio.Future[Outcome]) -> list[Step]:
        """The calls a cancelled task made, from the actor (or from its outcome, on its way)."""
        try:
            steps, log = await self.actor.cut.remote(task_id)
        except Exception:  # noqa: BLE001  # a lost actor's calls are lost with it
            return []
        self._write_log(log)
        if steps is not None:
            self._late.pop(task_id, None)
            return list(steps)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._take_all())
        try:
            async with asyncio.timeout(_LATE_WAIT_S):
                return list((await late).steps)
        except (TimeoutError, ActorLost):
            return []
        finally:
            self._late.pop(task_id, None)

    def _lose(self, exc: BaseException) -> None:
        self._lost = self._lost or ActorLost(f"a Ray actor was lost: {exc}")
        for future in [*self._waiting.values(), *self._late.values()]:
            if not future.done():
                future.set_exception(self._lost)
        self._waiting.clear()
        self._late.clear()

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close the actor's backend, writing its last log lines; then stop the pump."""
        try:
            self._write_log(await self.actor.close.remote())
        finally:
            if self._pump is not None:
                self._pump.cancel()
