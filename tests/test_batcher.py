"""The batcher against a scripted batch API in memory: what it does when the provider stumbles.

The whole path through litellm and the loopback fake is in test_batch_tier.py and
test_batch_resume.py; here the provider's faults are placed exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, Plan, Tier
from cascade.backends import ScriptedBackend
from cascade.backends.batch_api import BatchView, custom_id
from cascade.backends.batcher import Batcher
from cascade.engine import Settings
from cascade.errors import AuthenticationFailed, BatchUnanswered, ConfigError, ServerError
from cascade.policy import load_policies, load_policy
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.store import Store
from cascade.store.batches import BatchBook
from cascade.types import Batching, Request, Response, Usage
from cascade.validators import one_of
from tests.helpers import assert_policy_refused


class MemoryBatches:
    """A batch API in memory: batches end on the first retrieve, answering "ok" to each line.

    ``faults`` maps a method name to errors to raise on its next calls; ``create_then_fail``
    makes the next create make the batch and still raise, as a reply lost on the way would.
    """

    def __init__(self) -> None:
        self.files: dict[str, list[dict[str, Any]]] = {}
        self.batches: dict[str, BatchView] = {}
        self.faults: dict[str, list[Exception]] = {}
        self.create_then_fail = False
        self.calls: list[str] = []
        self._ids = itertools.count(1)

    def _fault(self, name: str) -> None:
        self.calls.append(name)
        pending = self.faults.get(name)
        if pending:
            raise pending.pop(0)

    def line(self, custom_id: str, request: Request) -> dict[str, Any]:
        """The request's messages."""
        return {"custom_id": custom_id, "body": {"messages": [dict(m) for m in request.messages]}}

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """The body's text, at a fixed price."""
        return Response(str(body["text"]), tier.model, Usage(10, 2), 0.5e-5)

    async def upload(self, tier: Tier, content: bytes) -> str:
        """Keep the file's lines."""
        self._fault("upload")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = [json.loads(line) for line in content.decode().splitlines()]
        return file_id

    async def create(self, tier: Tier, file_id: str) -> BatchView:
        """A batch in progress (or made, then a 502: ``create_then_fail``)."""
        view = BatchView(f"batch-{next(self._ids)}", "in_progress", file_id)
        if self.create_then_fail:
            self.create_then_fail = False
            self.batches[view.id] = view
            raise ServerError("502 after the batch was made")
        self._fault("create")
        self.batches[view.id] = view
        return view

    async def find(self, tier: Tier, file_id: str) -> BatchView | None:
        """The batch of ``file_id``."""
        self._fault("find")
        return next((b for b in self.batches.values() if b.input_file_id == file_id), None)

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """The batch, completed now if it was in progress."""
        self._fault("retrieve")
        view = self.batches[batch_id]
        if view.status == "in_progress":
            out = f"out-{batch_id}"
            lines = [
                {"custom_id": item["custom_id"],
                 "response": {"status_code": 200, "body": {"text": "ok"}}}
                for item in self.files[view.input_file_id]
            ]  # fmt: skip
            self.files[out] = lines
            view = BatchView(batch_id, "completed", view.input_file_id, out)
            self.batches[batch_id] = view
        return view

    async def cancel(self, tier: Tier, batch_id: str) -> BatchView:
        """Not used here."""
        raise AssertionError("not cancelled in these tests")

    async def content(self, tier: Tier, file_id: str) -> bytes:
        """A file's lines."""
        self._fault("content")
        return "".join(json.dumps(line) + "\n" for line in self.files[file_id]).encode()


TIER = Tier("openai/cheap", batch=Batching(size=3, wait_s=0.05), retries=0)


def batcher(api: MemoryBatches, store: Store) -> Batcher:
    """A batcher that polls every few milliseconds."""
    return Batcher(lambda _model: api, BatchBook(store, "r1"), poll_s=(0.005, 0.02), retries=2)


def request(n: int) -> Request:
    """The n-th task's request."""
    return Request("openai/cheap", ({"role": "user", "content": f"q{n}"},), f"t{n}", {}, 60.0)


