"""Backends: replay from a recorded dataset, and litellm against a real loopback server."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from cascade import Cascade, Price, Status, Tier
from cascade.backends import LiteLLMBackend, ReplayBackend, Request, Response
from cascade.backends.litellm import load_litellm
from cascade.errors import (
    MalformedResponse,
    ProviderError,
    RateLimited,
    ReplayMissing,
    ServerError,
    UnknownModel,
    UnpricedModel,
)
from cascade.testing import FakeOpenAI, FakeReply

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BFCL = SHARED / "bfcl-simple"
needs_bfcl = pytest.mark.skipif(
    not BFCL.is_dir(), reason="../shared/datasets is not beside the repo"
)

USER = ({"role": "user", "content": "Say ok please"},)


def complete(backend: object, request: Request) -> object:
    """Run one ``complete`` call to its end."""
    return asyncio.run(backend.complete(request))  # type: ignore[attr-defined]


@needs_bfcl
def test_replay_serves_the_recorded_output_with_its_accounting() -> None:
    """A recorded (task, model) pair comes back with its tokens, cost and latency."""
    backend = ReplayBackend.from_dataset(BFCL)
    response = complete(backend, Request("open-mistral-nemo-2407", USER, task_id="simple_0"))
    assert response.text == "[calculate_triangle_area(base=10, height=5)]"  # type: ignore[attr-defined]
    assert response.usage.prompt_tokens == 316  # type: ignore[attr-defined]
    assert response.cost_usd == pytest.approx(9.9e-05)  # type: ignore[attr-defined]
    assert response.latency_s == pytest.approx(0.4491393566131592)  # type: ignore[attr-defined]


@needs_bfcl
def test_replay_accepts_a_provider_prefix() -> None:
    """``openai/gpt-4o-mini-2024-07-18`` finds the dataset's ``gpt-4o-mini-2024-07-18``."""
    backend = ReplayBackend.from_dataset(BFCL)
    request = Request("openai/gpt-4o-mini-2024-07-18", USER, task_id="simple_1")
    response = complete(backend, request)
    assert response.model == "gpt-4o-mini-2024-07-18"  # type: ignore[attr-defined]


@needs_bfcl
@pytest.mark.parametrize(
    ("model", "task_id", "message"),
    [
        ("gpt-9", "simple_0", "has no model 'gpt-9'"),
        (
            "gpt-4o-mini-2024-07-18",
            "simple_99999",
            "no response of 'gpt-4o-mini-2024-07-18' to task",
        ),
    ],
)
def test_replay_fails_clearly_on_a_pair_it_does_not_have(
    model: str, task_id: str, message: str
) -> None:
    """A missing model or task is a permanent error that names what is missing."""
    backend = ReplayBackend.from_dataset(BFCL)
    with pytest.raises(ReplayMissing, match=message):
        complete(backend, Request(model, USER, task_id=task_id))


@needs_bfcl
def test_a_replayed_ladder_prices_from_the_recording() -> None:
    """A cascade over the replay backend costs exactly what the recorded calls cost."""
    backend = ReplayBackend.from_dataset(BFCL)
    cascade = Cascade(
        ["open-mistral-nemo-2407", "gpt-4o-mini-2024-07-18"], backend=backend, log=False
    )
    outcome = cascade.run({"id": "simple_0", "messages": list(USER)})
    assert outcome.status is Status.ACCEPTED
    assert outcome.cost_usd == pytest.approx(9.9e-05)


def test_replay_rejects_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    """A folder without responses is named in the error."""
    with pytest.raises(Exception, match=r"no responses\.jsonl"):
        ReplayBackend.from_dataset(tmp_path)


def test_litellm_backend_calls_a_real_server_and_prices_the_call() -> None:
    """A call through litellm reaches the loopback server and is priced from litellm's map."""
    reply = FakeReply(
        "ok", model="gpt-4o-mini-2024-07-18", prompt_tokens=1000, completion_tokens=500
    )
    with FakeOpenAI(lambda body: reply) as server:
        backend = LiteLLMBackend(api_base=server.base_url, api_key="sk-fake-key-for-tests")
        response = complete(backend, Request("openai/gpt-4o-mini", USER, timeout_s=10))
        assert server.requests[0]["messages"] == [dict(m) for m in USER]
    assert response.text == "ok"  # type: ignore[attr-defined]
    assert response.model == "gpt-4o-mini-2024-07-18"  # type: ignore[attr-defined]
    assert response.usage.completion_tokens == 500  # type: ignore[attr-defined]
    assert response.cost_usd == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)  # type: ignore[attr-defined]


