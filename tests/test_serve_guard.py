"""``cascade serve`` lets nobody in where they don't belong, and refuses bad requests clearly."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.cli import main
from cascade.enums import CallKind, Decision, Status
from cascade.errors import ConfigError
from cascade.outcome import Outcome, Step
from cascade.secrets import register_secrets
from cascade.serve.config import ServeConfig
from cascade.serve.keys import load_keys
from cascade.serve.replies import completion_of, error_body, headers_of
from cascade.testing import FakeReply
from cascade.types import Verdict
from tests.serving import SECRET, Served, Upstream, policy_file, served

ASK = [{"role": "user", "content": "Ada Lovelace wrote the first program."}]
GOOD = {"model": "cascade/contacts", "messages": ASK}
BAD_SCHEMA = {"name": "x", "schema": {"type": 12}}
KEY = 'key = "ck-0123456789abcdef"\n'
ALICE = "ck-alice-0123456789abcdef"
BOB = "ck-bob-0123456789abcdef01"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The small model answers what the policy accepts at once."""
    with Upstream({"small": ['{"name": "Ada"}']}) as up:
        yield up


def keys_file(folder: Path, body: str) -> Path:
    """A client keys file holding ``body``."""
    path = folder / "keys.toml"
    path.write_text(body)
    return path


def post(server: Served, body: Any, key: str | None = None, **headers: str) -> httpx.Response:
    """POST a chat completion as raw JSON (or raw bytes) with ``key`` as the bearer."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/chat/completions", content=content, headers=headers,
                      timeout=60)  # fmt: skip


@pytest.fixture
def keyed(upstream: Upstream, tmp_path: Path) -> Iterator[Served]:
    """A server with two client keys: alice (tiny budget) and bob (one request a minute)."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    bob = hashlib.sha256(BOB.encode()).hexdigest()
    keys = keys_file(tmp_path, f'[[keys]]\nname = "alice"\nkey = "{ALICE}"\n'
                     "budget_usd = 0.000001\n\n"
                     f'[[keys]]\nname = "bob"\nkey_sha256 = "{bob}"\nrpm = 1\n')  # fmt: skip
    with served(policy, tmp_path / "served.db", keys_file=str(keys)) as server:
        yield server


