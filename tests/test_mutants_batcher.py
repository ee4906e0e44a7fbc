"""The batcher at the edges a run sees, where mutation testing found them unpinned (issue 34).

Each test states what a user of a batch tier sees: how often and how soon a batch is polled,
which ids the provider is sent, how a call waits for a batch it is already in, what a resumed
run takes up, and what a call its batch did not answer is told.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from cascade.backends.batch_api import BatchView, custom_id
from cascade.backends.batcher import Batcher
from cascade.errors import AuthenticationFailed, BatchUnanswered, ServerError
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.store.batches import BatchBook
from cascade.types import Batching, Request, Response, Tier, Usage
from tests.test_batcher import TIER, MemoryBatches, ask_all, batcher, request

ONE = Tier("openai/cheap", batch=Batching(size=1), retries=0)
"""A batch tier whose every call is a batch of its own, sent at once."""


class BusyBatches(MemoryBatches):
    """MemoryBatches whose batches stay in progress for the first ``busy`` polls."""

    def __init__(self, busy: int = 0) -> None:
        super().__init__()
        self.busy = busy

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """In progress while busy, then as MemoryBatches."""
        if self.busy > 0:
            self.busy -= 1
            self.calls.append("retrieve")
            return self.batches[batch_id]
        return await super().retrieve(tier, batch_id)


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every asyncio.sleep asked for, in order; none of them waits."""
    asked: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        asked.append(delay)
        return await real(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return asked


def ids_sent(api: MemoryBatches) -> list[str]:
    """The custom_id of every line of every input file uploaded, in order."""
    return [
        str(line["custom_id"])
        for name, lines in api.files.items()
        if name.startswith("file-")
        for line in lines
    ]


def test_a_batch_is_polled_after_the_first_pause_doubled_up_to_the_longest(
    pauses: list[float],
) -> None:
    """poll_s = (first, longest): the pauses between polls double from the first to the longest."""
    api = BusyBatches(busy=4)
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, BatchBook(store, "r1"), poll_s=(0.01, 0.05))
        answer = asyncio.run(sender.complete(ONE, request(0)))
    assert answer.text == "ok"
    assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05], abs=1e-12)
    assert api.calls.count("retrieve") == 5


def test_a_batcher_told_not_to_pause_polls_at_once(pauses: list[float]) -> None:
    """poll_s = (0, 0): every poll follows the last without a pause."""
    api = BusyBatches(busy=3)
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, BatchBook(store, "r1"), poll_s=(0.0, 0.0))
        answer = asyncio.run(sender.complete(ONE, request(0)))
    assert answer.text == "ok"
    assert pauses == [0.0, 0.0, 0.0, 0.0]


def test_a_batcher_polls_first_after_a_fifth_of_a_second_and_at_most_every_30_s(
    pauses: list[float],
) -> None:
    """By default a batch is polled after 0.2 s, then 0.4, 0.8 ... and at least every 30 s."""
    api = BusyBatches(busy=8)
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, BatchBook(store, "r1"))
        answer = asyncio.run(sender.complete(ONE, request(0)))
    assert answer.text == "ok"
    expected = [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0]
    assert pauses == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("faults", "answered"), [(4, True), (5, False)])
def test_a_batcher_tries_an_upload_five_times_by_default(faults: int, answered: bool) -> None:
    """Four transient upload errors are waited out; the fifth ends the batch unsubmitted."""
    api = MemoryBatches()
    api.faults = {"upload": [ServerError("503") for _ in range(faults)]}
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, BatchBook(store, "r1"), poll_s=(0.001, 0.002))

        async def ask() -> Response | BaseException:
            (got,) = await asyncio.gather(sender.complete(ONE, request(0)), return_exceptions=True)
            return got

        got = asyncio.run(ask())
    assert api.calls.count("upload") == 5
    if answered:
        assert isinstance(got, Response)
    else:
        assert isinstance(got, BatchUnanswered)
        assert "could not be submitted: 503" in str(got)


def test_a_model_without_a_batch_api_is_refused_naming_it_and_others_go_on() -> None:
    """The batch API is asked for the tier's model: one without is named, one with is answered."""
    api = MemoryBatches()
    apis = {"openai/cheap": api}
    other = Tier("openai/other", batch=Batching(size=1), retries=0)
    with Store(":memory:") as store:
        sender = Batcher(apis.get, BatchBook(store, "r1"), poll_s=(0.001, 0.002))
        with pytest.raises(
            BatchUnanswered, match=r"^the backend has no batch API for openai/other$"
        ):
            asyncio.run(sender.complete(other, request(0)))
        answer = asyncio.run(sender.complete(ONE, request(0)))
    assert answer.text == "ok"
    assert api.calls.count("upload") == 1


