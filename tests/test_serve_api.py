"""``cascade serve`` through the official ``openai`` client and curl: what a switched job sees."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from cascade.cli import main
from cascade.store import Store
from cascade.testing import FakeReply
from tests.serving import Served, Upstream, policy_file, served

ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Ada Lovelace wrote the first program."}
]


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The small model answers prose, the big one the JSON the policy's schema wants."""
    with Upstream({"small": ["Her name is Ada."], "big": ['{"name": "Ada Lovelace"}']}) as up:
        yield up


@pytest.fixture
def server(upstream: Upstream, tmp_path: Path) -> Iterator[Served]:
    """A server of one policy, contacts, whose ladder is small then big."""
    policy = policy_file(tmp_path / "policies", upstream.fake.base_url)
    with served(policy, tmp_path / "served.db") as running:
        yield running


def client(server: Served) -> openai.OpenAI:
    """An existing job's client, its base_url changed: nothing else."""
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


def test_an_answer_that_fails_the_check_is_escalated_and_the_response_says_so(
    server: Served, upstream: Upstream
) -> None:
    """The big model's answer comes back as a normal completion, with the ladder in headers."""
    raw = client(server).chat.completions.with_raw_response.create(
        model="cascade/contacts", messages=ASK
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == '{"name": "Ada Lovelace"}'
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "big"  # the model that served, not the one named
    assert upstream.asked == {"small": 1, "big": 1}
    assert raw.headers["x-cascade-tier"] == "1"
    assert raw.headers["x-cascade-attempts"] == "2"
    assert "tier 0 (openai/small)" in raw.headers["x-cascade-escalations"]
    assert "no JSON" in raw.headers["x-cascade-escalations"]
    assert raw.headers["x-cascade-task-id"] == completion.id
    with Store(server.store) as store:
        outcome = store.outcome(server.prepared.run_id, completion.id)
    assert outcome is not None
    assert float(raw.headers["x-cascade-cost-usd"]) == pytest.approx(outcome.cost_usd)
    assert outcome.cost_usd > 0
    # usage is the sum over both calls, the rejected one too
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sum(s.prompt_tokens for s in outcome.steps)
    assert completion.usage.completion_tokens == sum(s.completion_tokens for s in outcome.steps)
    assert completion.usage.completion_tokens > len(completion.choices[0].message.content.split())


def test_a_ladder_without_an_accepted_answer_is_an_error_not_an_answer(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Both tiers fail the check: a 422 in OpenAI's shape, with the validators' reasons."""
    upstream.script["big"] = ["still prose"]
    policy = policy_file(tmp_path / "policies", upstream.fake.base_url)
    with (
        served(policy, tmp_path / "served.db") as server,
        pytest.raises(openai.UnprocessableEntityError) as caught,
    ):
        client(server).chat.completions.create(model="cascade/contacts", messages=ASK)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "exhausted"
    assert error["type"] == "cascade_rejected"
    assert any("no JSON" in reason for reason in error["reasons"])
    assert "still prose" not in json.dumps(error)  # the rejected answer is not passed on
    assert caught.value.response.headers["x-cascade-status"] == "exhausted"


def test_the_async_client_runs_requests_side_by_side(server: Served, upstream: Upstream) -> None:
    """Eight requests at once through AsyncOpenAI: eight tasks, each escalated once."""

    async def ask_all() -> list[str]:
        async with openai.AsyncOpenAI(base_url=server.url, api_key="x", max_retries=0) as api:
            done = await asyncio.gather(
                *(
                    api.chat.completions.create(model="cascade/contacts", messages=ASK)
                    for _ in range(8)
                )
            )
        return [c.choices[0].message.content or "" for c in done]

    assert asyncio.run(ask_all()) == ['{"name": "Ada Lovelace"}'] * 8
    assert upstream.asked == {"small": 8, "big": 8}
    with Store(server.store) as store:
        assert store.count("results") == 8


def test_a_streamed_answer_comes_after_acceptance_with_its_usage(
    server: Served, upstream: Upstream
) -> None:
    """stream=True: the accepted answer as chunks, then the usage, then the end."""
    chunks = list(
        client(server).chat.completions.create(
            model="cascade/contacts",
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == '{"name": "Ada Lovelace"}'
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert {c.id for c in chunks} == {chunks[0].id}
    assert upstream.asked == {"small": 1, "big": 1}


def test_a_stream_whose_ladder_fails_is_an_error_before_any_chunk(
    upstream: Upstream, tmp_path: Path
) -> None:
    """No chunk of a rejected answer is ever sent: the stream request gets the 422."""
    upstream.script["big"] = ["prose again"]
    policy = policy_file(tmp_path / "policies", upstream.fake.base_url)
    with (
        served(policy, tmp_path / "served.db") as server,
        pytest.raises(openai.UnprocessableEntityError),
    ):
        list(client(server).chat.completions.create(model="cascade/contacts", messages=ASK,
                                                    stream=True))  # fmt: skip


def test_a_response_format_schema_is_checked_as_well_as_the_policy(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The request's JSON Schema joins the policy's validators and goes to every tier."""
    upstream.script = {"small": ['{"name": "Ada"}'], "big": ['{"name": "Ada", "year": 1843}']}
    policy = policy_file(tmp_path / "policies", upstream.fake.base_url)
    schema: dict[str, object] = {"type": "object", "required": ["name", "year"]}
    response_format: ResponseFormatJSONSchema = {
        "type": "json_schema",
        "json_schema": {"name": "c", "schema": schema},
    }
    with served(policy, tmp_path / "served.db") as server:
        done = client(server).chat.completions.create(
            model="cascade/contacts", messages=ASK, response_format=response_format
        )
    assert json.loads(done.choices[0].message.content or "") == {"name": "Ada", "year": 1843}
    assert upstream.asked == {"small": 1, "big": 1}  # the policy alone would take small's
    assert all(r["response_format"]["json_schema"]["schema"] == schema for r in upstream.requests)


def test_tools_add_the_function_call_check_and_come_back_as_tool_calls(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A call to a function not offered escalates; the accepted call is a tool_call."""
    upstream.script = {
        "small": [FakeReply(tool_calls=({"name": "get_wether", "arguments": {"city": "Paris"}},))],
        "big": [FakeReply(tool_calls=({"name": "get_weather", "arguments": {"city": "Paris"}},))],
    }
    policy = policy_file(tmp_path / "policies", upstream.fake.base_url, validators="")
    tools = [{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]  # fmt: skip
    with served(policy, tmp_path / "served.db") as server:
        raw = client(server).chat.completions.with_raw_response.create(
            model="cascade/contacts",
            messages=ASK,
            tools=tools,  # type: ignore[arg-type]
        )
    done = raw.parse()
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert "get_wether" in raw.headers["x-cascade-escalations"]
    assert all(r["tools"] == tools for r in upstream.requests)


def test_models_lists_one_model_per_policy_and_the_model_picks_the_policy(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Two policies: two models; a request to the second runs the second's ladder alone."""
    upstream.script["solo"] = ['{"name": "solo"}']
    folder = tmp_path / "policies"
    policy_file(folder, upstream.fake.base_url)
    policy_file(folder, upstream.fake.base_url, task_type="names", models=("solo",))
    with served(folder, tmp_path / "served.db") as server:
        api = client(server)
        assert sorted(m.id for m in api.models.list()) == ["cascade/contacts", "cascade/names"]
        done = api.chat.completions.create(model="cascade/names", messages=ASK)
    assert done.model == "solo"
    assert upstream.asked == {"solo": 1}


def test_curl_gets_the_completion_and_the_event_stream(server: Served) -> None:
    """curl, plain and with -N for the stream: the same API without any SDK."""
    body = json.dumps({"model": "cascade/contacts", "messages": ASK})
    url = f"{server.url}/chat/completions"
    plain = subprocess.run(  # noqa: S603
        ["curl", "-sS", "-H", "Content-Type: application/json", "-d", body, url],  # noqa: S607
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert (
        json.loads(plain.stdout)["choices"][0]["message"]["content"] == '{"name": "Ada Lovelace"}'
    )
    streamed = json.dumps({"model": "cascade/contacts", "messages": ASK, "stream": True})
    events = subprocess.run(  # noqa: S603
        ["curl", "-sSN", "-H", "Content-Type: application/json", "-d", streamed, url],  # noqa: S607
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split("\n\n")  # fmt: skip
    assert events[0].startswith("data: {")
    assert [e for e in events if e][-1] == "data: [DONE]"


def test_cascade_report_reads_a_served_store(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the server served is a run of its store, as cascade run's are."""
    api = client(server)
    for _ in range(3):
        api.chat.completions.create(model="cascade/contacts", messages=ASK)
    capsys.readouterr()
    assert main(["report", str(server.store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tasks"] == 3
    assert report["statuses"] == {"accepted": 3}
    assert report["accepted_by_tier"] == {"1": 3}
    assert report["by_type"]["contacts"][0]["escalated"] == 3
    assert main(["report", str(server.store)]) == 0
    assert server.prepared.run_id in capsys.readouterr().out
