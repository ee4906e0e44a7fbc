"""The lean HTTP backend against a loopback provider, case by case beside litellm's."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from cascade import Cascade, Price, Status, Tier
from cascade.backends import HttpBackend, LiteLLMBackend, Request
from cascade.backends.default import default_backend, http_models
from cascade.backends.routed import PrefixBackend
from cascade.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    UnknownModel,
    UnpricedModel,
)
from cascade.policy import PolicyError, load_policies
from cascade.testing import FakeOpenAI, FakeReply
from cascade.types import Response

USER = ({"role": "user", "content": "Say ok please"},)
KEY = "sk-fake-key-for-the-http-tests"
BACKENDS: dict[str, Callable[..., object]] = {"http": HttpBackend, "litellm": LiteLLMBackend}


def complete(backend: object, request: Request) -> Response:
    """Run one ``complete`` call to its end."""
    return asyncio.run(backend.complete(request))  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_an_answer_is_read_and_priced_alike_by_both_backends(kind: str) -> None:
    """Text, the model that served, usage and cost from litellm's price map: the same on both."""
    reply = FakeReply("ok", model="gpt-4o-mini-2024-07-18", prompt_tokens=1000,
                      completion_tokens=500)  # fmt: skip
    with FakeOpenAI(lambda body: reply) as server:
        backend = BACKENDS[kind](api_base=server.base_url, api_key=KEY)
        params = {"temperature": 0, "response_format": {"type": "json_object"}}
        response = complete(backend, Request("openai/gpt-4o-mini", USER, params=params))
    sent = server.requests[0]
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [dict(m) for m in USER]
    assert sent["temperature"] == 0
    assert sent["response_format"] == {"type": "json_object"}
    assert "api_key" not in sent
    assert "api_base" not in sent
    assert server.heads[0][1] == "/v1/chat/completions"
    assert server.heads[0][2]["authorization"] == f"Bearer {KEY}"
    assert (response.text, response.model) == ("ok", "gpt-4o-mini-2024-07-18")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1000, 500)
    assert response.cost_usd == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_tool_calls_come_back_as_the_same_json_calls(kind: str) -> None:
    """A completion with function calls reads as ``[{"name", "arguments"}]`` on both."""
    calls = ({"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "noop", "arguments": {}})
    with FakeOpenAI(lambda body: FakeReply(tool_calls=calls)) as server:
        backend = BACKENDS[kind](api_base=server.base_url, api_key=KEY)
        response = complete(backend, Request("openai/gpt-4o-mini", USER))
    assert json.loads(response.text) == [dict(call) for call in calls]


FAULTS = [
    (FakeReply(status=400), BadRequest, False),
    (FakeReply(status=401), AuthenticationFailed, False),
    (FakeReply(status=403), AuthenticationFailed, False),
    (FakeReply(status=404), UnknownModel, False),
    (FakeReply(status=429, headers={"Retry-After": "3"}), RateLimited, True),
    (FakeReply(status=500), ServerError, True),
    (FakeReply(status=503), ServerError, True),
    (FakeReply(body=b"{not json"), MalformedResponse, True),
    (FakeReply(body=b'{"choices": []}'), MalformedResponse, True),
    (FakeReply(drop=True), ConnectionFailed, True),
    (FakeReply(delay_s=2.0), ProviderTimeout, True),
]


@pytest.mark.parametrize("kind", sorted(BACKENDS))
@pytest.mark.parametrize(("reply", "error", "transient"), FAULTS, ids=lambda v: repr(v)[:40])
def test_each_fault_maps_onto_the_same_error_on_both_backends(
    kind: str, reply: FakeReply, error: type[ProviderError], transient: bool
) -> None:
    """A refusal, a 429 with Retry-After, a 5xx, bad JSON, a cut connection or a timeout."""
    with FakeOpenAI(lambda body: reply) as server:
        backend = BACKENDS[kind](api_base=server.base_url, api_key=KEY)
        with pytest.raises(error) as caught:
            complete(backend, Request("openai/gpt-4o-mini", USER, timeout_s=0.5))
    assert type(caught.value) is error
    assert caught.value.transient is transient
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 3.0


def test_a_refused_connection_is_a_connection_failure() -> None:
    """Nothing listening: no reply at all, which the summary counts apart from a 5xx."""
    with FakeOpenAI() as server:
        url = server.base_url
    with pytest.raises(ConnectionFailed):
        complete(HttpBackend(api_base=url), Request("openai/gpt-4o-mini", USER))


def test_an_unpriced_model_is_refused_before_any_request_unless_the_tier_prices_it() -> None:
    """No price in litellm's map and none on the tier: no call; a tier price is used instead."""
    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url)
        with pytest.raises(UnpricedModel, match="set a price on the tier"):
            complete(backend, Request("openai/our-own-model", USER))
        assert server.requests == []
        priced = Request("openai/our-own-model", USER, price=Price(2.0, 4.0))
        response = complete(backend, priced)
    assert response.cost_usd == pytest.approx((3 * 2.0 + 1 * 4.0) / 1e6)
    assert "authorization" not in server.heads[0][2]  # no key given: none sent


def test_a_model_priced_by_context_length_is_refused_not_billed_at_a_guess() -> None:
    """Tiered prices need litellm's calculator: the lean path asks for a tier price instead."""
    backend = HttpBackend(api_base="http://127.0.0.1:9/v1", api_version="2025-01-01")
    with pytest.raises(UnpricedModel, match="priced by context length"):
        complete(backend, Request("azure/gpt-5.4", USER))
    assert backend.quote("azure/gpt-5.4") is None  # so a policy check says unpriced
    assert backend.quote("openai/gpt-4o-mini") == LiteLLMBackend().quote("openai/gpt-4o-mini")
    assert backend.quote("openai/our-own-model") is None


def test_an_azure_deployment_is_called_at_its_own_url_with_its_key_header() -> None:
    """``azure/NAME``: the deployment's path, the API version, and the key in ``api-key``."""
    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url, api_version="2024-06-01", api_key=KEY)
        complete(backend, Request("azure/gpt-4o-mini", USER))
        with pytest.raises(BadRequest, match="api_version"):
            complete(HttpBackend(api_base=server.base_url), Request("azure/gpt-4o-mini", USER))
    _, path, headers = server.heads[0]
    assert path == "/v1/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-06-01"
    assert headers["api-key"] == KEY
    assert "authorization" not in headers