def test_the_ids_a_provider_is_sent_are_the_runs_own() -> None:
    """A request's custom_id is its run's: two runs asking the same send two ids."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        for run in ("r1", "r2"):
            sender = Batcher(lambda _m: api, BatchBook(store, run), poll_s=(0.001, 0.002))
            assert asyncio.run(sender.complete(ONE, request(0))).text == "ok"
    assert ids_sent(api) == [custom_id("r1", request(0)), custom_id("r2", request(0))]


def test_the_same_request_asked_twice_at_once_is_sent_once_and_answers_both() -> None:
    """A call that comes while the same request waits for its batch waits for that one."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def twice() -> list[Response]:
            calls = [sender.complete(TIER, request(0)) for _ in range(2)]
            return await asyncio.wait_for(asyncio.gather(*calls), 5.0)

        answers = asyncio.run(twice())
        assert sender.waiting == 0
    assert [a.text for a in answers] == ["ok", "ok"]
    assert ids_sent(api) == [custom_id("r1", request(0))]


def test_a_batch_uploaded_but_never_made_is_taken_up_by_the_next_run() -> None:
    """A run that died between upload and create: the next one makes that batch, and says so."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        api.faults = {"create": [AuthenticationFailed("401: bad key")]}
        with pytest.raises(BatchUnanswered, match="could not be followed"):
            asyncio.run(asyncio.wait_for(batcher(api, store).complete(ONE, request(0)), 5.0))
        (left,) = BatchBook(store, "r1").all()
        assert left.state == "uploaded"

        async def resumed() -> tuple[str, int, bool, bool]:
            again = batcher(api, store)
            answer = await asyncio.wait_for(again.complete(ONE, request(0)), 5.0)
            return answer.text, again.waiting, again.took_up("t0"), again.took_up("t0")

        text, waiting, first, second = asyncio.run(resumed())
        (ended,) = BatchBook(store, "r1").all()
    assert (text, waiting, first, second) == ("ok", 0, True, False)
    assert api.calls.count("upload") == 1
    assert len(api.batches) == 1
    assert ended.state == "completed"


class NamingBatches(MemoryBatches):
    """MemoryBatches noting the tier of each request to it, answering each request by its task."""

    def __init__(self) -> None:
        super().__init__()
        self.uploaded_for: dict[str, Tier] = {}
        self.tiers: list[tuple[str, Tier]] = []

    async def upload(self, tier: Tier, content: bytes) -> str:
        """Keep the file and the tier it was uploaded for."""
        self.tiers.append(("upload", tier))
        file_id = await super().upload(tier, content)
        self.uploaded_for[file_id] = tier
        return file_id

    async def create(self, tier: Tier, file_id: str) -> BatchView:
        """As MemoryBatches, noting the tier."""
        self.tiers.append(("create", tier))
        return await super().create(tier, file_id)

    async def find(self, tier: Tier, file_id: str) -> BatchView | None:
        """As MemoryBatches, noting the tier."""
        self.tiers.append(("find", tier))
        return await super().find(tier, file_id)

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """As MemoryBatches, noting the tier."""
        self.tiers.append(("retrieve", tier))
        return await super().retrieve(tier, batch_id)

    async def content(self, tier: Tier, file_id: str) -> bytes:
        """As MemoryBatches, noting the tier."""
        self.tiers.append(("content", tier))
        return await super().content(tier, file_id)

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """The body's text, naming the task and model of the request it answers."""
        return Response(f"{body['text']} {request.task_id}", request.model, Usage(10, 2), 0.5e-5)


def file_sizes(api: MemoryBatches) -> list[int]:
    """How many lines each uploaded input file has, in order."""
    return [len(lines) for name, lines in api.files.items() if name.startswith("file-")]


def test_an_answer_is_built_for_the_request_it_answers() -> None:
    """Each call of a batch gets the answer built for its own request, not a neighbour's."""
    api = NamingBatches()
    with Store(":memory:") as store:
        answers = asyncio.run(ask_all(batcher(api, store), 3))
    assert [a.text for a in answers if isinstance(a, Response)] == ["ok t0", "ok t1", "ok t2"]


