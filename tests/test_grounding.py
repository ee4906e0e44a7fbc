"""grounded(), one_of() and confidence(): cheap checks on what the answer says."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from cascade import ConfigError, Task
from cascade.testing import attempt_with, verdict_of
from cascade.validators import confidence, grounded, one_of, run_validator

EMAIL = "From: Ada Lovelace <ada@analytical.org>\nInvoice total: $1,234.50, due 5 March 2024."


@pytest.mark.parametrize(
    "output",
    [
        '{"name": "Ada Lovelace", "email": "ada@analytical.org"}',
        '{"name": "ada  lovelace", "email": "ADA@analytical.org"}',
        '{"total": 1234.5, "due": "2024-03-05"}',
        '{"total": "1,234.50", "due": "03/05/2024"}',
        '{"name": "Ada Lovelace", "phone": null, "paid": false}',
        '{"items": [{"name": "Ada"}, {"name": "Lovelace"}]}',
    ],
    ids=["verbatim", "case-and-space", "number-and-iso-date", "formatted", "nulls", "nested"],
)
def test_values_that_occur_in_the_input_pass(output: str) -> None:
    """Values copied from the input pass, after whitespace, case, number and date normalising."""
    verdict = verdict_of(grounded(), output, task_input=EMAIL)
    assert verdict.passed, verdict.reason


@pytest.mark.parametrize(
    ("output", "named"),
    [
        ('{"name": "Ada Lovelace", "email": "ada@lovelace.com"}', "$.email = 'ada@lovelace.com'"),
        ('{"name": "Ada King"}', "$.name = 'Ada King'"),
        ('{"total": 1243.5}', "$.total = 1243.5"),
        ('{"due": "2024-03-06"}', "$.due = '2024-03-06'"),
        ('{"items": [{"name": "Ada"}, {"name": "Babbage"}]}', "$.items[1].name = 'Babbage'"),
    ],
)
def test_invented_values_fail_and_are_named(output: str, named: str) -> None:
    """An invented value fails; the reason and the feedback name its path and value."""
    verdict = verdict_of(grounded(), output, task_input=EMAIL)
    assert not verdict.passed
    assert named in verdict.reason
    assert named in verdict.feedback


@pytest.mark.parametrize(
    ("text", "total", "grounded_"),
    [
        ("Amount due: 1.249,00 EUR", 1249.0, True),  # a decimal comma, a thousands point
        ("Amount due: 249,50 EUR", 249.5, True),
        ("Amount due: 1.249,00 EUR", 124900, False),
        ("Amount due: 1.249,00 EUR", 1.249, False),  # its digits are not read the other way too
        ("Betrag: 2.924,17 EUR", 17, False),
        ("Betrag: 2.924,17 EUR", 2924.17, True),
        ("qty,price\n5,10\n", 5.1, False),  # no thousands point, no currency: two numbers
        ("Seats 12,34 and 56 are free", 12.34, False),
        ("Seats 12,34 and 56 are free", 34, True),
        ("Total: 1,234 USD", 1.234, False),  # three digits after a comma: thousands, not cents
        ("Total: 1,234 USD", 1234, True),
        ("Total: 12,5 USD", 12.5, False),  # one decimal: not the European amount format
        ("Ref 3,14,15", 14.15, False),
    ],
)
def test_an_amount_written_the_european_way_grounds_its_value(
    text: str, total: float, grounded_: bool
) -> None:
    """1.249,00 is 1249.00, and not 1.249.

    A decimal comma: before exactly two digits, after a thousands point or before a currency.
    """
    verdict = verdict_of(grounded(), f'{{"total": {total}}}', task_input=text)
    assert verdict.passed is grounded_, verdict.reason


def test_only_named_fields_are_checked() -> None:
    """With fields, values outside them may be derived rather than copied."""
    output = '{"name": "Ada Lovelace", "summary": "an invoice from Ada", "n": 3}'
    assert verdict_of(grounded(["name"]), output, task_input=EMAIL).passed
    assert not verdict_of(grounded(), output, task_input=EMAIL).passed


def test_wildcard_fields_reach_into_lists() -> None:
    """``items.*.name`` checks the name of every item."""
    output = '{"items": [{"name": "Ada", "n": 1}, {"name": "Charles", "n": 2}]}'
    verdict = verdict_of(grounded(["items.*.name"]), output, task_input=EMAIL)
    assert "$.items[1].name = 'Charles'" in verdict.reason


def test_normalising_can_be_turned_off() -> None:
    """With ignore_case=False, a change of case is not grounded."""
    output = '{"name": "ADA LOVELACE"}'
    assert verdict_of(grounded(), output, task_input=EMAIL).passed
    assert not verdict_of(grounded(ignore_case=False), output, task_input=EMAIL).passed


def test_numbers_can_be_left_unchecked() -> None:
    """With numbers=False, numeric values are not required to occur."""
    assert verdict_of(grounded(numbers=False), '{"count": 2}', task_input=EMAIL).passed


def test_grounding_in_a_named_task_field() -> None:
    """``source`` grounds in another task field, such as the document beside a question."""
    verdict = verdict_of(grounded(source="document"), '{"who": "Ada"}', document="Ada wrote it")
    assert verdict.passed
    missing = verdict_of(grounded(source="document"), '{"who": "Ada"}')
    assert "no text field 'document'" in missing.reason


def test_grounding_in_chat_messages() -> None:
    """A task given as messages is grounded in its non-assistant messages."""
    attempt = attempt_with('{"name": "Grace Hopper"}')
    task = Task("t", messages=({"role": "user", "content": "Contact: Grace Hopper"},))
    attempt = dataclasses.replace(attempt, task=task)
    assert asyncio.run(run_validator(grounded(), attempt)).passed


def test_reprs() -> None:
    """Reprs show the fields and any option that is not the default."""
    assert repr(grounded()) == "grounded()"
    assert repr(grounded("email", dates=False)) == "grounded(['email'], dates=False)"


@pytest.mark.parametrize("output", ["spam", " Spam. ", '"ham"', "**HAM**"])
def test_one_of_accepts_a_label_in_light_wrapping(output: str) -> None:
    """A label passes in any case, quoted, emphasised or with a full stop; value canonical."""
    verdict = verdict_of(one_of(["spam", "ham"]), output)
    assert verdict.passed
    assert verdict.value in {"spam", "ham"}


@pytest.mark.parametrize("output", ["eggs", "spam or ham", "The answer is spam", "s" * 10_000])
def test_one_of_rejects_anything_else(output: str) -> None:
    """Other answers fail, and the feedback lists the allowed labels."""
    verdict = verdict_of(one_of(["spam", "ham"]), output)
    assert not verdict.passed
    assert "spam, ham" in verdict.feedback


def test_one_of_needs_labels() -> None:
    """An empty label set is a configuration error."""
    with pytest.raises(ConfigError, match="non-empty"):
        one_of([])


def test_confidence_threshold() -> None:
    """The attempt's confidence is compared with the threshold, and kept as the score."""
    high = dataclasses.replace(attempt_with("B"), confidence=0.9)
    low = dataclasses.replace(high, confidence=0.4)
    none = attempt_with("B")
    assert asyncio.run(run_validator(confidence(0.8), high)).score == 0.9
    assert "below the threshold 0.8" in asyncio.run(run_validator(confidence(0.8), low)).reason
    assert "no confidence" in asyncio.run(run_validator(confidence(0.8), none)).reason
