"""The lean HTTP path chosen by a policy: in ``cascade run``, in ``cascade serve``, and refused."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from cascade.cli import main
from cascade.store import Store
from tests.serving import Upstream, policy_file, served

AGENT = "cascade-http/1"
"""The ``User-Agent`` the lean path sends; litellm's calls carry the OpenAI SDK's."""


def _agents(upstream: Upstream) -> set[str]:
    return {headers.get("user-agent", "") for _, _, headers in upstream.fake.heads}


def test_a_run_sends_an_http_tier_over_the_lean_path_and_the_rest_over_litellm(
    tmp_path: Path,
) -> None:
    """``cascade run``: the http tier's calls are the lean path's; the litellm tier's are not."""
    with Upstream({"small": ["Her name is Ada."], "big": ['{"name": "Ada"}']}) as up:
        policy = policy_file(tmp_path / "policies", up.fake.base_url)
        http_first = 'model = "openai/small"\nbackend = "http"'
        policy.write_text(policy.read_text().replace('model = "openai/small"', http_first))
        tasks = tmp_path / "tasks.jsonl"
        tasks.write_text(
            "".join(json.dumps({"id": f"t{n}", "input": "Ada"}) + "\n" for n in range(3))
        )
        status = main(["run", str(tasks), "--policy", str(policy), "--store",
                       str(tmp_path / "run.db"), "--out", str(tmp_path / "out.jsonl"),
                       "--no-progress", "--workers", "1"])  # fmt: skip
        heads = list(up.fake.heads)
        bodies = list(up.fake.requests)
    assert status == 0
    by_model: dict[str, set[str]] = {}
    for body, (_, _, headers) in zip(bodies, heads, strict=True):
        by_model.setdefault(body["model"], set()).add(headers.get("user-agent", ""))
    assert by_model["small"] == {AGENT}
    assert AGENT not in by_model["big"]
    with Store(tmp_path / "run.db") as store:
        costs = [row[0] for row in store.select("SELECT cost_usd FROM attempts")]
    assert len(costs) == 6
    assert all(cost > 0 for cost in costs)


def test_serve_sends_an_http_tier_over_the_lean_path(tmp_path: Path) -> None:
    """``cascade serve``: a request whose policy's tier says ``http`` goes the lean way."""
    with Upstream({"small": ['{"name": "Ada"}']}) as up:
        policy = policy_file(tmp_path / "policies", up.fake.base_url, models=("small",),
                             tier='backend = "http"\n')  # fmt: skip
        with served(policy, tmp_path / "served.db") as running:
            client = openai.OpenAI(base_url=running.url, api_key="unused", max_retries=0)
            answer = client.chat.completions.create(
                model="cascade/contacts", messages=[{"role": "user", "content": "Ada"}]
            )
        agents = _agents(up)
    assert json.loads(answer.choices[0].message.content or "") == {"name": "Ada"}
    assert agents == {AGENT}


def test_a_run_whose_policy_puts_one_model_on_two_backends_stops_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with the model named; no call made, nothing written."""
    with Upstream({"small": ['{"name": "Ada"}']}) as up:
        policy = policy_file(tmp_path / "policies", up.fake.base_url, models=("small", "big"))
        text = policy.read_text()
        text = text.replace('model = "openai/small"', 'model = "openai/small"\nbackend = "http"')
        text = text.replace(
            'model = "openai/big"', 'model = "openai/big"\nfallbacks = ["openai/small"]'
        )
        policy.write_text(text)
        tasks = tmp_path / "tasks.jsonl"
        tasks.write_text(json.dumps({"id": "t", "input": "Ada"}) + "\n")
        out = tmp_path / "out.jsonl"
        status = main(["run", str(tasks), "--policy", str(policy), "--store",
                       str(tmp_path / "run.db"), "--out", str(out), "--no-progress"])  # fmt: skip
        asked = list(up.fake.requests)
    assert status == 2
    assert (
        "openai/small is on backend = 'http' in one tier and on litellm" in capsys.readouterr().err
    )
    assert asked == []
    assert not out.exists() or out.read_text() == ""


def test_serve_refuses_one_model_on_two_backends_before_it_binds(tmp_path: Path) -> None:
    """Checked with the policies, not at the first request: the error names the model."""
    from cascade.errors import ConfigError  # noqa: PLC0415
    from cascade.serve.config import ServeConfig  # noqa: PLC0415
    from cascade.serve.prepared import prepare  # noqa: PLC0415

    policy = policy_file(tmp_path / "policies", "http://127.0.0.1:9/v1", models=("small", "big"))
    text = policy.read_text().replace(
        'model = "openai/small"', 'model = "openai/small"\nbackend = "http"'
    )
    policy.write_text(
        text.replace('model = "openai/big"', 'model = "openai/big"\nfallbacks = ["openai/small"]')
    )
    with pytest.raises(ConfigError, match="openai/small is on backend = 'http'"):
        prepare(ServeConfig(policy=str(policy), store=str(tmp_path / "s.db"), port=0))


def test_workers_import_litellm_up_front_only_when_a_tier_uses_it(tmp_path: Path) -> None:
    """All tiers on http: the fork server does not pay litellm's seconds and megabytes."""
    from cascade.run.job import Job  # noqa: PLC0415

    policy = policy_file(tmp_path / "policies", "http://127.0.0.1:9/v1", models=("small", "big"))
    mixed = Job(tasks="t.jsonl", policy=str(policy))
    assert mixed.preloads_litellm()
    policy.write_text(
        policy.read_text().replace("retries = 0\n", 'retries = 0\nbackend = "http"\n')
    )
    assert not Job(tasks="t.jsonl", policy=str(policy)).preloads_litellm()
