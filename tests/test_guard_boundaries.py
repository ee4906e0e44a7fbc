"""Guard lines at their boundaries: the value exactly at a limit, the precedence of two sources.

Each test checks what a user sees at the edge: a Retry-After equal to the longest wait, an
item's HTTP 500, a secret inside a list, a tier dearer than the price map, a tier that fixes
its answer's length, and a task routed straight to its top tier after a drift alarm.
"""

from __future__ import annotations

from typing import Any

import pytest

from cascade import Cascade, Plan, RetryPolicy, Settings, Status, Task, Tier
from cascade.backends import LiteLLMBackend, Request, ScriptedBackend
from cascade.backends.batch_api import answer_of
from cascade.backends.litellm import LiteLLMBatches
from cascade.engine.costcap import fit
from cascade.errors import BadRequest, ProviderError, RateLimited, ServerError
from cascade.secrets import REDACTED, SecretRedactor
from cascade.tokens import count_tokens
from cascade.types import Message, Price, Quote
from tests.helpers import says_ok


def test_a_retry_after_of_exactly_max_wait_s_is_waited_out() -> None:
    """Retry-After equal to max_wait_s is waited; a hair longer moves on to the next model."""
    retry = RetryPolicy(base_s=0.5, max_wait_s=30.0, jitter=0.0)
    assert retry.wait_s(0, retry_after_s=30.0) == 30.0
    assert retry.wait_s(0, retry_after_s=30.001) is None


@pytest.mark.parametrize(
    ("status", "error", "transient"),
    [
        (400, BadRequest, False),
        (429, RateLimited, True),
        (499, BadRequest, False),
        (500, ServerError, True),
        (503, ServerError, True),
    ],
)
def test_a_batch_items_http_status_decides_whether_it_is_asked_again(
    status: int, error: type[ProviderError], transient: bool
) -> None:
    """An item's 500 is a transient server error (asked again), a 4xx a permanent bad request."""
    api = LiteLLMBatches(LiteLLMBackend())
    line = {
        "custom_id": "c-1",
        "response": {"status_code": status, "body": {"error": {"message": "went wrong"}}},
    }
    with pytest.raises(error) as raised:
        answer_of(api, Tier("openai/m"), Request("openai/m", ()), line)
    assert raised.value.transient is transient
    assert f"c-1: {status}: went wrong" in str(raised.value)


def test_secrets_inside_lists_of_a_log_event_are_redacted() -> None:
    """A key in a list of strings, of mappings, or of tuples never reaches the log."""
    env_secret = "env-secret-value-0123456789"
    redactor = SecretRedactor({"PROVIDER_API_KEY": env_secret})
    event: dict[str, Any] = {
        "event": "cascade.step",
        "reasons": ["Incorrect API key provided: sk-proj-abcdefghijklmnop", "plain reason"],
        "headers": [{"authorization": "Bearer abcdefghijklmnop"}, {"accept": "json"}],
        "nested": [("said", f"the key is {env_secret}")],
    }
    cleaned = redactor(None, "info", event)
    assert cleaned["reasons"] == [f"Incorrect API key provided: {REDACTED}", "plain reason"]
    assert cleaned["headers"] == [{"authorization": REDACTED}, {"accept": "json"}]
    assert cleaned["nested"] == [["said", f"the key is {REDACTED}"]]
    assert "abcdefghijklmnop" not in repr(cleaned)
    assert env_secret not in repr(cleaned)


MESSAGES: tuple[Message, ...] = ({"role": "user", "content": "hello there"},)
LISTED = Quote(Price(1.0, 2.0), max_output_tokens=1000)
"""The price map's quote: ten times cheaper than the tier's own price below."""


def test_a_tier_priced_dearer_than_the_price_map_is_capped_at_its_own_price() -> None:
    """The tier's price wins over the backend's quote: its answer is capped to what is left."""
    tier = Tier("m", price=Price(10.0, 20.0))
    left = 0.01  # the listed price's worst call (about $0.002) fits; the tier's ($0.02) does not
    capped, estimate = fit(tier, MESSAGES, left, lambda _model: LISTED)
    prompt = count_tokens(MESSAGES)
    assert estimate is not None
    assert estimate.cost_usd == pytest.approx((prompt * 10.0 + 1000 * 20.0) / 1e6)
    assert capped is not None
    assert capped.params["max_tokens"] == int((left - prompt * 10.0 / 1e6) * 1e6 / 20.0)


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_a_tier_that_fixes_its_answer_length_is_refused_not_shortened(key: str) -> None:
    """A fixed max_tokens over what the task has left: the call is refused, as documented."""
    tier = Tier("m", params={key: 1000}, price=Price(1.0, 2.0))
    refused, estimate = fit(tier, MESSAGES, 0.001, lambda _model: LISTED)
    assert refused is None
    assert estimate is not None
    assert estimate.answer_tokens == 1000
    assert estimate.explain(0.001, 0.01).startswith("m not asked: the call could cost up to")


def test_after_an_escalate_alarm_a_task_routed_to_its_top_tier_still_asks_it() -> None:
    """One tier higher never runs past the last: a task already at the top is asked there."""
    plan = Plan(
        ["small", "big"],
        says_ok,
        route=lambda task, _messages: [1] if task.input == "hard" else [0, 1],
    )
    backend = ScriptedBackend({"small": ["ok"], "big": ["ok"]})
    cascade = Cascade(plan.one_tier_higher(), settings=Settings(backend=backend, log=False))
    outcome = cascade.run(Task("t1", input="hard"))
    assert outcome.status is Status.ACCEPTED
    assert [request.model for request in backend.calls] == ["big"]
    easy = cascade.run(Task("t2", input="easy"))
    assert easy.status is Status.ACCEPTED
    assert [request.model for request in backend.calls] == ["big", "big"]