def test_a_batch_goes_as_soon_as_it_is_full_and_holds_no_more_than_its_size() -> None:
    """Two calls fill a batch of two, sent without waiting wait_s; a third starts the next."""
    api = MemoryBatches()
    pair = Tier("openai/cheap", batch=Batching(size=2, wait_s=0.3), retries=0)
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def ask(first: int, count: int) -> float:
            start = time.monotonic()
            calls = [sender.complete(pair, request(n)) for n in range(first, first + count)]
            await asyncio.wait_for(asyncio.gather(*calls), 5.0)
            return time.monotonic() - start

        took = asyncio.run(ask(0, 2))
        assert file_sizes(api) == [2]
        assert took < 0.25
        asyncio.run(ask(2, 3))
    assert file_sizes(api) == [2, 2, 1]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (Tier("openai/cheap", batch=Batching(size=2)), Tier("openai/dear", batch=Batching(size=2))),
        (
            Tier("openai/cheap", params={"api_base": "http://a"}, batch=Batching(size=2)),
            Tier("openai/cheap", params={"api_base": "http://b"}, batch=Batching(size=2)),
        ),
    ],
    ids=["model", "endpoint"],
)
def test_calls_for_another_model_or_endpoint_go_in_a_batch_of_their_own(
    one: Tier, other: Tier
) -> None:
    """Each batch holds one tier's calls and is uploaded for that tier."""
    api = NamingBatches()
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def ask() -> list[Response]:
            calls = [sender.complete(tier, request(n)) for n, tier in enumerate([one, other] * 2)]
            return await asyncio.wait_for(asyncio.gather(*calls), 5.0)

        answers = asyncio.run(ask())
    assert [a.text for a in answers] == ["ok t0", "ok t1", "ok t2", "ok t3"]
    assert list(api.uploaded_for.values()) == [one, other]
    assert file_sizes(api) == [2, 2]
    assert [line["custom_id"] for line in api.files["file-1"]] == [
        custom_id("r1", request(0)),
        custom_id("r1", request(2)),
    ]


def test_a_call_cut_off_while_it_waits_and_asked_again_is_not_sent_twice() -> None:
    """A task cancelled while its call gathers, asked again, waits for the same batch item."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def cut_then_again() -> str:
            first = asyncio.ensure_future(sender.complete(TIER, request(0)))
            await asyncio.sleep(0.01)
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
            answer = await asyncio.wait_for(sender.complete(TIER, request(0)), 5.0)
            return answer.text

        assert asyncio.run(cut_then_again()) == "ok"
        assert sender.waiting == 0
    assert ids_sent(api) == [custom_id("r1", request(0))]


def test_a_batch_run_leaves_nothing_for_the_event_loop_to_report() -> None:
    """Batches gathered, sent, polled and ended: no error reaches the loop's exception handler."""
    api = MemoryBatches()
    reported: list[dict[str, Any]] = []
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def run() -> None:
            asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: reported.append(ctx))
            await asyncio.wait_for(ask_all(sender, 5), 5.0)
            await asyncio.sleep(0.05)
            await sender.aclose()

        asyncio.run(run())
    assert reported == []


def test_an_earlier_runs_batch_is_followed_once_for_all_its_calls() -> None:
    """A resumed run's calls of one earlier batch wait for it together: one poll, one download."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        asyncio.run(ask_all(batcher(api, store), 3))
        (first,) = BatchBook(store, "r1").all()
        BatchBook(store, "r1").ended(first.file_id, "submitted")  # not seen to end
        api.calls.clear()

        async def resumed() -> tuple[list[Response | BaseException], int, list[bool]]:
            again = batcher(api, store)
            answers = await asyncio.wait_for(ask_all(again, 3), 5.0)
            return answers, again.waiting, [again.took_up(f"t{n}") for n in range(3)]

        answers, waiting, taken = asyncio.run(resumed())
    assert [a.text for a in answers if isinstance(a, Response)] == ["ok"] * 3
    assert waiting == 0
    assert taken == [True, True, True]
    assert api.calls == ["retrieve", "content"]


def batch_events(events: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """The batcher's events, each with ``what`` and the given keys only."""
    return [
        {key: event.get(key) for key in ("what", *keys)}
        for event in events
        if event.get("event") == "cascade.batch"
    ]