async def ask_all(sender: Batcher, count: int) -> list[Response | BaseException]:
    """``count`` tasks' requests at once."""
    calls = [sender.complete(TIER, request(n)) for n in range(count)]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_a_create_whose_reply_was_lost_is_found_not_made_twice() -> None:
    """The provider made the batch but answered 502: the batcher looks before trying again."""
    api = MemoryBatches()
    api.create_then_fail = True
    with Store(":memory:") as store:
        answers = asyncio.run(ask_all(batcher(api, store), 3))
    assert [a.text for a in answers if isinstance(a, Response)] == ["ok"] * 3
    assert len(api.batches) == 1
    assert "find" in api.calls


def test_transient_poll_and_download_errors_are_waited_out() -> None:
    """Two failed polls and a failed download later, every call has its answer."""
    api = MemoryBatches()
    api.faults = {"retrieve": [ServerError("503"), ServerError("503")],
                  "content": [ServerError("503")]}  # fmt: skip
    with Store(":memory:") as store:
        answers = asyncio.run(ask_all(batcher(api, store), 3))
    assert all(isinstance(a, Response) for a in answers)


def test_a_batch_that_cannot_be_submitted_answers_every_call_with_why() -> None:
    """A refused upload: each waiting call hears it (and nothing is left in the ledger)."""
    api = MemoryBatches()
    api.faults = {"upload": [AuthenticationFailed("401: bad key")]}
    with Store(":memory:") as store:
        answers = asyncio.run(ask_all(batcher(api, store), 2))
        assert BatchBook(store, "r1").all() == []
    assert all(isinstance(a, BatchUnanswered) for a in answers)
    assert "could not be submitted: 401: bad key" in str(answers[0])


def test_a_call_already_in_a_batch_is_not_put_in_another() -> None:
    """The same request asked again (a resumed task) waits for the batch it is in."""
    api = MemoryBatches()
    with Store(":memory:") as store:

        async def twice() -> tuple[Response, Response]:
            sender = batcher(api, store)
            first = await sender.complete(TIER, request(0))
            again = await batcher(api, store).complete(TIER, request(0))  # a new process
            return first, again

        first, again = asyncio.run(twice())
    assert first.text == again.text == "ok"
    assert len(api.batches) == 1
    assert api.calls.count("upload") == 1


def test_custom_ids_are_the_same_for_the_same_request_and_differ_otherwise() -> None:
    """A resumed run asks the same ids; another run, task, re-ask or message does not."""
    base = request(0)
    same = custom_id("r1", request(0))
    assert custom_id("r1", base) == same
    assert custom_id("r2", base) != same
    assert custom_id("r1", request(1)) != same
    reask = Request(base.model, base.messages, base.task_id, {}, 60.0, reask=1)
    assert custom_id("r1", reask) != same


def test_a_cascade_with_a_batch_tier_and_a_backend_without_batches_calls_it_directly() -> None:
    """A scripted backend has no batch API: the batch tier is asked like any other."""
    backend = ScriptedBackend({"openai/cheap": ["ok"]})
    outcome = Cascade([TIER], backend=backend, log=False).run({"id": "t", "input": "x"})
    assert outcome.status == "accepted"
    assert [s.batch for s in outcome.steps] == [False]


