"""A provider batch's lines and ids at their edges, where mutation testing found them unpinned.

Each test states what a run sees: which error a line of an output or error file becomes and
the words it carries, and which parts of a request make its ``custom_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from cascade.backends.batch_api import answer_of, custom_id
from cascade.errors import BadRequest, BatchUnanswered, ProviderError, RateLimited
from cascade.types import Request, Response, Tier, Usage

_TIER = Tier("openai/m")
_REQUEST = Request("openai/m", ({"role": "user", "content": "q"},), "t1", {}, 60.0)


class _Api:
    """Only what answer_of asks of a batch API: the response of a 200 body."""

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """The body's text."""
        return Response(str(body["text"]), tier.model, Usage(1, 1), 0.0)


def _error(line: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        answer_of(_Api(), _TIER, _REQUEST, line)  # type: ignore[arg-type]
    return raised.value


def test_a_200_line_answers_with_its_body() -> None:
    """An item the provider answered gives the body's response."""
    line = {"custom_id": "c-1", "response": {"status_code": 200, "body": {"text": "ok"}}}
    assert answer_of(_Api(), _TIER, _REQUEST, line).text == "ok"  # type: ignore[arg-type]


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