def test_a_batchs_events_say_what_was_sent_and_what_came_back() -> None:
    """The log names the model, batch, run, file and counts of a batch sent and answered."""
    api = MemoryBatches()
    keys = ("model", "batch_id", "run_id", "file_id", "items", "state", "answered", "why")
    with Store(":memory:") as store, capture_steps() as events:
        sender = Batcher(
            lambda _m: api, BatchBook(store, "r1"), log=StepLog(), poll_s=(0.001, 0.002)
        )
        asyncio.run(ask_all(sender, 3))
    base = {"model": "openai/cheap", "batch_id": "batch-2", "run_id": "r1"}
    assert batch_events(events, *keys) == [
        {"what": "submitted", **base, "file_id": "file-1", "items": 3, "state": None,
         "answered": None, "why": None},
        {"what": "ended", **base, "file_id": None, "items": 3, "state": "completed",
         "answered": 3, "why": None},
    ]  # fmt: skip


class LateBatches(NamingBatches):
    """A batch that ends only when cancelled: its first request run, the second failed, no third.

    ``ends_at_cancel``: the cancel's reply says it ended already (else it ends at the next poll).
    """

    def __init__(self, *, ends_at_cancel: bool = False) -> None:
        super().__init__()
        self.ends_at_cancel = ends_at_cancel
        self.cancelled_at: dict[str, float] = {}

    def _ended(self, batch_id: str) -> BatchView:
        view = self.batches[batch_id]
        ids = [item["custom_id"] for item in self.files[view.input_file_id]]
        self.files[f"out-{batch_id}"] = [
            {"custom_id": ids[0], "response": {"status_code": 200, "body": {"text": "ok"}}}
        ]
        self.files[f"err-{batch_id}"] = [
            {"custom_id": ids[1], "response": {"status_code": 500, "body": {"error": "boom"}}},
            {"custom_id": ids[2], "error": {"code": "batch_cancelled", "message": "cancelled"}},
        ]
        return BatchView(batch_id, "cancelled", view.input_file_id, f"out-{batch_id}",
                         f"err-{batch_id}")  # fmt: skip

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """In progress until cancelled; then cancelled, with an output and an error file."""
        self.calls.append("retrieve")
        self.tiers.append(("retrieve", tier))
        if batch_id not in self.cancelled_at:
            return self.batches[batch_id]
        return self._ended(batch_id)

    async def cancel(self, tier: Tier, batch_id: str) -> BatchView:
        """Cancelling (or cancelled, ``ends_at_cancel``); noting the wall-clock time."""
        self.calls.append("cancel")
        self.tiers.append(("cancel", tier))
        self.cancelled_at[batch_id] = time.time()
        if self.ends_at_cancel:
            return self._ended(batch_id)
        return BatchView(batch_id, "cancelling", self.batches[batch_id].input_file_id)


def test_a_batch_past_its_deadline_is_cancelled_once_and_keeps_what_it_ran() -> None:
    """A batch cancelled at its deadline keeps what it ran; what it did not run says why."""
    api = LateBatches()
    late = Tier("openai/cheap", batch=Batching(size=3, deadline_s=0.2), retries=0)
    with Store(":memory:") as store, capture_steps() as events:
        apis = {"openai/cheap": api}.get
        sender = Batcher(apis, BatchBook(store, "r1"), log=StepLog(), poll_s=(0.01, 0.05))

        async def ask() -> tuple[list[Response | BaseException], float]:
            start = time.monotonic()
            calls = [sender.complete(late, request(n)) for n in range(3)]
            answers = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5.0)
            return answers, time.monotonic() - start

        (done, failed, unrun), took = asyncio.run(ask())
        (ledger,) = BatchBook(store, "r1").all()
    why = "batch batch-2 had not answered it within batch_deadline_s = 0.2"
    assert isinstance(done, Response)
    assert done.text == "ok t0"
    assert isinstance(failed, ServerError)
    assert "500: boom" in str(failed)
    assert isinstance(unrun, BatchUnanswered)
    assert str(unrun) == why
    assert api.calls.count("cancel") == 1
    assert [tier for _, tier in api.tiers] == [late] * len(api.tiers)
    assert [name for name, _ in api.tiers if name != "retrieve"] == [
        "upload",
        "create",
        "cancel",
        "content",
        "content",
    ]
    assert 0.2 <= took < 3.0
    assert ledger.state == "cancelled"
    keys = ("model", "batch_id", "why", "state", "items", "answered")
    base = {"model": "openai/cheap", "batch_id": "batch-2", "why": why}
    assert batch_events(events, *keys)[1:] == [
        {"what": "cancel", **base, "state": None, "items": None, "answered": None},
        {"what": "ended", **base, "state": "cancelled", "items": 3, "answered": 1},
    ]


