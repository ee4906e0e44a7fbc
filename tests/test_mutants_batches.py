"""A provider batch's lines and ids at their edges, where mutation testing found them unpinned.

Each test states what a run sees: which error a line of an output or error file becomes and
the words it carries, and which parts of a request make its ``custom_id``.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Mapping
from typing import Any

import pytest

from cascade.backends import ScriptedBackend
from cascade.backends.batch_api import answer_of, custom_id
from cascade.backends.batcher import Batcher
from cascade.errors import BadRequest, BatchUnanswered, ProviderError, RateLimited
from cascade.steplog import StepLog, capture_steps
from cascade.store import Store
from cascade.store.batches import BatchBook
from cascade.types import Batching, Request, Response, Tier, Usage
from tests.test_batcher import TIER, MemoryBatches, ask_all, batcher, request

_TIER = Tier("openai/m")
_REQUEST = Request("openai/m", ({"role": "user", "content": "q"},), "t1", {}, 60.0)


class _Api:
    """Only what answer_of asks of a batch API: the response of a 200 body."""

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """The body's text."""
        return Response(str(body["text"]), request.model, Usage(1, 1), 0.0)


def _error(line: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        answer_of(_Api(), _TIER, _REQUEST, line)  # type: ignore[arg-type]
    return raised.value


def test_a_200_line_answers_with_its_body() -> None:
    """An item the provider answered gives the body's response."""
    line = {"custom_id": "c-1", "response": {"status_code": 200, "body": {"text": "ok"}}}
    assert answer_of(_Api(), _TIER, _REQUEST, line).text == "ok"  # type: ignore[arg-type]


def test_a_200_line_answers_the_request_it_was_made_for() -> None:
    """The answer is built for its own request: a fallback model's, say, not the tier's."""
    fallback = Request("openai/fallback", _REQUEST.messages, "t1", {}, 60.0)
    line = {"custom_id": "c-1", "response": {"status_code": 200, "body": {"text": "ok"}}}
    assert answer_of(_Api(), _TIER, fallback, line).model == "openai/fallback"  # type: ignore[arg-type]


def test_the_order_of_a_requests_params_does_not_change_its_custom_id() -> None:
    """The same params written in another order (a policy read again) give the same id."""
    one = Request("openai/m", _REQUEST.messages, "t1", {"temperature": 0, "top_p": 1}, 60.0)
    other = Request("openai/m", _REQUEST.messages, "t1", {"top_p": 1, "temperature": 0}, 60.0)
    assert custom_id("r1", one) == custom_id("r1", other)


def test_a_param_that_is_not_json_still_gives_a_stable_custom_id() -> None:
    """A parameter value JSON cannot hold is written as its text, the same every time."""
    when = datetime.date(2026, 1, 2)
    one = Request("openai/m", _REQUEST.messages, "t1", {"since": when}, 60.0)
    other = Request("openai/m", _REQUEST.messages, "t1", {"since": "2026-01-02"}, 60.0)
    assert custom_id("r1", one) == custom_id("r1", other)


def test_a_line_the_batcher_marked_unanswered_says_why() -> None:
    """A call its batch did not answer is a BatchUnanswered carrying the batcher's words."""
    error = _error({"custom_id": "c-1", "unanswered": "batch b1 ended expired"})
    assert type(error) is BatchUnanswered
    assert str(error) == "batch b1 ended expired"


def test_a_200_without_a_body_is_not_an_answer() -> None:
    """A 200 with no body is refused as a bad request, with no reason to give."""
    error = _error({"custom_id": "c-1", "response": {"status_code": 200}})
    assert type(error) is BadRequest
    assert str(error) == "batch item c-1: 200: no reason"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            {"custom_id": "c-1", "error": {"code": "expired", "message": "too late"}},
            "batch item c-1: not run: expired: too late",
        ),
        ({"custom_id": "c-1", "error": "plain words"}, "batch item c-1: not run: plain words"),
        ({"custom_id": "c-1"}, "batch item c-1: not run: no reason"),
        ({"custom_id": "c-1", "response": {"status_code": "x"}}, "batch item c-1: x: no reason"),
    ],
)
def test_an_item_that_was_not_run_is_unanswered(line: dict[str, Any], words: str) -> None:
    """A line with no HTTP status is a BatchUnanswered (asked again as an ordinary call)."""
    error = _error(line)
    assert type(error) is BatchUnanswered
    assert str(error) == words


def test_an_items_429_is_rate_limited_without_a_retry_after() -> None:
    """An item's 429 is a rate limit, with the body's code and message, and no Retry-After."""
    body = {"error": {"code": "rate_limit", "message": "slow down"}}
    error = _error({"custom_id": "c-1", "response": {"status_code": 429, "body": body}})
    assert isinstance(error, RateLimited)
    assert error.retry_after_s is None
    assert str(error) == "batch item c-1: 429: rate_limit: slow down"