def test_openai_itself_without_a_key_is_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ``api_base`` and no key: a clear permanent error, not a call to the internet."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY"):
        complete(HttpBackend(), Request("openai/gpt-4o-mini", USER))


def test_a_provider_the_lean_path_cannot_speak_is_refused() -> None:
    """An ``anthropic/`` model has its own protocol: a permanent error naming the model."""
    with pytest.raises(UnknownModel, match="anthropic/claude"):
        complete(HttpBackend(), Request("anthropic/claude-3-5-haiku", USER))


def test_a_key_the_provider_echoes_never_reaches_the_outcome() -> None:
    """A 401 that quotes the key: the step's reason has it redacted, as on litellm."""
    with FakeOpenAI(lambda body: FakeReply(status=401, echo_key=True)) as server:
        tier = Tier("openai/gpt-4o-mini", backend="http",
                    params={"api_base": server.base_url, "api_key": KEY})  # fmt: skip
        outcome = Cascade([tier], log=False).run({"id": "t", "input": "hi"})
    assert outcome.status is Status.FAILED
    text = repr(outcome)
    assert "Incorrect API key" in text
    assert KEY not in text


def test_a_cascade_with_an_http_tier_runs_it_on_the_lean_path_and_closes_its_session() -> None:
    """The default backend routes the tier's models to HTTP; each loop's session is closed."""
    with FakeOpenAI() as server:
        tier = Tier("openai/gpt-4o-mini", backend="http", params={"api_base": server.base_url})
        cascade = Cascade([tier], log=False)
        assert isinstance(cascade.backend, PrefixBackend)
        assert isinstance(cascade.backend.backend_for("openai/gpt-4o-mini"), HttpBackend)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = cascade.run({"id": "a", "input": "hi"})
            second = cascade.run({"id": "b", "input": "hi"})  # a second event loop
            gc.collect()
    assert (first.status, second.status) == (Status.ACCEPTED, Status.ACCEPTED)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert len(server.requests) == 2


def test_a_run_over_the_lean_path_never_imports_litellm(tmp_path: Path) -> None:
    """The claim that matters for speed: litellm's import stays off an HTTP tier's path."""
    script = tmp_path / "lean.py"
    script.write_text(
        "import sys\n"
        "from cascade import Cascade, Tier\n"
        "from cascade.testing import FakeOpenAI\n"
        "with FakeOpenAI() as server:\n"
        "    tier = Tier('openai/gpt-4o-mini', backend='http',\n"
        "                params={'api_base': server.base_url})\n"
        "    outcome = Cascade([tier], log=False).run({'id': 't', 'input': 'hi'})\n"
        "print(outcome.status.value, 'litellm' in sys.modules)\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,  # noqa: S603
                          env=env, timeout=60, check=True)  # fmt: skip
    assert done.stdout.split() == ["accepted", "False"]