def test_a_call_that_comes_after_its_earlier_batch_ended_takes_the_kept_answer() -> None:
    """Of an earlier run's batch of three, a resumed run asks two, then the third: no new poll."""
    api = NamingBatches()
    with Store(":memory:") as store:
        asyncio.run(ask_all(batcher(api, store), 3))
        (first,) = BatchBook(store, "r1").all()
        BatchBook(store, "r1").ended(first.file_id, "submitted")  # not seen to end
        api.calls.clear()

        async def resumed() -> list[str]:
            again = batcher(api, store)
            calls = [again.complete(TIER, request(n)) for n in range(2)]
            answers = list(await asyncio.wait_for(asyncio.gather(*calls), 5.0))
            answers.append(await asyncio.wait_for(again.complete(TIER, request(2)), 5.0))
            return [answer.text for answer in answers]

        texts = asyncio.run(resumed())
    assert texts == ["ok t0", "ok t1", "ok t2"]
    assert api.calls == ["retrieve", "content"]


def test_a_request_asked_again_after_its_batch_answered_is_answered_again() -> None:
    """The same request asked again in the same run, after its answer was given, gets it again."""
    api = MemoryBatches()
    with Store(":memory:") as store:
        sender = batcher(api, store)

        async def twice() -> list[str]:
            first = await asyncio.wait_for(sender.complete(TIER, request(0)), 5.0)
            again = await asyncio.wait_for(sender.complete(TIER, request(0)), 5.0)
            return [first.text, again.text]

        assert asyncio.run(twice()) == ["ok", "ok"]
    assert api.calls.count("upload") == 1


@pytest.mark.parametrize(
    ("fault", "state", "why"),
    [
        ("upload", "unsubmitted", "the batch could not be submitted: 401: bad key"),
        ("create", "unwatched", "the batch could not be followed: 401: bad key"),
    ],
)
def test_a_batch_that_failed_on_the_way_is_logged_as_ended_saying_why(
    fault: str, state: str, why: str
) -> None:
    """An upload or create refused: the batch's end is logged with its state and reason."""
    api = MemoryBatches()
    api.faults = {fault: [AuthenticationFailed("401: bad key")]}
    with Store(":memory:") as store, capture_steps() as events:
        sender = Batcher(
            lambda _m: api, BatchBook(store, "r1"), log=StepLog(), poll_s=(0.001, 0.002)
        )
        answers = asyncio.run(asyncio.wait_for(ask_all(sender, 2), 5.0))
    assert [str(answer) for answer in answers] == [why, why]
    assert batch_events(events, "batch_id", "state", "items", "answered", "why") == [
        {"what": "ended", "batch_id": "", "state": state, "items": 2, "answered": 0, "why": why}
    ]


def test_a_ledger_failure_is_told_with_its_kind() -> None:
    """An error that is not the provider's is named by its type as well as its words."""

    class FullBook(BatchBook):
        def add(self, file_id: str, model: str, custom_ids: Sequence[str]) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    api = MemoryBatches()
    with Store(":memory:") as store:
        sender = Batcher(lambda _m: api, FullBook(store, "r1"), poll_s=(0.001, 0.002))
        with pytest.raises(BatchUnanswered) as raised:
            asyncio.run(sender.complete(ONE, request(0)))
    assert str(raised.value) == (
        "the batch could not be submitted: OperationalError: database or disk is full"
    )


def test_a_fresh_batch_is_uploaded_made_polled_and_downloaded_and_kept_in_the_ledger() -> None:
    """A new batch asks the provider nothing more; the ledger keeps its id and how it ended."""
    api = NamingBatches()
    with Store(":memory:") as store:
        asyncio.run(ask_all(batcher(api, store), 3))
        (ledger,) = BatchBook(store, "r1").all()
    assert api.calls == ["upload", "create", "retrieve", "content"]
    assert [tier for _, tier in api.tiers] == [TIER] * len(api.tiers)
    assert (ledger.batch_id, ledger.state, ledger.items) == ("batch-2", "completed", 3)


