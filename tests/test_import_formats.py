"""``cascade import``: each log format's sample file becomes a dataset that bench can replay."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cascade.bench.dataset import load_dataset
from cascade.cli import main
from cascade.traffic import import_logs

DATA = Path(__file__).parent / "data" / "import"
SECRETS = ("sk-proj-SECRETabcdef1234567890", "sk-live-HEADERSECRET123456", "gw-TOKEN-98765432zz",
           "pw-URLSECRET42", "alice:pw")  # fmt: skip
SAMPLES = {
    "openai-chat": (["openai_chat.jsonl"], None),
    "openai-batch": (["batch_input.jsonl", "batch_output.jsonl", "batch_errors.jsonl"], None),
    "mapped": (["mapped.jsonl"], "mapped_map.json"),
    "otlp": (["otlp.jsonl"], None),
}


def _import(fmt: str, out: Path) -> Path:
    files, mapping = SAMPLES[fmt]
    import_logs(fmt, [DATA / f for f in files], out, mapping=mapping and DATA / mapping)
    return out


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_the_sample_loads_as_a_dataset(fmt: str, tmp_path: Path) -> None:
    """Each format's sample imports into a dataset that load_dataset reads."""
    data = load_dataset(_import(fmt, tmp_path / "ds"))
    assert len(data.tasks) >= 5
    assert data.models


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_bench_runs_on_an_imported_dataset(fmt: str, tmp_path: Path) -> None:
    """The bench command with --ladder M replays the imported dataset."""
    folder = _import(fmt, tmp_path / "ds")
    model = load_dataset(folder).models[0]
    assert main(["bench", str(folder), "--ladder", model, "--json"]) == 0


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_no_secret_reaches_the_output_folder(fmt: str, tmp_path: Path) -> None:
    """No key, header, token or URL password of the logs is anywhere in the written folder."""
    folder = _import(fmt, tmp_path / "ds")
    raw = "".join((DATA / f).read_text() for f in SAMPLES[fmt][0])
    assert any(s in raw for s in SECRETS)  # the sample does carry secrets
    for path in folder.iterdir():
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, (path.name, secret)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_malformed_lines_are_quarantined_with_file_and_line(fmt: str, tmp_path: Path) -> None:
    """Each bad line is in quarantine.jsonl with its file, line and reason."""
    folder = _import(fmt, tmp_path / "ds")
    bad = _rows(folder / "quarantine.jsonl")
    assert bad
    names = set(SAMPLES[fmt][0])
    for row in bad:
        assert row["file"] in names
        assert isinstance(row["line"], int)
        assert row["reason"]


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_reimporting_gives_the_same_ids(fmt: str, tmp_path: Path) -> None:
    """Task ids are a hash of the request, so a second import gives the same ones."""
    first = _rows(_import(fmt, tmp_path / "a") / "tasks.jsonl")
    second = _rows(_import(fmt, tmp_path / "b") / "tasks.jsonl")
    assert [t["id"] for t in first] == [t["id"] for t in second]


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_identical_requests_merge_with_a_weight(fmt: str, tmp_path: Path) -> None:
    """Repeated requests are one task whose weight counts them; the weights sum to the calls."""
    folder = tmp_path / "ds"
    files, mapping = SAMPLES[fmt]
    done = import_logs(fmt, [DATA / f for f in files], folder, mapping=mapping and DATA / mapping)
    tasks = _rows(folder / "tasks.jsonl")
    assert sum(int(t["weight"]) for t in tasks) == done.calls
    assert any(int(t["weight"]) > 1 for t in tasks)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_tools_and_response_format_travel_with_the_task(fmt: str, tmp_path: Path) -> None:
    """A request's tools become the task's functions, its response_format the task's schema."""
    tasks = _rows(_import(fmt, tmp_path / "ds") / "tasks.jsonl")
    calls = [t for t in tasks if t["kind"] == "function_call"]
    shaped = [t for t in tasks if t.get("schema")]
    assert calls
    assert calls[0]["functions"][0]["name"] == "get_weather"
    assert shaped
    assert shaped[0]["schema"]["required"] == ["name", "email"]


def test_a_logged_cost_is_kept_and_a_missing_one_priced(tmp_path: Path) -> None:
    """The log's cost is kept; without one litellm's map prices it; an unknown model is null."""
    folder = _import("openai-chat", tmp_path / "ds")
    rows = _rows(folder / "responses.jsonl")
    logged = [r for r in rows if r["cost_usd"] == pytest.approx(0.0001)]
    unknown = [r for r in rows if r["model"] == "acme-llm-7b"]
    priced = [r for r in rows if r["model"] == "gpt-4o-2024-08-06"]
    assert logged
    assert all(r["cost_usd"] is None for r in unknown)
    assert priced
    assert all(isinstance(r["cost_usd"], float) and r["cost_usd"] > 0 for r in priced)
    assert all(r["latency_s"] is not None and r["correct"] is None for r in rows)


def test_each_model_keeps_its_first_answer(tmp_path: Path) -> None:
    """A task asked of one model twice keeps the first answer the log holds."""
    log = tmp_path / "log.jsonl"
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "2+2?"}]}
    answers = [{"message": {"role": "assistant", "content": a}} for a in ("4", "four")]
    lines = [{"request": ask, "response": {"model": "m", "choices": [a]}} for a in answers]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    import_logs("openai-chat", [log], tmp_path / "ds")
    [row] = _rows(tmp_path / "ds" / "responses.jsonl")
    assert row["output"] == "4"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["import", "openai-chat", "missing.jsonl", "--out", "ds"], "missing.jsonl"),
        (["import", "mapped", "log.jsonl", "--map", "nomap.json", "--out", "ds"], "nomap.json"),
        (["import", "mapped", "log.jsonl", "--map", "bad.json", "--out", "ds"], "bad.json"),
    ],
)
def test_bad_input_names_the_file_and_exits_2(
    argv: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A missing log, a missing map or a bad map is an error naming the file, exit status 2."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "mapped.jsonl", tmp_path / "log.jsonl")
    (tmp_path / "bad.json").write_text('{"answer": "res/text", "model": "/m", "input": "/i"}')
    assert main(argv) == 2
    assert named in capsys.readouterr().err


def test_an_unknown_format_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A format the command does not know is refused by the parser, exit status 2."""
    with pytest.raises(SystemExit) as stopped:
        main(["import", "csv", "x.csv", "--out", "ds"])
    assert stopped.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_credential_echoed_in_the_prompt_or_answer_is_redacted(tmp_path: Path) -> None:
    """A request's own credentials are removed from its messages and answer too."""
    token, password = "gw-plain-token-4242", "hunter2-plain-pw"
    ask = {
        "model": "m",
        "extra_headers": {"X-Gateway-Token": token},
        "api_base": f"https://bob:{password}@proxy.example/v1",
        "messages": [{"role": "user", "content": f"why is {token} refused? pw {password}"}],
    }
    reply = {"model": "m", "choices": [{"message": {"role": "assistant", "content": token}}]}
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"request": ask, "response": reply}) + "\n")
    folder = tmp_path / "ds"
    import_logs("openai-chat", [log], folder)
    for path in folder.iterdir():
        assert token not in path.read_text()
        assert password not in path.read_text()
    assert "[REDACTED]" in (folder / "tasks.jsonl").read_text()


def test_the_command_says_how_many_lines_it_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The import's summary names the calls, the tasks and the quarantined lines."""
    out = tmp_path / "ds"
    assert main(["import", "openai-chat", str(DATA / "openai_chat.jsonl"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "36 calls as 12 tasks" in said
    assert "2 lines quarantined" in said