def test_one_model_cannot_be_on_both_backends() -> None:
    """Its route, price, limits and breaker are one model's: a conflict is refused up front."""
    with pytest.raises(ConfigError, match="one backend per model"):
        Cascade([Tier("openai/a", backend="http"), Tier("openai/b", fallbacks=("openai/a",))])
    assert http_models([Tier("openai/a", backend="litellm"), Tier("openai/a")]) == frozenset()
    backend = default_backend({"openai/a"})
    assert isinstance(backend, PrefixBackend)
    assert isinstance(backend.backend_for("openai/a"), HttpBackend)
    assert isinstance(backend.backend_for("openai/ab"), LiteLLMBackend)


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("backend = 'http'\nmodel = 'anthropic/claude-3-5-haiku'", "anthropic/claude-3-5-haiku"),
        ("backend = 'http'\nmodel = 'openai/a'\nfallbacks = ['groq/b']", "groq/b"),
        ("backend = 'http'\nmodel = 'openai/a'\nmode = 'batch'", "batch"),
        ("backend = 'rest'\nmodel = 'openai/a'", "backend"),
        ("backend = 'http'\nmodel = 'openai/a'\nparams = { num_retries = 2 }", "num_retries"),
        (
            "backend = 'http'\nmodel = 'azure/dep'\nparams = { api_base = 'http://x' }",
            "api_version",
        ),
    ],
)
def test_a_policy_tier_the_lean_path_cannot_take_is_refused_at_its_line(
    tmp_path: Path, tier: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error names the file, the tier's line and what is wrong."""
    monkeypatch.delenv("AZURE_API_VERSION", raising=False)
    policy = tmp_path / "contact.toml"
    policy.write_text(f'task_type = "contact"\n\n[[tiers]]\n{tier}\n')
    with pytest.raises(PolicyError) as caught:
        load_policies(policy)
    said = str(caught.value)
    assert "contact.toml:" in said
    assert expected in said


def test_getting_ready_loads_once_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aiohttp import and the price map are read once, not on every call's way in."""
    loads: list[str] = []
    monkeypatch.setattr(HttpBackend, "_load", lambda self: loads.append("loaded"))
    backend = HttpBackend()

    async def twice() -> None:
        await backend.ready("openai/gpt-4o-mini")
        await backend.ready("openai/gpt-4o")

    asyncio.run(twice())
    assert loads == ["loaded"]


@pytest.mark.parametrize(
    ("model", "backend", "expected"),
    [
        ("openai/a", "rest", "backend is 'litellm' or 'http'"),
        ("human", "http", "the human tier takes no"),
    ],
)
def test_a_tier_in_python_names_a_backend_there_is(model: str, backend: str, expected: str) -> None:
    """A misspelt backend, or one on the review queue, is refused, not silently ignored."""
    with pytest.raises(ConfigError, match=expected):
        Tier(model, backend=cast(Any, backend))
    assert Tier("openai/a", backend="litellm").backend == "litellm"


def test_finished_event_loops_are_not_kept_alive_by_their_sessions() -> None:
    """Each ``asyncio.run`` closes its session and lets the loop go: no growth per run."""
    import weakref  # noqa: PLC0415

    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url)
        loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

        async def once() -> None:
            loops.append(weakref.ref(asyncio.get_running_loop()))
            await backend.complete(Request("openai/gpt-4o-mini", USER))

        for _ in range(5):
            asyncio.run(once())
    gc.collect()
    assert [ref() for ref in loops] == [None] * 5


def test_close_never_raises_even_from_inside_another_running_loop() -> None:
    """An idle loop's session cannot be closed from a running loop: left alone, no error."""
    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url)
        idle = asyncio.new_event_loop()
        idle.run_until_complete(backend.complete(Request("openai/gpt-4o-mini", USER)))

        async def closing() -> None:
            backend.close()

        asyncio.run(closing())  # must not raise
        backend.close()  # from no loop: the idle loop's session is closed now
        idle.run_until_complete(idle.shutdown_asyncgens())
        idle.close()


