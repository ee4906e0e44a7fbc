"""``cascade run --executor ray``: the tasks run on Ray actors; this process keeps the ledger.

The coordinator (this process) is the ledger's single writer, as with ``--executor
processes``. For each actor it runs one :class:`~cascade.run.worker.Worker`, unchanged, whose
tasks are run by the actor instead of here: the worker leases a batch from the ledger, sends
the tasks to its actor, and records the returned outcomes in one transaction per batch. So the
lease, the budget, the interrupt and exactly-once are the same code as on one machine.

Each actor (:class:`~cascade.run.ray_hand.TaskHand`) is I/O-bound and asks Ray for no CPU. It
builds its own backend from the job's picklable factory, loads the policies, and runs the tasks
with the same engine, many at once on its event loop. Tasks and outcomes travel in batches,
with the step log's lines (rendered and redacted on the actor), which this process appends to
the run's step log. Rate limits and breakers are one small actor for the whole cluster
(:mod:`cascade.run.ray_guard`).

An actor that dies (its machine went away, it was killed) fails its tasks here with
:class:`~cascade.run.ray_hand.ActorLost`: its worker stops, its leases are released to the
others, and a new actor takes its place. The calls that the dead actor made for tasks in flight
are lost with it; those tasks run again and count as repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cascade.budget import JobBudget
from cascade.errors import CascadeError, ConfigError
from cascade.policy import PolicySet
from cascade.run.guard import Guard
from cascade.run.job import Job
from cascade.run.ray_guard import GuardKeeper, RayGuard
from cascade.run.ray_hand import ActorLost, Hand, TaskHand
from cascade.run.worker import StopFlag, TaskCascades, Worker, new_owner
from cascade.steplog import StepLog
from cascade.store.ledger import Ledger
from cascade.types import Task, Tier

if TYPE_CHECKING:
    from cascade.telemetry import Telemetry

__all__ = ["RayPool", "require_ray"]

_MAX_REPLACED = 8
"""Lost actors replaced in one run, at most, before the run stops (rerun to resume)."""


def require_ray() -> None:
    """Fail with what to install when Ray is missing (before a run starts)."""
    _ray()


def _ray() -> Any:
    try:
        import ray  # noqa: PLC0415  # the ray extra, only for --executor ray
    except ImportError as exc:
        raise ConfigError(
            f"--executor ray needs the ray extra: pip install 'cascade-llm[ray]' ({exc})"
        ) from exc
    return ray


class _RemoteCascades(TaskCascades):
    """The worker's view of one actor: every policy's cascade runs there."""

    def __init__(self, policies: PolicySet, log: StepLog | None, hand: Hand) -> None:
        self.policies = policies
        self.log = log
        self._hand = hand

    def for_task(self, task: Task) -> Hand | None:
        """The actor, when a policy serves ``task``."""
        return None if self.policies.for_task(task) is None else self._hand

    def tiers_for(self, task: Task) -> tuple[Tier, ...]:
        """The ladder of the policy that serves ``task``."""
        policy = self.policies.for_task(task)
        return () if policy is None else policy.ladder

    def parked(self) -> int:
        """None: a run with batch tiers is refused on Ray."""
        return 0

    def took_up(self, _task_id: str) -> bool:
        """Never: a run with batch tiers is refused on Ray."""
        return False


@dataclass
class _Slot:
    hand: Hand
    worker: Worker
    task: asyncio.Future[None]


class RayPool:
    """Run a job's tasks on ``job.workers`` Ray actors, recording here (see the module doc)."""

    def __init__(
        self,
        job: Job,
        policies: PolicySet,
        ledger: Ledger,
        guard: Guard,
        *,
        log: StepLog | None,
        stop: StopFlag,
        budget: JobBudget,
        interrupted: StopFlag,
        telemetry: Telemetry | None,
    ) -> None:
        self._ray = _ray()
        # Actors may run on other machines, from another directory: they get absolute paths.
        absolute = {"policy": str(Path(job.policy).resolve())}
        if job.replay is not None:
            absolute["replay"] = str(Path(job.replay).resolve())
        self.job = replace(job, **absolute)  # type: ignore[arg-type]
        self._policies = policies
        self._ledger = ledger
        self._guard = guard
        self._log = log
        self._stop, self._budget, self._interrupted = stop, budget, interrupted
        self._telemetry = telemetry
        self.lost = 0
        """Actors that died during the run (each was replaced)."""
        self.trips = 0
        """Breaker trips, from the cluster's guard, once the run is over."""

    def _connect(self) -> bool:
        """Join the cluster at ``--ray-address``, or start a local Ray; whether it was started."""
        ray = self._ray
        if ray.is_initialized():
            return False
        address = self.job.ray_address
        try:
            if address:
                ray.init(address=address, configure_logging=False, log_to_driver=True)
            else:
                ray.init(include_dashboard=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {address}" if address else "locally"
            raise ConfigError(f"--executor ray: cannot start or join Ray {where}: {exc}") from exc
        return True

    async def run(self, tick: Callable[[list[str]], None]) -> None:
        """Work until the job is done or stopped; ``tick(alive owners)`` runs every ``tail_s``."""
        ray = self._ray
        started = self._connect()
        slots: dict[str, _Slot] = {}
        keeper = None
        try:
            keeper = ray.remote(num_cpus=0)(GuardKeeper).remote(
                self._guard.limits, self._guard.breaker, keys=self._guard.keys
            )
            client = RayGuard(keeper, self._guard.limits, _wait_for)
            hands = [self._hand(client) for _ in range(self.job.worker_count(None))]
            await asyncio.gather(*(_started(hand) for hand in hands))
            for hand in hands:
                self._start(slots, hand)
            while slots:
                await asyncio.wait([slot.task for slot in slots.values()], timeout=self.job.tail_s)
                tick(list(slots))
                for owner, slot in list(slots.items()):
                    if slot.task.done():
                        del slots[owner]
                        await self._retire(owner, slot, slots, client)
        finally:
            for slot in slots.values():
                slot.task.cancel()
                ray.kill(slot.hand.actor)
            if keeper is not None:
                self.trips = await self._trips(keeper)
            if started:
                ray.shutdown()

    async def _trips(self, keeper: Any) -> int:
        try:
            trips = int(await keeper.trips.remote())
        except Exception:  # noqa: BLE001  # the cluster went away: the trips are not known
            return 0
        finally:
            self._ray.kill(keeper)
        return trips

    def _hand(self, client: RayGuard) -> Hand:
        # Its calls are few (a submit, a take, a cut per task cut off): a few at once suffice.
        actor = self._ray.remote(num_cpus=0, max_concurrency=64)(TaskHand).remote(
            self.job, self._ledger.run_id, client, log=self._log is not None
        )
        return Hand(actor, self._write_log)

    def _start(self, slots: dict[str, _Slot], hand: Hand) -> None:
        owner = new_owner()
        worker = Worker(
            self.job,
            _RemoteCascades(self._policies, self._log, hand),
            self._ledger,
            stop=self._stop,
            budget=self._budget,
            owner=owner,
            interrupted=self._interrupted,
            telemetry=self._telemetry,
        )
        slots[owner] = _Slot(hand, worker, asyncio.ensure_future(worker.run()))

    async def _retire(
        self, owner: str, slot: _Slot, slots: dict[str, _Slot], client: RayGuard
    ) -> None:
        """A worker ended: give back its leases; replace its actor if the actor was lost."""
        self._ledger.release(owner)
        error = None if slot.task.cancelled() else slot.task.exception()
        if not isinstance(error, ActorLost):
            try:
                await slot.hand.close()
            finally:
                self._ray.kill(slot.hand.actor)
            if error is not None:
                raise error
            return
        self.lost += 1
        self._ray.kill(slot.hand.actor)
        if self.lost > _MAX_REPLACED:
            raise CascadeError(f"{self.lost} Ray actors were lost ({error}); rerun to resume")
        hand = self._hand(client)
        await _started(hand)
        self._start(slots, hand)

    def _write_log(self, text: str) -> None:
        if text and self._log is not None:
            self._log.write_rendered(text)


async def _started(hand: Hand) -> None:
    """Wait until an actor is built; when it cannot be, say why.

    A policy path missing on the actor's node, or a backend that fails there, say.
    """
    try:
        await hand.actor.ready.remote()
    except Exception as exc:
        raise ConfigError(f"--executor ray: a task actor could not start: {exc}") from exc


def _wait_for(ref: Any) -> Any:
    """An object ref's value, blocking: the guard's hooks are called from the engine's loop.

    ``ray.get`` would warn there; the wait is a round trip to the guard actor, about 1 ms.
    """
    return ref.future().result()