def test_a_missing_or_wrong_key_gets_401_and_never_reaches_a_provider(
    keyed: Served, upstream: Upstream
) -> None:
    """No key, a wrong key, a wrong scheme: 401 each, in OpenAI's shape; /health is open."""
    for headers in ({}, {"Authorization": "Bearer ck-wrong-0123456789abcdef"},
                    {"Authorization": f"Basic {ALICE}"}, {"Authorization": "Bearer"}):  # fmt: skip
        response = httpx.post(f"{keyed.url}/chat/completions", json=GOOD, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{keyed.url}/models", headers=headers).status_code == 401
    assert upstream.requests == []
    assert httpx.get(keyed.url.removesuffix("/v1") + "/health").json()["status"] == "ok"
    assert post(keyed, GOOD, ALICE).status_code == 200
    assert len(upstream.requests) == 1


def test_a_key_over_its_budget_gets_429_and_spends_no_more(
    keyed: Served, upstream: Upstream
) -> None:
    """Alice's first request spends more than her budget; the next is refused before a call."""
    assert post(keyed, GOOD, ALICE).status_code == 200
    refused = post(keyed, GOOD, ALICE)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert "alice" in refused.json()["error"]["message"]
    assert len(upstream.requests) == 1
    assert post(keyed, GOOD, BOB).status_code == 200  # bob's budget is his own


def test_a_key_over_its_rate_gets_429_with_retry_after(keyed: Served, upstream: Upstream) -> None:
    """Bob may send one request a minute: the second at once is refused, saying when to retry."""
    assert post(keyed, GOOD, BOB).status_code == 200
    refused = post(keyed, GOOD, BOB)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(upstream.requests) == 1


def test_the_server_budget_holds_for_every_client_together(
    upstream: Upstream, tmp_path: Path
) -> None:
    """--budget: once the store's spend reaches it, every request is refused."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "served.db", budget_usd=0.000001) as server:
        assert post(server, GOOD).status_code == 200
        assert post(server, GOOD).status_code == 429
    with served(policy, tmp_path / "served.db", budget_usd=0.000001) as server:
        assert post(server, GOOD).status_code == 429  # the spend is kept in the store
    assert len(upstream.requests) == 1


def test_provider_keys_never_reach_a_response_a_header_or_a_log(tmp_path: Path) -> None:
    """A provider that echoes the key in its 401: the 502, its headers and the logs hold none."""
    with Upstream({"small": [FakeReply(status=401, echo_key=True)]}) as upstream:
        policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
        with served(policy, tmp_path / "served.db") as server:
            response = post(server, GOOD)
            assert len(upstream.requests) == 1  # the call was made, with the key
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "failed"
    assert SECRET not in response.text
    assert SECRET not in json.dumps(dict(response.headers))
    assert SECRET not in server.log.read_text()
    assert SECRET.encode() not in (tmp_path / "served.db").read_bytes()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        ({"model": "cascade/nope", "messages": ASK}, 400, "model"),
        ({"messages": ASK}, 400, "model"),
        ({"model": "cascade/contacts", "messages": []}, 400, "messages"),
        ({"model": "cascade/contacts", "messages": [{"role": "user"}]}, 400, "messages[0].content"),
        ({**GOOD, "messages": ASK * 9}, 400, "messages"),
        ({**GOOD, "max_tokens": 65}, 400, "max_tokens"),
        ({**GOOD, "max_tokens": "many"}, 400, "max_tokens"),
        ({**GOOD, "response_format": {"type": "xml"}}, 400, "response_format.type"),
        ({**GOOD, "response_format": {"type": "json_schema", "json_schema": BAD_SCHEMA}},
         400, "response_format.json_schema.schema"),
        ({**GOOD, "tools": [{"type": "function"}]}, 400, "tools[0]"),
        ({**GOOD, "n": 2}, 400, "n"),
        ({**GOOD, "padding": "x" * 5000}, 413, None),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused_in_openais_shape_before_any_call(
    body: Any, status: int, param: str | None, upstream: Upstream, tmp_path: Path
) -> None:
    """Malformed JSON, an unknown model, bad parameters, over a limit: each named, none called."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "served.db", request_limits=_limits()) as server:
        response = post(server, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param
    assert upstream.requests == []


def _limits() -> Any:
    from cascade.serve.chat import RequestLimits  # noqa: PLC0415

    return RequestLimits(max_body_bytes=4096, max_messages=8, max_tokens=64)


def test_a_public_address_without_client_keys_is_refused_unless_asked_for(tmp_path: Path) -> None:
    """0.0.0.0 with no keys: a clear error; with keys, or --allow-unauthenticated, it starts."""
    with pytest.raises(ConfigError, match="--allow-unauthenticated"):
        ServeConfig(policy="p", host="0.0.0.0")  # noqa: S104  # what is refused
    ServeConfig(policy="p", host="0.0.0.0", allow_unauthenticated=True)  # noqa: S104
    ServeConfig(policy="p", host="0.0.0.0", keys_file="keys.toml")  # noqa: S104
    for loopback in ("127.0.0.1", "localhost", "::1", "127.8.0.1"):
        ServeConfig(policy="p", host=loopback)
    with pytest.raises(ConfigError):
        ServeConfig(policy="p", host="my-host.example")  # a name may resolve to anything


def test_the_command_refuses_a_public_bind_and_a_bad_policy_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with the reason; nothing is bound."""
    policy = policy_file(tmp_path / "p", "http://127.0.0.1:9", models=("small",))
    assert main(["serve", "--policy", str(policy), "--host", "0.0.0.0"]) == 2  # noqa: S104
    assert "--allow-unauthenticated" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text('task_type = "x"\n[[tiers]]\nmodel = "m"\nreasks = "two"\n')
    assert main(["serve", "--policy", str(broken), "--store", str(tmp_path / "s.db")]) == 2
    err = capsys.readouterr().err
    assert "broken.toml:4" in err
    assert "reasks" in err


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[[keys]]\nname = "a"\n', "keys.toml:1: keys[0]: give exactly one of key and"),
        ('[[keys]]\nname = "a"\nkey = "short"\n', "keys.toml:1: keys[0].key: a string of"),
        (f'[[keys]]\nname = "a"\n{KEY}key_sha256 = "{"0" * 64}"\n', "give exactly one of key and"),
        (f'[[keys]]\nname = "a"\n{KEY}rpm = 0\n', "keys[0].rpm: must be > 0"),
        (f'[[keys]]\nname = "a"\n{KEY}budget = 1\n', "keys[0].budget: unknown"),
        (f'\n\n[[keys]]\nname = "a"\n{KEY}[[keys]]\nname = "a"\n'
         'key = "ck-0123456789abcdeg"\n', "name 'a' is given twice"),
        (f'[[keys]]\nname = "a"\n{KEY}\n[[keys]]\nname = "b"\nkey = 7\n',
         "keys.toml:5: keys[1].key"),
        ('[[keys]]\nname = "a"\nkey_sha256 = "zz"\n', "keys[0].key_sha256: 64 hex digits"),
        ("keys = 3\n", "keys.toml:1: no [[keys]] tables"),
        ("[[keys]\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_keys_file_is_named_with_its_line_and_field(
    body: str, says: str, tmp_path: Path
) -> None:
    """Each mistake in a keys file: an error naming the file, the line and the field."""
    with pytest.raises(ConfigError) as caught:
        load_keys(keys_file(tmp_path, body))
    assert says in str(caught.value)


def test_keys_from_the_environment_and_a_variable_not_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--keys-env VAR reads a JSON list; a variable named but not set stops the server."""
    monkeypatch.setenv("CASCADE_KEYS", json.dumps([{"name": "etl", "key": ALICE, "rpm": 5}]))
    ring = load_keys(env="CASCADE_KEYS")
    found = ring.find(f"Bearer {ALICE}")
    assert found is not None
    assert (found.name, found.rpm) == ("etl", 5.0)
    with pytest.raises(ConfigError, match="CASCADE_NOPE"):
        load_keys(env="CASCADE_NOPE")
    monkeypatch.setenv("CASCADE_KEYS", "[{]")
    with pytest.raises(ConfigError, match=r"\$CASCADE_KEYS: not a JSON list"):
        load_keys(env="CASCADE_KEYS")


def test_a_request_exactly_at_each_limit_is_served(upstream: Upstream, tmp_path: Path) -> None:
    """The limits are the largest allowed: 8 messages, max_tokens 64, a 4096-byte body."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    body: dict[str, Any] = {**GOOD, "messages": ASK * 8, "max_completion_tokens": 64}
    body["messages"] = [*ASK * 7, {"role": "user", "content": ""}]
    size = len(json.dumps(body).encode())
    body["messages"][-1]["content"] = "x" * (4096 - size)
    assert len(json.dumps(body).encode()) == 4096
    with served(policy, tmp_path / "served.db", request_limits=_limits()) as server:
        assert post(server, body).status_code == 200
        body["max_completion_tokens"] = 65
        assert post(server, body).json()["error"]["param"] == "max_completion_tokens"
    assert upstream.requests[0]["max_tokens"] == 64  # what the client asked, to every tier


def test_a_body_over_the_limit_is_refused_unread_or_as_it_streams_in(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A declared length over the limit: 413 at once, body unread; a chunked body: 413 too."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "served.db", request_limits=_limits()) as server:
        host, port = server.url.removeprefix("http://").removesuffix("/v1").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            raw.sendall(head + b"Content-Length: 4097\r\n\r\n")  # one byte over, none sent
            assert raw.recv(100).startswith(b"HTTP/1.1 413 ")  # not a byte of the body was sent

        def chunks() -> Iterator[bytes]:
            yield b'{"model": "cascade/contacts", "messages": '
            for _ in range(100):
                yield b" " * 100
            yield json.dumps(ASK).encode() + b"}"

        refused = httpx.post(f"{server.url}/chat/completions", content=chunks(), timeout=30)
    assert refused.status_code == 413
    assert upstream.requests == []


@pytest.mark.parametrize("who", ["key", "server"])
def test_a_budget_is_spent_to_the_cent_then_refused(
    who: str, upstream: Upstream, tmp_path: Path
) -> None:
    """Each request costs exactly $0.0002; a $0.0004 budget serves two and refuses the third."""
    upstream.script["small"] = [
        FakeReply('{"name": "Ada"}', prompt_tokens=100, completion_tokens=50)
    ]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    options: dict[str, Any] = {"budget_usd": 0.0004}
    key = None
    if who == "key":
        keys = keys_file(tmp_path, f'[[keys]]\nname = "a"\nkey = "{ALICE}"\nbudget_usd = 0.0004\n')
        options, key = {"keys_file": str(keys)}, ALICE
    with served(policy, tmp_path / "served.db", **options) as server:
        costs = [post(server, GOOD, key) for _ in range(3)]
    assert [r.status_code for r in costs] == [200, 200, 429]
    assert float(costs[0].headers["x-cascade-cost-usd"]) == pytest.approx(0.0002)
    assert len(upstream.requests) == 2


def test_a_tiers_own_parameters_win_over_the_requests(upstream: Upstream, tmp_path: Path) -> None:
    """The policy fixes max_tokens at 32: a request asking 64 still sends 32."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",),
                         params=", max_tokens = 32")  # fmt: skip
    with served(policy, tmp_path / "served.db") as server:
        assert post(server, {**GOOD, "max_tokens": 64}).status_code == 200
    assert upstream.requests[0]["max_tokens"] == 32