def test_a_line_level_error_wins_over_the_bodys() -> None:
    """When the line itself names an error, that is the reason given."""
    line = {
        "custom_id": "c-1",
        "error": {"message": "the line's"},
        "response": {"status_code": 400, "body": {"error": {"message": "the body's"}}},
    }
    assert str(_error(line)) == "batch item c-1: 400: the line's"


def test_a_custom_id_is_c_and_32_hex_digits() -> None:
    """Ids are short enough for every provider and look the same for every request."""
    assert re.fullmatch(r"c-[0-9a-f]{32}", custom_id("r1", _REQUEST))


@pytest.mark.parametrize(
    "changed",
    [
        Request("openai/other", _REQUEST.messages, "t1", {}, 60.0),
        Request("openai/m", _REQUEST.messages, "t1", {}, 60.0, sample=1),
        Request("openai/m", _REQUEST.messages, "t1", {}, 60.0, confidence=True),
        Request("openai/m", _REQUEST.messages, "t1", {"temperature": 0.5}, 60.0),
        Request("openai/m", ({"role": "user", "content": "other"},), "t1", {}, 60.0),
    ],
    ids=["model", "sample", "confidence", "params", "messages"],
)
def test_every_part_of_a_request_changes_its_custom_id(changed: Request) -> None:
    """Two requests that differ in what is asked never share an id (nor an answer)."""
    assert custom_id("r1", changed) != custom_id("r1", _REQUEST)


def test_a_timeout_does_not_change_a_custom_id() -> None:
    """The same question with another time limit is the same item of a batch."""
    longer = Request("openai/m", _REQUEST.messages, "t1", {}, 120.0)
    assert custom_id("r1", longer) == custom_id("r1", _REQUEST)


class _WithBatches:
    """A backend with a batch API (the in-memory one of test_batcher)."""

    def __init__(self, api: MemoryBatches) -> None:
        self.api = api

    def batch_api(self, model: str) -> MemoryBatches:
        """The one API, for every model."""
        return self.api


def test_a_backend_without_a_batch_api_gets_no_batcher() -> None:
    """A replay or a scripted backend has no batch API: no batcher is made for it."""
    with Store(":memory:") as store:
        assert Batcher.for_backend(ScriptedBackend({}), BatchBook(store, "r1")) is None


def test_a_backends_batcher_sends_through_its_api_and_logs_to_its_log() -> None:
    """for_backend's batcher uses the backend's batch API and writes its events to the log."""
    api = MemoryBatches()
    with Store(":memory:") as store, capture_steps() as events:
        made = Batcher.for_backend(_WithBatches(api), BatchBook(store, "r1"), StepLog())
        assert made is not None
        answers = asyncio.run(ask_all(made, 3))
    assert [a.text for a in answers if isinstance(a, Response)] == ["ok"] * 3
    assert [e["what"] for e in events if e["event"] == "cascade.batch"] == ["submitted", "ended"]


def test_a_call_waiting_for_an_earlier_runs_batch_is_taken_up_once() -> None:
    """A request an earlier run submitted is waited for, and its task is told so once."""
    api = MemoryBatches()
    with Store(":memory:") as store:

        async def resumed() -> tuple[str, list[bool]]:
            await batcher(api, store).complete(TIER, request(0))
            first = BatchBook(store, "r1").all()[0]
            BatchBook(store, "r1").ended(first.file_id, "submitted")  # not seen to end
            again = batcher(api, store)
            answer = await again.complete(TIER, request(0))
            return answer.text, [again.took_up("t0"), again.took_up("t0"), again.took_up("t1")]

        text, taken = asyncio.run(resumed())
    assert text == "ok"
    assert taken == [True, False, False]


def test_closing_a_batcher_stops_the_calls_that_wait() -> None:
    """aclose() cancels every call still waiting for a batch; nothing is left running."""
    api = MemoryBatches()
    slow = Tier("openai/cheap", batch=Batching(size=10, wait_s=60.0), retries=0)
    with Store(":memory:") as store:

        async def closed() -> tuple[bool, int]:
            sender = batcher(api, store)
            waiting = asyncio.ensure_future(sender.complete(slow, request(0)))
            await asyncio.sleep(0.01)
            assert sender.waiting == 1
            await sender.aclose()
            running = asyncio.all_tasks() - {asyncio.current_task(), waiting}
            assert running == set()  # the gathering's timer is over, not only told to stop
            try:
                await waiting
            except asyncio.CancelledError:
                return True, len(api.calls)
            return False, len(api.calls)

        cancelled, calls = asyncio.run(closed())
    assert cancelled
    assert calls == 0  # the batch was never uploaded


@pytest.mark.parametrize(
    ("status", "kind"), [(502, "ServerError"), (400, "BadRequest"), (200, "BadRequest")]
)
def test_a_line_whose_body_is_text_is_the_error_its_status_says(status: int, kind: str) -> None:
    """A gateway's plain-text body ("Bad gateway") is the error its status says, its text said."""
    line = {"custom_id": "c-1", "response": {"status_code": status, "body": "Bad gateway"}}
    error = _error(line)
    assert type(error).__name__ == kind
    assert "Bad gateway" in str(error)
