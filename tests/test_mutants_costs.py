"""A call's worst cost and its answer cap, and secrets kept out of events, at their edges.

Found unpinned by mutation testing (scripts/mutants): each test states one behaviour where a
comparison, a key name or a shortcut decides it.
"""

from __future__ import annotations

import uuid
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
    secret = f"registered-{uuid.uuid4().hex}"  # new to the process, whatever ran before
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
    secret = uuid.uuid4().hex[:8]  # new to the process, whatever ran before
    register_secrets([secret])
    assert redact(f"key {secret} refused") == f"key {REDACTED} refused"


def test_registering_values_that_are_not_text_is_harmless() -> None:
    """A policy value read as a number or left empty is skipped, not a crash."""
    register_secrets(cast("list[str]", [12345678, None]))
    assert redact("12345678 tokens") == "12345678 tokens"


def _per_token(input_usd: float, output_usd: float, longest: int) -> Quote:
    """A quote priced per token rather than per million, which keeps the sums exact."""
    return Quote(Price(input_usd * 1e6, output_usd * 1e6), longest)


def test_the_estimate_is_of_the_dearest_model_with_its_prompt_and_exact_cost() -> None:
    """The worst estimate names the dearest model, the prompt's tokens and their exact cost."""
    prompt = count_tokens(MESSAGES)
    quotes = {"cheap": _per_token(0.0, 1.0, 10), "dear": _per_token(2.0, 3.0, 100)}
    _, estimate = fit(Tier("cheap", fallbacks=("dear",)), MESSAGES, 1e9, quotes.get)
    assert estimate is not None
    assert (estimate.model, estimate.prompt_tokens, estimate.answer_tokens) == ("dear", prompt, 100)
    assert estimate.cost_usd == pytest.approx(prompt * 2.0 + 300.0, rel=1e-12)


def test_a_budget_of_exactly_the_worst_call_asks_it_unchanged() -> None:
    """When what is left equals the worst cost to the cent, the tier goes as it is."""
    quote = _per_token(0.0, 1.0, 100)
    tier = Tier("m")
    asked, estimate = fit(tier, MESSAGES, 100.0, lambda _m: quote)
    assert asked == tier
    assert estimate is not None
    assert estimate.cost_usd == 100.0


@pytest.mark.parametrize(("left", "cap"), [(16.0, 16), (15.0, None)])
def test_sixteen_answer_tokens_is_the_shortest_call_made(left: float, cap: int | None) -> None:
    """A budget for exactly 16 answer tokens is asked with max_tokens 16; 15 is refused."""
    asked, _ = fit(Tier("m"), MESSAGES, left, lambda _m: _per_token(0.0, 1.0, 1000))
    assert (asked.params["max_tokens"] if asked is not None else None) == cap


def test_a_lowered_cap_never_exceeds_a_models_longest_answer() -> None:
    """Two models: the cap is the least any can use, never above one model's own longest."""
    quotes = {"short": _per_token(0.0, 1e-9, 1000), "long": _per_token(0.0, 1.0, 8000)}
    asked, _ = fit(Tier("short", fallbacks=("long",)), MESSAGES, 2000.0, quotes.get)
    assert asked is not None
    assert asked.params["max_tokens"] == 1000


def test_only_secret_looking_environment_variables_are_redacted() -> None:
    """An API key from the environment is redacted; HOME's value, just as long, is not."""
    redactor = SecretRedactor({"HOME": "/home/someone", "OPENAI_API_KEY": "key-from-env-123"})
    said = redactor.text("HOME=/home/someone key=key-from-env-123")
    assert said == f"HOME=/home/someone key={REDACTED}"


def test_a_secret_that_contains_another_is_redacted_whole() -> None:
    """Of two secrets, one the start of the other, the longer goes whole: no tail is left."""
    redactor = SecretRedactor({"A_TOKEN": "swordfish1"}, extra=["swordfish1-admin"])
    assert redactor.text("login swordfish1-admin now") == f"login {REDACTED} now"


def test_an_environment_secret_of_exactly_eight_characters_is_redacted() -> None:
    """The shortest environment secret scanned for is redacted like any other."""
    assert SecretRedactor({"X_TOKEN": "tok8char"}).text("sent tok8char") == f"sent {REDACTED}"


def test_extra_values_that_are_not_text_are_skipped() -> None:
    """A number or None among the extra secrets is ignored, not a crash."""
    redactor = SecretRedactor({}, extra=cast("list[str]", [None, 12345678, "extra-secret-1"]))
    assert redactor.text("12345678 and extra-secret-1") == f"12345678 and {REDACTED}"


def test_the_redactor_says_how_many_environment_secrets_it_holds() -> None:
    """Its repr, seen in a processor chain, counts the secrets without showing them."""
    redactor = SecretRedactor({"A_TOKEN": "12345678", "B_KEY": "abcdefghij", "HOME": "/root/x/y"})
    assert repr(redactor) == "SecretRedactor(env_secrets=2)"