def test_a_proxy_from_the_environment_is_used_as_litellm_uses_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` routes the call through the proxy (a corporate network needs it)."""
    with FakeOpenAI() as proxy:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        backend = HttpBackend(api_base="http://127.0.0.2:9/v1", api_key=KEY)
        response = complete(backend, Request("openai/gpt-4o-mini", USER))
    assert response.text == "ok"
    assert proxy.heads[0][1] == "http://127.0.0.2:9/v1/chat/completions"


def test_extra_body_is_merged_and_litellm_settings_are_refused() -> None:
    """The parameters vLLM adds arrive at the top of the body; ``num_retries`` is not sent."""
    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url)
        extra = {"extra_body": {"top_k": 5, "guided_choice": ["a", "b"]}, "seed": 3}
        complete(backend, Request("openai/gpt-4o-mini", USER, params=extra))
        with pytest.raises(BadRequest, match="num_retries is litellm's own setting"):
            complete(backend, Request("openai/gpt-4o-mini", USER, params={"num_retries": 2}))
    sent = server.requests[0]
    assert (sent["top_k"], sent["guided_choice"], sent["seed"]) == (5, ["a", "b"], 3)
    assert "extra_body" not in sent
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"logit_bias": {1, 2}}, "cannot be sent as JSON"),
        ({"temperature": float("nan")}, "cannot be sent as JSON"),
        ({"api_key": "sk-line\nbreak"}, "cannot be sent"),
        ({"api_base": "127.0.0.1:9/v1"}, "not a URL"),
    ],
)
def test_a_request_that_cannot_be_sent_is_a_permanent_bad_request(
    params: dict[str, object], expected: str
) -> None:
    """Not a transient fault to retry: the tier's configuration is wrong, and the error says so."""
    with FakeOpenAI() as server:
        backend = HttpBackend(api_base=server.base_url)
        with pytest.raises(BadRequest, match=expected) as caught:
            complete(backend, Request("openai/gpt-4o-mini", USER, params=params))
    assert caught.value.transient is False
    assert server.requests == []


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_an_answer_counting_negative_tokens_is_refused_on_both_backends(kind: str) -> None:
    """Negative usage would be a negative cost: money given back for nothing. It is no answer."""
    reply = FakeReply(prompt_tokens=-1000, completion_tokens=5)
    with FakeOpenAI(lambda body: reply) as server:
        backend = BACKENDS[kind](api_base=server.base_url, api_key=KEY)
        with pytest.raises(MalformedResponse, match="negative tokens"):
            complete(backend, Request("openai/gpt-4o-mini", USER))


def test_a_200_that_carries_an_error_is_a_server_error() -> None:
    """Some gateways answer 200 with an error object: transient, and not read as an answer."""
    reply = FakeReply(body=b'{"error": {"message": "overloaded"}}')
    with FakeOpenAI(lambda body: reply) as server:
        backend = HttpBackend(api_base=server.base_url)
        with pytest.raises(ServerError, match="overloaded"):
            complete(backend, Request("openai/gpt-4o-mini", USER))


@pytest.mark.parametrize(("kind", "cut"), [("http", 400), ("litellm", 500)])
def test_no_part_of_a_key_survives_where_an_error_message_is_cut(kind: str, cut: int) -> None:
    """A provider quoting the key across the cut: it is hidden before the message is shortened.

    Each backend puts words of its own before the provider's, so the key is moved along the
    whole stretch where the cut may fall.
    """
    paddings = list(range(cut - 240, cut, 7))
    bodies = [json.dumps({"error": {"message": "x" * n + KEY + " is wrong"}}).encode()
              for n in paddings]  # fmt: skip
    with FakeOpenAI(lambda _: FakeReply(status=401, body=bodies.pop())) as server:
        backend = BACKENDS[kind](api_base=server.base_url, api_key=KEY)
        said = []
        for _ in paddings:
            with pytest.raises(AuthenticationFailed) as caught:
                complete(backend, Request("openai/gpt-4o-mini", USER))
            said.append(str(caught.value))
    assert [text for text in said if KEY[:8] in text] == []
    assert any("[REDACTED]" in text for text in said)


def test_the_lean_path_bills_only_what_litellm_would_bill_at_the_same_price() -> None:
    """Over the whole price map: a quote on the lean path is litellm's quote, or there is none.

    Another provider's entry under the same name (a self-hosted ``openai/deepseek-chat``) is
    not billed at that provider's price. One exception: litellm finds no price for
    ``azure/mistral-large-latest`` (it routes the name to ``openai``), where the map lists
    Azure's, which the lean path bills.
    """
    http, litellm = HttpBackend(), LiteLLMBackend()
    entries = http._prices.load()
    names = {f"openai/{name}" for name in entries} | {n for n in entries if n.startswith("azure/")}
    differ = [
        name
        for name in sorted(names)
        if (quote := http.quote(name)) is not None and quote != litellm.quote(name)
    ]
    assert differ == ["azure/mistral-large-latest"]
    assert http.quote("openai/deepseek-chat") is None
    assert http.quote("azure/gpt-4o-mini") == litellm.quote("azure/gpt-4o-mini")
