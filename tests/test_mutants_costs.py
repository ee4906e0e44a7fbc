"""A call's worst cost and its answer cap, and secrets kept out of events, at their edges.

Found unpinned by mutation testing (scripts/mutants): each test states one behaviour where a
comparison, a key name or a shortcut decides it.
"""

from __future__ import annotations

from typing import cast

import pytest

from cascade.engine.costcap import Estimate, answer_tokens, fit
from cascade.secrets import REDACTED, SecretRedactor, redact, register_secrets, secret_values
from cascade.tokens import count_tokens
from cascade.types import Message, Price, Quote, Tier

MESSAGES: tuple[Message, ...] = (
    {"role": "user", "content": "Name the capital of France, in one word, and nothing else."},
)
QUOTE = Quote(Price(1.0, 2.0), max_output_tokens=1000)


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("cap", [1, 100])
def test_a_tiers_own_answer_cap_wins_over_the_models(key: str, cap: int) -> None:
    """A positive max_tokens (or max_completion_tokens) on the tier is the longest answer."""
    assert answer_tokens(Tier("m", params={key: cap}), QUOTE) == cap


@pytest.mark.parametrize("cap", [0, -5, "100", None])
def test_a_cap_that_is_not_a_positive_int_falls_back_to_the_models(cap: object) -> None:
    """A zero, negative or non-integer cap is no cap: the model's longest answer is assumed."""
    assert answer_tokens(Tier("m", params={"max_tokens": cap}), QUOTE) == 1000


def test_the_refusal_never_states_a_negative_amount_left() -> None:
    """A task already over its budget is told $0 left, not a negative sum."""
    estimate = Estimate("m", prompt_tokens=10, answer_tokens=20, cost_usd=0.5)
    assert estimate.explain(-0.25, 1.0).endswith(
        "more than the $0.000000 left of the task's $1.000000 budget"
    )


@pytest.mark.parametrize("output_price", [1.0, 2.0, 1e-6])
def test_a_lowered_cap_is_the_most_the_money_left_pays_for(output_price: float) -> None:
    """The cap's answer costs no more than is left after the prompt, and a little more would."""
    prompt = count_tokens(MESSAGES)
    longest = 10**13
    tier = Tier("m", price=Price(3.0, output_price))
    after_prompt = 0.0005
    left = prompt * 3.0 / 1e6 + after_prompt
    capped, _ = fit(tier, MESSAGES, left, lambda _m: Quote(tier.price or QUOTE.price, longest))
    assert capped is not None
    cap = capped.params["max_tokens"]
    assert cap < longest
    assert cap * output_price / 1e6 <= after_prompt * (1 + 1e-9)
    assert (cap + 2) * output_price / 1e6 > after_prompt


def test_a_dear_prompt_leaves_the_answer_only_what_it_did_not_spend() -> None:
    """At $1 a prompt token, the answer's cap is what is left after the prompt, to the token."""
    prompt = count_tokens(MESSAGES)
    tier = Tier("m", price=Price(1e6, 1.0))  # $1 a prompt token, $1e-6 an answer token
    left = prompt * 1.0 + 0.0005
    capped, _ = fit(tier, MESSAGES, left, lambda _m: Quote(Price(1e6, 1.0), 1000))
    assert capped is not None
    assert 495 <= capped.params["max_tokens"] <= 500


def test_a_tier_is_refused_when_one_models_prompt_alone_spends_what_is_left() -> None:
    """Two models: one's prompt costs all that is left, so the tier cannot promise an answer."""
    prompt = count_tokens(MESSAGES)
    assert prompt >= 16  # enough that the other model alone would be given a real cap
    quotes = {"a": Quote(Price(1e6, 0.0), 1000), "b": Quote(Price(0.0, 1e6), 1000)}
    tier = Tier("a", fallbacks=("b",))
    refused, estimate = fit(tier, MESSAGES, float(prompt), quotes.get)
    assert refused is None
    assert estimate is not None


def test_an_empty_secret_field_stays_empty() -> None:
    """An api_key set to "" is shown as unset, not as a redacted secret."""
    event = SecretRedactor({})(None, "info", {"api_key": "", "token": None, "password": "x"})
    assert event == {"api_key": "", "token": None, "password": REDACTED}


def test_a_secret_of_exactly_eight_characters_is_redacted() -> None:
    """The shortest secret scanned for, alone in a field or a string, is redacted."""
    redactor = SecretRedactor({}, extra=["hunter22"])
    assert redactor(None, "info", {"note": "hunter22", "parts": ["hunter22"]}) == {
        "note": REDACTED,
        "parts": [REDACTED],
    }
    assert redactor.text("hunter22") == REDACTED


def test_a_credential_headers_name_is_kept_and_its_value_redacted() -> None:
    """An Authorization header in an error keeps its name and scheme; only the value goes."""
    said = SecretRedactor({}).text("sent Authorization: Bearer abcdefghijklmnop1234 upstream")
    assert said == f"sent Authorization: Bearer {REDACTED} upstream"


def test_secrets_nested_in_lists_of_a_tiers_params_are_found() -> None:
    """Every string inside a list or tuple of a secret parameter is a secret."""
    found = secret_values({"api_keys": ["key-one-123456", ("key-two-123456",)]})
    assert sorted(found) == ["key-one-123456", "key-two-123456"]


def test_a_registered_secret_is_redacted_by_the_stores_redact() -> None:
    """After register_secrets, redact() removes that value, however the process began."""
    secret = "registered-for-test-mutants-costs"
    register_secrets([secret])
    assert redact(f"the gateway said {secret} was refused") == (
        f"the gateway said {REDACTED} was refused"
    )


def test_parameters_that_shape_the_request_hold_no_secrets() -> None:
    """The model, sampling settings and response format are not secrets; the api_key is."""
    params = {
        "model": "openai/gpt-4o-mini",
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
        "stop": ["\n\nDone"],
        "api_key": "sk-test-1234567890",
    }
    assert list(secret_values(params)) == ["sk-test-1234567890"]


def test_a_registered_secret_of_exactly_eight_characters_is_redacted() -> None:
    """The shortest secret register_secrets keeps is removed by redact()."""
    register_secrets(["rg8chars"])
    assert redact("key rg8chars refused") == f"key {REDACTED} refused"


def test_registering_values_that_are_not_text_is_harmless() -> None:
    """A policy value read as a number or left empty is skipped, not a crash."""
    register_secrets(cast("list[str]", [12345678, None]))
    assert redact("12345678 tokens") == "12345678 tokens"