def test_a_reason_holding_a_secret_is_redacted_in_the_body_and_the_headers() -> None:
    """However a key got into a reason, the reply and its headers carry it redacted."""
    secret = "sk-leaked-0123456789abcdefghij"
    register_secrets([secret])
    step = Step(run_id="r", task_id="t", task_type="x", step=0, tier=0, model_requested="m",
                model_served="m", kind=CallKind.CALL, prompt_tokens=1, completion_tokens=1,
                cost_usd=0.0, latency_s=0.0, ts=0.0, error=None, decision=Decision.ESCALATE,
                verdicts=(Verdict(False, reason=f"said {secret}"),))  # fmt: skip
    outcome = Outcome(run_id="r", task_id="t", task_type="x", status=Status.EXHAUSTED,
                      output=None, parsed=None, tier=None, model=None, steps=(step,),
                      cost_usd=0.0, latency_s=0.0, reasons=(f"tier 0: said {secret}",))  # fmt: skip
    body = json.dumps(completion_of(outcome, 0))
    headers = json.dumps(headers_of(outcome))
    assert secret not in body
    assert secret not in headers
    assert "said [REDACTED]" in body
    assert "said [REDACTED]" in headers
    assert secret not in json.dumps(error_body(f"upstream said {secret}", "x"))


def test_optional_parameters_sent_as_null_are_their_defaults(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Clients that send every field send nulls: stream, n, stream_options, max_tokens."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    nulls = {"stream": None, "n": None, "stream_options": None, "max_tokens": None,
             "response_format": None, "tools": None, "tool_choice": None}  # fmt: skip
    with served(policy, tmp_path / "served.db") as server:
        reply = post(server, {**GOOD, **nulls})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == '{"name": "Ada"}'