def test_a_batch_made_by_a_run_that_died_before_hearing_so_is_found_not_made_again() -> None:
    """The create's reply was lost and the run stopped; the batch ended meanwhile: found, read."""
    api = NamingBatches()
    api.create_then_fail = True
    with Store(":memory:") as store:
        died = Batcher(lambda _m: api, BatchBook(store, "r1"), poll_s=(0.001, 0.002), retries=0)
        with pytest.raises(BatchUnanswered, match="502 after the batch was made"):
            asyncio.run(asyncio.wait_for(died.complete(ONE, request(0)), 5.0))
        (made,) = api.batches
        asyncio.run(api.retrieve(ONE, made))  # it ended while no run was watching
        api.calls.clear()
        api.tiers.clear()

        async def resumed() -> tuple[str, bool]:
            again = batcher(api, store)
            answer = await asyncio.wait_for(again.complete(ONE, request(0)), 5.0)
            return answer.text, again.took_up("t0")

        answer, taken = asyncio.run(resumed())
        (ledger,) = BatchBook(store, "r1").all()
    assert (answer, taken) == ("ok t0", True)
    assert api.calls == ["find", "content"]
    assert api.tiers == [("find", ONE), ("content", ONE)]
    assert len(api.batches) == 1
    assert (ledger.batch_id, ledger.state) == (made, "completed")


class ExpiringBatches(MemoryBatches):
    """Batches that expire at the first poll, having run nothing."""

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """Expired, with no output or error file."""
        self.calls.append("retrieve")
        return BatchView(batch_id, "expired", self.batches[batch_id].input_file_id)


def test_an_expired_batch_tells_each_call_how_it_ended() -> None:
    """Every call of a batch that expired unanswered is told so, and so is the log."""
    api = ExpiringBatches()
    why = "batch batch-2 ended expired without answering it"
    with Store(":memory:") as store, capture_steps() as events:
        sender = Batcher(
            lambda _m: api, BatchBook(store, "r1"), log=StepLog(), poll_s=(0.001, 0.002)
        )
        answers = asyncio.run(asyncio.wait_for(ask_all(sender, 3), 5.0))
        (ledger,) = BatchBook(store, "r1").all()
    assert all(isinstance(answer, BatchUnanswered) for answer in answers)
    assert [str(answer) for answer in answers] == [why] * 3
    assert ledger.state == "expired"
    assert batch_events(events, "batch_id", "state", "items", "answered", "why")[1:] == [
        {"what": "ended", "batch_id": "batch-2", "state": "expired", "items": 3, "answered": 0,
         "why": why}
    ]  # fmt: skip


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A wall clock at 1000 s that only asyncio.sleep moves; every sleep asked, in order."""
    now = [1000.0]
    asked: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        asked.append(delay)
        now[0] += delay
        return await real(0, result)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    monkeypatch.setattr(time, "time", lambda: now[0])
    return asked


@pytest.mark.parametrize("ends_at_cancel", [False, True])
def test_a_batch_is_cancelled_as_its_deadline_comes_and_not_polled_past_it(
    clock: list[float], ends_at_cancel: bool
) -> None:
    """The last poll before the deadline waits only until it; the batch is cancelled right then."""
    api = LateBatches(ends_at_cancel=ends_at_cancel)
    late = Tier("openai/cheap", batch=Batching(size=3, deadline_s=1.0), retries=0)
    with Store(":memory:") as store:
        sender = Batcher({"openai/cheap": api}.get, BatchBook(store, "r1"), poll_s=(0.25, 0.5))
        answers = asyncio.run(asyncio.wait_for(ask_all_of(sender, late, 3), 5.0))
    assert [type(answer).__name__ for answer in answers] == [
        "Response",
        "ServerError",
        "BatchUnanswered",
    ]
    assert api.cancelled_at == {"batch-2": 1001.0}
    after = [] if ends_at_cancel else [0.5]
    assert clock == [0.25, 0.5, 0.25, *after]
    assert api.calls.count("retrieve") == 3 + len(after)


async def ask_all_of(sender: Batcher, tier: Tier, count: int) -> list[Response | BaseException]:
    """``count`` tasks' requests to ``tier`` at once."""
    calls = [sender.complete(tier, request(n)) for n in range(count)]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_a_create_whose_reply_was_lost_is_looked_up_for_its_own_tier() -> None:
    """The batch the lost create made is looked for at the tier's endpoint, and followed there."""
    api = NamingBatches()
    api.create_then_fail = True
    with Store(":memory:") as store:
        answers = asyncio.run(asyncio.wait_for(ask_all(batcher(api, store), 3), 5.0))
    assert [a.text for a in answers if isinstance(a, Response)] == ["ok t0", "ok t1", "ok t2"]
    assert api.tiers == [
        ("upload", TIER), ("create", TIER), ("find", TIER), ("retrieve", TIER), ("content", TIER)
    ]  # fmt: skip
    assert len(api.batches) == 1