def test_a_tier_price_overrides_litellm_for_unknown_models() -> None:
    """A model litellm cannot price is served when the tier gives a price, refused otherwise."""
    with FakeOpenAI() as server:
        backend = LiteLLMBackend(api_base=server.base_url, api_key="sk-fake")
        with pytest.raises(UnpricedModel, match="set a price on the tier"):
            complete(backend, Request("openai/our-own-model", USER, timeout_s=10))
        assert server.requests == []
        priced = Request("openai/our-own-model", USER, timeout_s=10, price=Price(1.0, 1.0))
        assert complete(backend, priced).cost_usd > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("reply", "error", "transient"),
    [
        (FakeReply(status=429, headers={"Retry-After": "3"}), RateLimited, True),
        (FakeReply(status=503), ServerError, True),
        (FakeReply(status=500), ServerError, True),
        (FakeReply(body=b"{not json"), MalformedResponse, True),
        (FakeReply(status=404), UnknownModel, False),
    ],
)
def test_litellm_errors_map_onto_the_error_tree(
    reply: FakeReply, error: type[ProviderError], transient: bool
) -> None:
    """Each provider fault becomes the matching cascade error, transient or not."""
    with FakeOpenAI(lambda body: reply) as server:
        backend = LiteLLMBackend(api_base=server.base_url, api_key="sk-fake")
        with pytest.raises(error) as caught:
            complete(backend, Request("openai/gpt-4o-mini", USER, timeout_s=10))
    assert caught.value.transient is transient
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 3.0


def test_unknown_provider_is_a_permanent_error() -> None:
    """A model string litellm cannot route is reported, not retried."""
    backend = LiteLLMBackend()
    with pytest.raises(UnknownModel):
        complete(
            backend, Request("no-such-provider-model-xyz", USER, timeout_s=5, price=Price(1, 1))
        )


def test_a_cascade_over_litellm_falls_back_past_a_broken_provider() -> None:
    """End to end: a 503 on the primary, the fallback answers, and both are logged and priced."""
    with FakeOpenAI(lambda b: FakeReply(status=503)) as down, FakeOpenAI() as up:
        primary = Tier(
            "openai/gpt-4o-mini",
            retries=1,
            params={"api_base": down.base_url},
            fallbacks=("openai/gpt-4o-mini-2024-07-18",),
        )
        backend = LiteLLMBackend(api_key="sk-fake")
        # The fallback is reached through a second backend default: route by model name.
        cascade = Cascade([primary], backend=_Route(backend, up.base_url), log=False)
        outcome = cascade.run({"id": "t", "input": "hello"})
    assert outcome.status is Status.ACCEPTED
    assert [s.kind.value for s in outcome.steps] == ["call", "retry", "fallback"]
    assert outcome.steps[-1].cost_usd > 0


class _Route:
    """Send the fallback model to the healthy server."""

    def __init__(self, inner: LiteLLMBackend, healthy: str) -> None:
        self._inner = inner
        self._healthy = healthy

    async def complete(self, request: Request) -> Response:
        if request.model.endswith("2024-07-18"):
            request = dataclasses.replace(request, params={"api_base": self._healthy})
        return await self._inner.complete(request)


@pytest.mark.parametrize(
    ("model", "prompt_tokens"),
    [("openai/gpt-4o-mini", 1234), ("gemini/gemini-2.5-pro", 300_000)],
)
def test_cached_prices_agree_with_litellm_including_tiered_models(
    model: str, prompt_tokens: int
) -> None:
    """Flat prices are cached; models priced by context length still cost what litellm says."""
    litellm = load_litellm()
    completion = SimpleNamespace(
        choices=[SimpleNamespace(message=SimpleNamespace(content="ok"))],
        usage=SimpleNamespace(prompt_tokens=prompt_tokens, completion_tokens=10),
        model=model,
    )
    # Gemini speaks its own wire protocol, so the completion is priced without a server.
    response = LiteLLMBackend()._response(litellm, Request(model, USER), completion)
    expected = sum(
        litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=10)
    )
    assert response.cost_usd == pytest.approx(expected)
