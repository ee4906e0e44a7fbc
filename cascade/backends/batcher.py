"""Send a batch tier's calls through the provider's batch API, exactly once.

A tier with ``batch`` set (``mode = "batch"`` in a policy) hands its calls to the
:class:`Batcher` instead of the backend. The batcher gathers them, per model, into batches of
up to ``size`` requests, or whatever has gathered ``wait_s`` after the first. A batch goes out
in three steps: upload its input file; write the file and its requests' ``custom_id`` s to the
run's :class:`~cascade.store.batches.BatchBook`; create the batch, and write its id. Then it is
polled, with a backoff, until the provider ends it; each request's line of the output or error
file answers the call that waits for it, priced at the batch price.

A ``custom_id`` is a hash of the run, the task and the whole request, so a resumed run asks the
same ids again: one the book already holds waits for its batch (downloading a result that came
while the run was down) and is never submitted twice. A batch the book has a file but no id for
(the run died between upload and create) is looked up at the provider by its input file before
one is made of it.

A call its batch does not answer raises :class:`~cascade.errors.BatchUnanswered` (expired,
cancelled, not done ``deadline_s`` after it was gathered, or never submitted), and a failed
item raises the error its status says; either way the engine then makes the call as an
ordinary one, and the failed batch call stays in the steps, saying why.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cascade.backends.batch_api import ENDED, BatchApi, BatchView, Line, answer_of, custom_id
from cascade.errors import BatchUnanswered, ProviderError
from cascade.retry import RetryPolicy
from cascade.steplog import StepLog
from cascade.store.batches import BatchBook, Submitted
from cascade.types import Request, Response, Tier

__all__ = ["Batcher"]

_T = TypeVar("_T")
_Item = tuple[str, Request, "asyncio.Future[Line]"]
"""A call gathered for a batch: its custom_id, its request, and where its line goes."""


@dataclass(eq=False)
class _Batch:
    """One provider batch as this process knows it, and the calls waiting for it."""

    tier: Tier
    gathered_at: float
    """Wall-clock time the batch was gathered (the ledger's, for a batch of an earlier run)."""
    file_id: str | None = None
    waiting: dict[str, asyncio.Future[Line]] = field(default_factory=dict)
    results: dict[str, Line] | None = None
    """Once ended: each custom_id's line; a call that comes for its answer later takes it here."""
    why: str = ""


@dataclass(eq=False)
class _Gathering:
    tier: Tier
    items: list[_Item] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None


class Batcher:
    """Gather, submit and watch one process's provider batches (see the module's doc).

    ``apis`` gives a model's batch API (a backend's ``batch_api``). ``poll_s`` is the first and
    the longest pause between two polls of a batch; ``retries`` how often an upload, a create or
    a download is tried again after a transient error.
    """

    def __init__(
        self,
        apis: Callable[[str], BatchApi | None],
        book: BatchBook,
        *,
        log: StepLog | None = None,
        poll_s: tuple[float, float] = (0.2, 30.0),
        retries: int = 4,
    ) -> None:
        self._apis = apis
        self._book = book
        self._log = log
        self._backoff = RetryPolicy(base_s=poll_s[0], max_wait_s=poll_s[1], jitter=0.0)
        self._retries = retries
        self._gathering: dict[str, _Gathering] = {}
        self._batches: dict[str, _Batch] = {}
        """Batches by input file id, once uploaded."""
        self._waiting: dict[str, asyncio.Future[Line]] = {}
        """Every call waiting for a batch, by custom_id."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._taken_up: set[str] = set()
        """Tasks whose call waits for a batch an earlier run submitted and had not seen end."""

    @classmethod
    def for_backend(
        cls, backend: object, book: BatchBook, log: StepLog | None = None
    ) -> Batcher | None:
        """A batcher for ``backend``'s batch API; ``None`` when it has none (a replay, say)."""
        apis = getattr(backend, "batch_api", None)
        return cls(apis, book, log=log) if callable(apis) else None

    @property
    def run_id(self) -> str:
        """The run whose batches these are."""
        return self._book.run_id

    @property
    def waiting(self) -> int:
        """Calls waiting for a batch now: their tasks are parked, not working."""
        return len(self._waiting)

    def took_up(self, task_id: str) -> bool:
        """Whether a call of ``task_id`` waited for a batch an earlier run submitted (once).

        Such a call is not made again: its task, leased again after that run died, repeats no
        call it made (it was waiting for that batch).
        """
        found = task_id in self._taken_up
        self._taken_up.discard(task_id)
        return found

    async def complete(self, tier: Tier, request: Request) -> Response:
        """``request``'s answer from a batch; raise the :class:`ProviderError` it ended in."""
        api = self._apis(tier.model)
        if api is None:
            raise BatchUnanswered(f"the backend has no batch API for {tier.model}")
        key = custom_id(self.run_id, request)
        future = self._waiting.get(key)
        if future is None:
            known = self._book.find(key)
            if known is None:
                future = self._gather(tier, request, key)
            else:
                if known.state in ("uploaded", "submitted"):
                    self._taken_up.add(request.task_id)
                future = self._resume(tier, known, key)
        try:
            line = await asyncio.shield(future)
        finally:
            if future.done() and self._waiting.get(key) is future:
                del self._waiting[key]
        return answer_of(api, tier, request, line)

    async def aclose(self) -> None:
        """Stop gathering and watching: the batches stay at the provider and in the ledger."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for future in self._waiting.values():
            future.cancel()

    def _api(self, tier: Tier) -> BatchApi:
        api = self._apis(tier.model)
        assert api is not None  # complete() let no call of a model without one through
        return api

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _gather(self, tier: Tier, request: Request, key: str) -> asyncio.Future[Line]:
        assert tier.batch is not None  # only batch tiers come here
        future: asyncio.Future[Line] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        where = _where(tier)
        gathering = self._gathering.setdefault(where, _Gathering(tier))
        gathering.items.append((key, request, future))
        if len(gathering.items) >= tier.batch.size:
            self._flush(where)
        elif gathering.timer is None:
            gathering.timer = self._spawn(self._flush_after(where, tier.batch.wait_s))
        return future

    async def _flush_after(self, where: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        gathering = self._gathering.get(where)
        if gathering is not None:
            gathering.timer = None  # this task ends here: _flush must not cancel it
            self._flush(where)

    def _flush(self, where: str) -> None:
        gathering = self._gathering.pop(where)
        if gathering.timer is not None:
            gathering.timer.cancel()
        batch = _Batch(gathering.tier, time.time())
        batch.waiting = {key: future for key, _, future in gathering.items}
        self._spawn(self._submit(batch, gathering.items))

    def _resume(self, tier: Tier, known: Submitted, key: str) -> asyncio.Future[Line]:
        """A request an earlier run (or an earlier call of this one) put in a batch."""
        future: asyncio.Future[Line] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        batch = self._batches.get(known.file_id)
        if batch is None:
            batch = self._batches[known.file_id] = _Batch(tier, known.created_at, known.file_id)
            self._spawn(self._watch(batch, known.batch_id))
        if batch.results is not None:
            future.set_result(self._take(batch, key))
        else:
            batch.waiting[key] = future
        return future

    async def _submit(self, batch: _Batch, items: list[_Item]) -> None:
        tier = batch.tier
        api = self._api(tier)
        try:
            lines = [json.dumps(api.line(key, request)) + "\n" for key, request, _ in items]
            content = "".join(lines).encode()
            file_id = await self._retrying(lambda: api.upload(tier, content))
            # Written before the batch is made: from the create on, the provider bills these.
            self._book.add(file_id, tier.model, [key for key, _, _ in items])
        except Exception as exc:  # noqa: BLE001  # every waiting call must hear why
            self._end(batch, {}, "unsubmitted", f"the batch could not be submitted: {_say(exc)}")
            return
        batch.file_id = file_id
        self._batches[file_id] = batch
        await self._watch(batch, None, fresh=True)

    async def _watch(self, batch: _Batch, batch_id: str | None, *, fresh: bool = False) -> None:
        """Make the batch if it is not made, poll it until it ends, and answer its calls."""
        tier, file_id = batch.tier, batch.file_id
        assert file_id is not None  # only uploaded batches are watched
        api = self._api(tier)
        try:
            view = None if fresh or batch_id is not None else await api.find(tier, file_id)
            if batch_id is None:
                view = view or await self._create(tier, file_id)
                batch_id = view.id
                self._book.created(file_id, batch_id)
                self._event("submitted", tier, batch_id, file_id=file_id, items=len(batch.waiting))
            view = await self._poll(batch, batch_id, view)
            results = {}
            for part in (view.output_file_id, view.error_file_id):
                if part:
                    raw = await self._retrying(functools.partial(api.content, tier, part))
                    for text in raw.decode("utf-8").splitlines():
                        if text.strip():
                            line = json.loads(text)
                            results[str(line.get("custom_id"))] = line
            self._book.ended(file_id, view.status)
        except Exception as exc:  # noqa: BLE001  # every waiting call must hear why
            self._end(batch, {}, "unwatched", f"the batch could not be followed: {_say(exc)}")
            return
        if batch.why:  # cancelled at the deadline: what it did not run says so, not "cancelled"
            results = {k: line for k, line in results.items() if _ran(line)}
        why = batch.why or f"batch {batch_id} ended {view.status} without answering it"
        self._end(batch, results, view.status, why, batch_id=batch_id)

    async def _poll(self, batch: _Batch, batch_id: str, view: BatchView | None) -> BatchView:
        tier = batch.tier
        assert tier.batch is not None
        polls, cancelled = 0, False
        while view is None or view.status not in ENDED:
            due = batch.gathered_at + tier.batch.deadline_s - time.time()
            if due <= 0 and not cancelled:
                cancelled = True
                batch.why = (f"batch {batch_id} had not answered it within batch_deadline_s = "
                             f"{tier.batch.deadline_s:g}")  # fmt: skip
                self._event("cancel", tier, batch_id, why=batch.why)
                view = await self._retrying(lambda: self._api(tier).cancel(tier, batch_id))
                continue
            pause = self._pause(polls)
            polls += 1
            await asyncio.sleep(pause if cancelled else min(pause, max(due, 0.0)))
            try:
                view = await self._api(tier).retrieve(tier, batch_id)
            except ProviderError as exc:
                if not exc.transient:
                    raise
        return view

    async def _create(self, tier: Tier, file_id: str) -> BatchView:
        """Make the batch; after a failure that may have made it anyway, look before a retry."""
        api, tried = self._api(tier), False

        async def once() -> BatchView:
            nonlocal tried
            found = await api.find(tier, file_id) if tried else None
            tried = True
            return found or await api.create(tier, file_id)

        return await self._retrying(once)

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        for attempt in range(self._retries + 1):
            try:
                return await call()
            except ProviderError as exc:
                if not exc.transient or attempt == self._retries:
                    raise
            await self._backoff.sleep(self._pause(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, attempt: int) -> float:
        """The ``attempt``-th pause (from 0): the first, doubled each time, to the longest."""
        return self._backoff.wait_s(attempt, None) or 0.0

    def _end(
        self, batch: _Batch, results: dict[str, Line], state: str, why: str, *, batch_id: str = ""
    ) -> None:
        """The batch ended: answer every call waiting for it, keep the lines for calls to come."""
        batch.why = why
        batch.results = results
        items = len(batch.waiting)
        answered = sum(1 for key in batch.waiting if _ok(results.get(key)))
        self._event("ended", batch.tier, batch_id, state=state, items=items, answered=answered,
                    why=None if answered == items else why)  # fmt: skip
        waiting, batch.waiting = batch.waiting, {}
        for key, future in waiting.items():
            if not future.done():
                future.set_result(self._take(batch, key))

    def _take(self, batch: _Batch, key: str) -> Line:
        """The batch's line for ``key`` (given once), or one that says why it has none."""
        assert batch.results is not None
        found = batch.results.pop(key, None)
        if not batch.results and batch.file_id is not None:
            self._batches.pop(batch.file_id, None)  # all given: a later call reads it anew
        return found if found is not None else {"custom_id": key, "unanswered": batch.why}

    def _event(self, what: str, tier: Tier, batch_id: str, **fields: Any) -> None:
        if self._log is not None:
            self._log.event("cascade.batch", what=what, model=tier.model, batch_id=batch_id,
                            run_id=self.run_id, **fields)  # fmt: skip


def _where(tier: Tier) -> str:
    """Calls that may share a batch: the same model, at the same endpoint with the same key."""
    return json.dumps([tier.model, sorted((k, str(v)) for k, v in tier.params.items())])


def _say(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"


def _ran(line: Line) -> bool:
    """Whether the provider ran the line's request (whatever it answered)."""
    return isinstance((line.get("response") or {}).get("status_code"), int)


def _ok(line: Line | None) -> bool:
    return line is not None and (line.get("response") or {}).get("status_code") == 200
