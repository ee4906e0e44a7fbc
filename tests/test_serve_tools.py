"""``cascade serve`` and tools: what ``tool_choice`` asks of the answer, and bad tools refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.testing import FakeReply
from tests.serving import Upstream, policy_file, served

ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": PARAMETERS}},
    {"type": "function", "function": {"name": "get_time", "parameters": PARAMETERS}},
]
WEATHER = FakeReply(tool_calls=({"name": "get_weather", "arguments": {"city": "Paris"}},))


def ask(url: str, **more: Any) -> httpx.Response:
    """A chat completion offering the two tools."""
    body = {"model": "cascade/contacts", "messages": ASK, "tools": TOOLS, **more}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=60)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """Scripted per test."""
    with Upstream({}) as up:
        yield up


def serve_tools(upstream: Upstream, tmp_path: Path) -> Any:
    """A server whose policy has no validators of its own: the request's tools decide."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, validators="")
    return served(policy, tmp_path / "served.db")


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_a_text_answer_is_an_answer_unless_a_call_is_required(
    choice: str | None, upstream: Upstream, tmp_path: Path
) -> None:
    """With auto (or none given) and none, prose is accepted at once, as content."""
    upstream.script = {"small": ["It is sunny in Paris."]}
    more = {} if choice is None else {"tool_choice": choice}
    with serve_tools(upstream, tmp_path) as server:
        reply = ask(server.url, **more)
    assert reply.status_code == 200
    message = reply.json()["choices"][0]["message"]
    assert message["content"] == "It is sunny in Paris."
    assert "tool_calls" not in message
    assert upstream.asked == {"small": 1}


def test_a_required_call_escalates_past_prose_and_a_named_one_past_another_function(
    upstream: Upstream, tmp_path: Path
) -> None:
    """required: prose is rejected; a named function: a call of another one is rejected too."""
    upstream.script = {"small": ["It is sunny."], "big": [WEATHER]}
    with serve_tools(upstream, tmp_path) as server:
        required = ask(server.url, tool_choice="required")
        upstream.script = {"small": [WEATHER], "big": [WEATHER]}
        named = ask(server.url, tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert required.status_code == 200
    assert required.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert required.headers["x-cascade-tier"] == "1"
    assert named.status_code == 422  # both tiers called get_weather; get_time was required
    assert "get_weather" in json.dumps(named.json()["error"]["reasons"])


def test_prose_that_looks_like_a_call_stays_prose(upstream: Upstream, tmp_path: Path) -> None:
    """Only the provider's own tool calls become tool_calls; text in call syntax is content."""
    upstream.script = {"small": ['get_weather(city="Paris")']}
    with serve_tools(upstream, tmp_path) as server:
        reply = ask(server.url)
    message = reply.json()["choices"][0]["message"]
    assert message["content"] == 'get_weather(city="Paris")'
    assert "tool_calls" not in message


def test_a_call_whose_arguments_are_not_json_is_rejected_not_a_crash(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A set among the arguments: the validator refuses it and the next tier answers."""
    upstream.script = {"small": ["get_weather(city={1, 2})"], "big": [WEATHER]}
    with serve_tools(upstream, tmp_path) as server:
        reply = ask(server.url, tool_choice="required")
    assert reply.status_code == 200
    assert "not JSON" in reply.headers["x-cascade-escalations"]
    call = reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Paris"})


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        ([TOOLS[0], TOOLS[0]], None, "tools[1]"),
        ([{"type": "function", "function": {"name": ""}}], None, "tools[0].function.name"),
        ([{"type": "function", "function": {"name": "a b"}}], None, "tools[0].function.name"),
        ([{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}], None,
         "tools[0].function.parameters"),
        (TOOLS, "sometimes", "tool_choice"),
        (TOOLS, {"type": "function", "function": {"name": "get_mood"}}, "tool_choice"),
        (None, "auto", "tool_choice"),
    ],
)  # fmt: skip
def test_bad_tools_and_tool_choice_are_400s_before_any_call(
    tools: Any, choice: Any, param: str, upstream: Upstream, tmp_path: Path
) -> None:
    """Duplicate or bad names, a schema that is not one, an unknown tool_choice: each named."""
    body: dict[str, Any] = {"model": "cascade/contacts", "messages": ASK}
    if tools is not None:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    with serve_tools(upstream, tmp_path) as server:
        reply = httpx.post(f"{server.url}/chat/completions", json=body, timeout=60)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param
    assert upstream.requests == []
