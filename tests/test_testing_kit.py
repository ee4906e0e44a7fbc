"""The test kit's two traps, closed: a bare string as a script, and live calls a test forgot."""

from __future__ import annotations

from typing import Literal

import pytest

from cascade import Cascade, Status, Tier
from cascade.errors import ConfigError
from cascade.testing import FakeOpenAI, ScriptedBackend, no_model_requests


def test_a_bare_string_is_refused_as_a_script() -> None:
    """``{"small": "ok"}`` would answer "o", then "k", then "k": refused, naming the model."""
    with pytest.raises(ConfigError, match=r"the script of 'small' is a string.*\['ok'\]"):
        ScriptedBackend({"small": "ok"})
    assert ScriptedBackend({"small": ["ok"]}).calls == []


@pytest.mark.parametrize("backend", [None, "http"])
def test_with_model_requests_off_a_forgotten_backend_fails_instead_of_paying(
    backend: Literal["http"] | None,
) -> None:
    """No ``backend=`` and no loopback ``api_base``: the call is refused, the reason says why."""
    tier = Tier("openai/gpt-4o-mini", backend=backend, params={"api_key": "sk-test-key-123"})
    with no_model_requests():
        outcome = Cascade([tier], log=False).run({"id": "t", "input": "hi"})
    assert outcome.status is Status.FAILED
    assert "real model requests are switched off" in repr(outcome)
    assert [step.kind.value for step in outcome.steps] == ["call"]  # refused once, not retried


@pytest.mark.parametrize("backend", [None, "http"])
def test_with_model_requests_off_a_fake_provider_on_loopback_still_answers(
    backend: Literal["http"] | None,
) -> None:
    """The switch stops calls that leave the machine, not a test's own fake provider."""
    with FakeOpenAI() as server, no_model_requests():
        tier = Tier("openai/gpt-4o-mini", backend=backend,
                    params={"api_base": server.base_url, "api_key": "sk-fake"})  # fmt: skip
        outcome = Cascade([tier], log=False).run({"id": "t", "input": "hi"})
    assert outcome.status is Status.ACCEPTED
    assert len(server.requests) == 1


def test_script_items_are_typed_and_garbage_is_asked_for_by_name() -> None:
    """``Raw`` returns anything as it is (for a backend's garbage); an unknown item is refused."""
    from cascade.testing import Raw, Reply  # noqa: PLC0415

    backend = ScriptedBackend({"m": [Raw({"not": "a response"})], "f": lambda _r: 42})  # type: ignore[dict-item, return-value]
    outcome = Cascade([Tier("m")], log=False, backend=backend).run({"id": "t", "input": "x"})
    assert "backend returned dict, not a Response" in repr(outcome)
    odd = Cascade([Tier("f")], log=False, backend=backend).run({"id": "t", "input": "x"})
    assert odd.status is Status.FAILED
    assert "not int" in repr(odd)
    with pytest.raises(ConfigError, match=r"the script of 'odd': .* not int"):
        ScriptedBackend({"odd": [Reply("ok"), 42]})  # type: ignore[list-item]


def test_a_validator_is_judged_on_one_answer_without_a_cascade() -> None:
    """``verdict_of`` (public in ``cascade.testing``) runs a validator on one answer."""
    from cascade import json_schema  # noqa: PLC0415
    from cascade.testing import verdict_of  # noqa: PLC0415

    schema = json_schema({"type": "object", "required": ["name"]})
    assert verdict_of(schema, '{"name": "Ada"}').passed
    assert not verdict_of(schema, '{"email": "a@b"}').passed
