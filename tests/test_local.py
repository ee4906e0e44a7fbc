"""The local tier for real: Gemma 3 270M on llama.cpp, on this machine, with no network.

These tests load the real model (253 MB, about a second) and run real inference, a few seconds
in all. The ``local`` extra is in the lock file, so it is always installed here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cascade import Store
from cascade.backends import LocalBackend, PrefixBackend, ScriptedBackend
from cascade.backends.base import Request
from cascade.cli import main
from cascade.errors import PermanentProviderError, UnknownModel
from cascade.gold import load_gold, score_results
from cascade.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "policies" / "schemas" / "contact.schema.json").read_text())
TEXT = "Please loop in Henrik Ito from Lumen Analytics (henrik.ito@lumenanalytics.ai) today."
GEMMA = "local/gemma-3-270m"


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    """One local backend for the module: the model loads once."""
    with LocalBackend() as local:
        yield local


def _ask(backend: LocalBackend, **params: object) -> Request:
    prompt = f"Extract the contact as JSON with keys name, email, company, phone.\n\n{TEXT}"
    return Request(GEMMA, ({"role": "user", "content": prompt},), params=params)


def test_a_local_call_costs_nothing_and_reports_its_compute(backend: LocalBackend) -> None:
    """A real completion: text, token counts, $0, and the seconds it computed."""
    response = asyncio.run(backend.complete(_ask(backend, max_tokens=24)))
    assert response.text.strip()
    assert response.model == GEMMA
    assert response.usage.prompt_tokens > 20
    assert 0 < response.usage.completion_tokens <= 24
    assert response.cost_usd == 0.0
    assert response.compute_s > 0
    assert response.latency_s == response.compute_s


def test_schema_constrained_decoding_writes_json_that_fits(backend: LocalBackend) -> None:
    """With a tier's response_format, the output parses and has the schema's keys."""
    response_format = {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}
    request = _ask(backend, max_tokens=96, response_format=response_format)
    answer = json.loads(asyncio.run(backend.complete(request)).text)
    assert set(answer) == {"name", "email", "company", "phone"}
    assert answer["name"] == "Henrik Ito"


def test_concurrent_calls_take_turns_on_the_one_model(backend: LocalBackend) -> None:
    """llama.cpp is not thread-safe; calls in flight at once are served one after another."""

    async def both() -> list[str]:
        calls = [backend.complete(_ask(backend, max_tokens=8)) for _ in range(3)]
        return [r.text for r in await asyncio.gather(*calls)]

    texts = asyncio.run(both())
    assert len(texts) == 3
    assert len(set(texts)) == 1  # temperature 0 and one model in turn: the same answer


def test_bad_requests_are_provider_errors_not_crashes(backend: LocalBackend) -> None:
    """An unknown model or parameter is a permanent error, which sends the tier to fallbacks."""
    with pytest.raises(UnknownModel, match="not a known local model"):
        asyncio.run(backend.complete(Request("local/nope", ({"role": "user", "content": "x"},))))
    with pytest.raises(PermanentProviderError, match="does not take api_base"):
        asyncio.run(backend.complete(_ask(backend, api_base="http://x")))
    with pytest.raises(PermanentProviderError, match="response_format"):
        asyncio.run(backend.complete(_ask(backend, response_format="json")))


def test_a_closed_backend_refuses_calls() -> None:
    """close() frees the model; a call after it is an error, and closing twice is fine."""
    local = LocalBackend()
    asyncio.run(local.complete(_ask(local, max_tokens=4)))
    local.close()
    local.close()
    with pytest.raises(PermanentProviderError, match="closed"):
        asyncio.run(local.complete(_ask(local, max_tokens=4)))


def test_the_default_backend_routes_local_models_to_llama_cpp() -> None:
    """local/... goes to the local backend, anything else to the default, each built once."""
    routed = PrefixBackend({"local/": LocalBackend}, default=lambda: ScriptedBackend({}))
    assert isinstance(routed.backend_for(GEMMA), LocalBackend)
    assert isinstance(routed.backend_for("openai/gpt-4o-mini"), ScriptedBackend)
    assert routed.backend_for(GEMMA) is routed.backend_for("local/other")
    routed.close()


def test_the_shipped_local_policy_runs_resumes_and_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's main job on 8 tasks: real model, real checks, review queue, resume, eval."""
    subprocess.run(  # noqa: S603  # our own script, with our interpreter
        [
            sys.executable,
            str(ROOT / "examples" / "make_contacts.py"),
            str(tmp_path),
            "--tasks",
            "8",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.chdir(tmp_path)
    policy = str(ROOT / "policies" / "contact_local.toml")
    argv = ["run", "contacts.jsonl", "--policy", policy, "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tier 1 human" in out or "needs_review" not in out
    results = [json.loads(line) for line in Path("results.jsonl").read_text().splitlines()]
    assert len(results) == 8
    assert {r["status"] for r in results} <= {"accepted", "needs_review"}
    assert all(r["cost_usd"] == 0 for r in results)
    assert all(r["compute_s"] > 0 for r in results)
    waiting = [r["id"] for r in results if r["status"] == "needs_review"]
    queue = [json.loads(line) for line in Path("results.review.jsonl").read_text().splitlines()]
    assert [q["id"] for q in queue] == waiting
    with Store("run.db") as store:
        attempts = store.count("attempts")
    # Precision: what the ladder accepts (schema and grounding passed) matches the gold.
    score = score_results("results.jsonl", load_gold("contacts.gold.jsonl"))
    assert score.tasks == 8
    assert score.accepted.accepted == 8 - len(waiting) > 0
    assert score.wrong == []
    assert score.accepted.precision == 1.0
    # A second run resumes: nothing is called again.
    assert main(argv) == 0
    assert "(8 tasks were done before)" in capsys.readouterr().out
    with Store("run.db") as store:
        assert store.count("attempts") == attempts
    assert main(["eval", "results.jsonl", "--gold", "contacts.gold.jsonl"]) == 0
    assert "scored 8 tasks against the gold" in capsys.readouterr().out


def test_the_local_policy_loads_with_its_tier_options(tmp_path: Path) -> None:
    """The shipped policy: few-shot examples, then the human tier; other tier options load.

    A tier may also skip the examples and constrain its decoding to the schema.
    """
    shipped = ROOT / "policies" / "contact_local.toml"
    policy = load_policy(shipped)
    first, human = policy.ladder
    assert len(policy.examples) == 6
    assert policy.examples[1]["role"] == "assistant"
    assert first.few_shot
    assert human.is_human
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "contact.schema.json").write_text(json.dumps(SCHEMA))
    text = shipped.read_text().replace('[[tiers]]\nmodel = "human"', '[[tiers]]\nmodel = "'
        + GEMMA + '"\nexamples = false\nresponse_schema = "schemas/contact.schema.json"\n\n'
        '[[tiers]]\nmodel = "human"')  # fmt: skip
    (tmp_path / "local.toml").write_text(text)
    _, second, _ = load_policy(tmp_path / "local.toml").ladder
    assert not second.few_shot
    assert second.params["response_format"]["json_schema"]["schema"] == SCHEMA