def test_a_cascade_sends_a_batch_tier_through_its_batcher() -> None:
    """Given a batcher, the cascade's batch tier goes through it; its step says so."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        settings = Settings(batcher=batcher(api, store), log=False)
        cascade = Cascade([TIER], backend=ScriptedBackend({}), settings=settings)
        outcome = cascade.run({"id": "t", "input": "x"})
    assert outcome.status == "accepted"
    (step,) = outcome.steps
    assert step.batch
    assert step.cost_usd == pytest.approx(0.5e-5)


# --- policies ------------------------------------------------------------------------------


def test_a_policy_batch_tier_loads_with_its_settings(tmp_path: Path) -> None:
    """``mode = "batch"`` and the batch fields make the tier's :class:`Batching`."""
    path = tmp_path / "nightly.toml"
    path.write_text(
        'task_type = "nightly"\n[[tiers]]\nmodel = "openai/gpt-4o-mini"\nmode = "batch"\n'
        'batch_size = 100\nbatch_deadline_s = 3600\n[[tiers]]\nmodel = "openai/gpt-4o"\n'
    )
    cheap, dear = load_policy(path).plan.tiers
    assert cheap.batch == Batching(size=100, wait_s=5.0, deadline_s=3600.0, discount=0.5)
    assert dear.batch is None


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ('[[tiers]]\nmodel = "openai/a"\nbatch_size = 10\n', 4, "tiers[0].batch_size"),
        ('[[tiers]]\nmodel = "openai/a"\nmode = "batch"\nbatch_discount = 1.5\n', 5,
         "tiers[0].batch_discount"),
        ('[[tiers]]\nmodel = "openai/a"\nmode = "async"\n', 4, "tiers[0].mode"),
        ('[[tiers]]\nmodel = "local/gemma"\nmode = "batch"\n', 4, "tiers[0].mode"),
        ('[[tiers]]\nmodel = "openai/a"\nmode = "batch"\nhedge = true\n[[tiers]]\nmodel = "b"\n',
         4, "tiers[0].mode"),
        ('[[tiers]]\nmodel = "a"\nhedge = true\n[[tiers]]\nmodel = "openai/b"\nmode = "batch"\n',
         4, "tiers[0].hedge"),
    ],
)  # fmt: skip
def test_bad_batch_settings_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str
) -> None:
    """Bad batch settings are refused naming file:line and field.

    Batch fields without batch mode, a discount over 1, an unknown mode, a local model in a
    batch, a hedging batch tier, a hedge onto a batch tier.
    """
    assert_policy_refused(tmp_path, body, line, field)


def test_a_ray_run_with_a_batch_tier_is_refused_naming_the_policy(tmp_path: Path) -> None:
    """Batches are followed from the run store on this machine: Ray is refused before any call."""
    path = tmp_path / "nightly.toml"
    path.write_text('task_type = "n"\n[[tiers]]\nmodel = "openai/a"\nmode = "batch"\n')
    policies = load_policies(str(path))
    job = Job(str(tmp_path / "tasks.jsonl"), str(path), executor="ray")
    with (
        Store(":memory:") as store,
        pytest.raises(ConfigError, match=r"nightly\.toml: batch tiers"),
    ):
        Runner(job, policies, store)


def test_a_ledger_that_cannot_be_written_stops_the_batch_before_it_is_made() -> None:
    """No ledger entry, no batch: the provider is never asked to run (and bill) it."""

    class FullBook(BatchBook):
        def add(self, file_id: str, model: str, custom_ids: Sequence[str]) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    api = MemoryBatches()
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, FullBook(store, "r1"), poll_s=(0.005, 0.02))
        answers = asyncio.run(ask_all(sender, 2))
    assert all(isinstance(a, BatchUnanswered) for a in answers)
    assert "disk is full" in str(answers[0])
    assert api.batches == {}


def test_a_task_with_a_deadline_does_not_wait_for_a_batch_it_cannot_afford() -> None:
    """A batch may take its whole batch_deadline_s: a task with 10 s left stops instead."""
    api = MemoryBatches()
    batch_tier = Tier("openai/cheap", batch=Batching(size=1, deadline_s=3600))
    with Store(":memory:") as store:
        settings = Settings(batcher=batcher(api, store), log=False)
        backend = ScriptedBackend({"first": ["not ok"]})
        plan = Plan([Tier("first"), batch_tier], validate=one_of(["ok"]), deadline_s=10.0)
        outcome = Cascade(plan, backend=backend, settings=settings).run({"id": "t", "input": "x"})
    assert outcome.status == "deadline"
    assert any("openai/cheap" in reason for reason in outcome.reasons), outcome.reasons
    assert api.calls == []
