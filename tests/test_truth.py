"""``cascade truth --by served``: imported traffic, another model's answers, judged against today's.

Each test imports a small openai-chat log written here (one served model, or two when the log
mixed them), adds a cheaper model's answers as ``cascade record`` adds them (rows with
``correct: null`` and no served mark), runs ``cascade truth`` and reads the rows back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main

SERVED, CHEAP = "gpt-4o-mini", "cheap-model"
CONTACT = {"type": "json_schema", "json_schema": {"name": "contact", "schema": {"type": "object"}}}

# (prompt, served answer, the cheap model's answer, whether the two agree)
ASKED = [
    ("Extract: Ada <ada@example.com>", '{"name": "Ada", "email": "ada@example.com"}',
     '{"email": "ada@example.com", "name": "Ada"}', True),  # keys in another order
    ("Extract: Alan <alan@example.org>", '{"name": "Alan", "email": "alan@example.org"}',
     'Here it is:\n```json\n{"name": "alan", "email": "alan@example.org"}\n```', True),
    ("Extract: Grace <grace@example.net>", '{"name": "Grace", "email": "grace@example.net"}',
     '{"name": "Grace", "email": "g@example.net"}', False),
    ("What is 17 * 23?", "391", "The product is 391.0", True),  # a number written differently
    ("What is 1200 + 34?", "1,234", "1234", True),
    ("Capital of Australia?", "Canberra", "  canberra ", True),
    ("Largest planet?", "Jupiter", "Saturn", False),
]  # fmt: skip


def log_line(prompt: str, model: str, answer: str) -> str:
    """One logged request/response pair, as people log them."""
    request: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if prompt.startswith("Extract"):
        request["response_format"] = CONTACT
    response = {"model": model, "choices": [{"message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10}}  # fmt: skip
    return json.dumps({"request": request, "response": response, "latency_ms": 300}) + "\n"


def add_cheap(folder: Path, answers: dict[str, str]) -> None:
    """Add the cheap model's answers (by prompt) as ``cascade record`` adds them."""
    tasks = [json.loads(line) for line in (folder / "tasks.jsonl").read_text().splitlines()]
    rows = [{"task_id": t["id"], "model": CHEAP, "output": answers[t["messages"][0]["content"]],
             "prompt_tokens": 20, "completion_tokens": 10, "cost_usd": 1e-6, "latency_s": 0.1,
             "correct": None} for t in tasks if t["messages"][0]["content"] in answers]  # fmt: skip
    with (folder / "responses.jsonl").open("a") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    models = json.loads((folder / "models.json").read_text())
    models.append({"name": CHEAP, "input_usd_per_mtok": 0.01, "output_usd_per_mtok": 0.02,
                   "price_source": "test"})  # fmt: skip
    (folder / "models.json").write_text(json.dumps(models))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """The log imported, with the cheap model's answers added."""
    log = tmp_path / "log.jsonl"
    log.write_text("".join(log_line(p, SERVED, served) for p, served, _, _ in ASKED))
    folder = tmp_path / "traffic"
    assert main(["import", "openai-chat", str(log), "--out", str(folder)]) == 0
    add_cheap(folder, {p: cheap for p, _, cheap, _ in ASKED})
    return folder


def rows(folder: Path) -> list[dict[str, Any]]:
    """The dataset's response rows."""
    lines = (folder / "responses.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def prompts(folder: Path) -> dict[str, str]:
    """Each task's prompt by its id."""
    lines = (folder / "tasks.jsonl").read_text().splitlines()
    return {t["id"]: t["messages"][0]["content"] for t in map(json.loads, lines)}


def files(folder: Path) -> dict[str, bytes]:
    """Every file of the dataset, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_import_marks_the_served_answers(dataset: Path) -> None:
    """Imported rows say they were served; the added model's rows do not."""
    marked = {r["model"]: r.get("served") for r in rows(dataset)}
    assert marked == {SERVED: True, CHEAP: None}


def test_served_answers_are_right_and_others_right_where_they_match(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The served model is right by definition; the other is right exactly where it agrees."""
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    asked = prompts(dataset)
    agrees = {p: same for p, _, _, same in ASKED}
    for row in rows(dataset):
        expected = True if row["model"] == SERVED else agrees[asked[row["task_id"]]]
        assert row["correct"] is expected, asked[row["task_id"]]
    out = capsys.readouterr().out
    assert f"correct means: reproduces the served model's answers ({SERVED})" in out
    assert f"{CHEAP}  5 of 7 correct" in out


def test_the_definition_is_recorded_with_the_rows_it_judged(dataset: Path) -> None:
    """truth.json names the definition, the served model and the hash of the rows judged."""
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    truth = json.loads((dataset / "truth.json").read_text())
    digest = hashlib.sha256((dataset / "responses.jsonl").read_bytes()).hexdigest()
    assert truth == {"by": "served", "served": [SERVED], "sha256": digest}


def test_every_other_field_of_a_row_is_kept(dataset: Path) -> None:
    """Only ``correct`` changes: outputs, tokens, costs and marks stay as they were."""
    before = rows(dataset)
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    after = rows(dataset)
    assert [{k: v for k, v in r.items() if k != "correct"} for r in after] == [
        {k: v for k, v in r.items() if k != "correct"} for r in before
    ]


def test_a_log_that_mixed_served_models_accepts_either_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two models served the same request: both are right, and matching either is right."""
    log = tmp_path / "log.jsonl"
    log.write_text(
        log_line("Best colour?", SERVED, "Blue") + log_line("Best colour?", "gpt-4o", "Green")
    )
    folder = tmp_path / "mixed"
    assert main(["import", "openai-chat", str(log), "--out", str(folder)]) == 0
    add_cheap(folder, {"Best colour?": "green"})
    assert main(["truth", str(folder), "--by", "served"]) == 0
    assert all(r["correct"] for r in rows(folder))
    truth = json.loads((folder / "truth.json").read_text())
    assert truth["served"] == [SERVED, "gpt-4o"]
    assert "served models' answers (gpt-4o-mini, gpt-4o)" in capsys.readouterr().out


def test_a_served_model_can_be_named_for_unmarked_rows(dataset: Path) -> None:
    """--served names the served model of a dataset whose rows carry no mark."""
    unmarked = [{k: v for k, v in r.items() if k != "served"} for r in rows(dataset)]
    (dataset / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in unmarked))
    assert main(["truth", str(dataset), "--by", "served", "--served", SERVED]) == 0
    assert sum(r["correct"] for r in rows(dataset)) == len(ASKED) + 5


def test_a_dataset_with_no_served_answer_is_refused_unchanged(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No row marked served and no --served: an error naming the file, and nothing written."""
    unmarked = [{k: v for k, v in r.items() if k != "served"} for r in rows(dataset)]
    (dataset / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in unmarked))
    before = files(dataset)
    assert main(["truth", str(dataset), "--by", "served"]) == 2
    err = capsys.readouterr().err
    assert f"{dataset}/responses.jsonl: no answer is marked served" in err
    assert "--served MODEL" in err
    assert files(dataset) == before


def test_a_malformed_line_is_named_and_nothing_is_lost(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that is not JSON: the error names file and line; every file is as it was."""
    with (dataset / "responses.jsonl").open("a") as out:
        out.write('{"task_id": "x", "model": \n')
    before = files(dataset)
    assert main(["truth", str(dataset), "--by", "served"]) == 2
    line = len(ASKED) * 2 + 1
    assert f"{dataset}/responses.jsonl:{line}: not JSON" in capsys.readouterr().err
    assert files(dataset) == before
    assert "truth.json" not in before


def test_a_row_whose_output_is_not_text_is_named(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row the replay could not serve is refused before anything is judged."""
    with (dataset / "responses.jsonl").open("a") as out:
        out.write(json.dumps({"task_id": "x", "model": CHEAP, "output": 3}) + "\n")
    before = files(dataset)
    assert main(["truth", str(dataset), "--by", "served"]) == 2
    assert f"responses.jsonl:{len(ASKED) * 2 + 1}: field 'output'" in capsys.readouterr().err
    assert files(dataset) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "policy"], "--by policy needs --policy FILE"),
        (["--by", "served", "--policy", "p.toml"], "--policy is for --by policy"),
    ],
)
def test_options_that_do_not_go_together_are_refused(
    dataset: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A definition missing its file, or given another's, is an error; nothing is written."""
    before = files(dataset)
    assert main(["truth", str(dataset), *args]) == 2
    assert message in capsys.readouterr().err
    assert files(dataset) == before


def test_answers_added_later_make_the_definition_stale(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows recorded after truth ran: bench says they count as wrong until truth runs again."""
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    with (dataset / "responses.jsonl").open("a") as out:
        out.write(json.dumps({"task_id": rows(dataset)[0]["task_id"], "model": "late",
                              "output": "x", "correct": None}) + "\n")  # fmt: skip
    capsys.readouterr()
    assert main(["bench", str(dataset), "--json"]) == 0
    truth = json.loads(capsys.readouterr().out)["truth"]
    assert truth["stale"] is True
    assert "responses.jsonl changed since" in truth["means"]


def test_bench_names_the_definition(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every bench figure is judged by the stated definition, and the table says which."""
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    capsys.readouterr()
    assert main(["bench", str(dataset), "--ladder", f"{CHEAP},{SERVED}"]) == 0
    out = capsys.readouterr().out
    assert f"correct means: reproduces the served model's answers ({SERVED})" in out


def test_a_grading_truth_did_not_make_is_said_to_be_replaced(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows already graded (a benchmark's own labels): the command says it replaced them."""
    graded = [{**r, "correct": False} for r in rows(dataset)]
    (dataset / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in graded))
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    assert f"note: {len(graded)} answers had a correct value" in capsys.readouterr().out
    assert main(["truth", str(dataset), "--by", "served"]) == 0
    assert "note:" not in capsys.readouterr().out  # set by truth itself the second time


def test_function_calls_reproduce_the_served_calls_however_quoted_or_ordered(
    tmp_path: Path,
) -> None:
    """A task that offered tools compares calls: quoting and the calls' order do not matter."""
    tools = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
             for name in ("weather", "time")]  # fmt: skip
    asked = {
        "Weather in Paris?": ('[weather(city="Paris")]', "[weather(city='Paris')]", True),
        "Weather and time in Rome?": (
            '[{"name": "weather", "arguments": {"city": "Rome"}}, '
            '{"name": "time", "arguments": {"city": "Rome"}}]',
            "[time(city='Rome'), weather(city='Rome')]",
            True,
        ),
        "Weather in Oslo?": ('[weather(city="Oslo")]', "[weather(city='Bergen')]", False),
    }
    lines = []
    for prompt, (served, _, _) in asked.items():
        request = {"model": SERVED, "messages": [{"role": "user", "content": prompt}],
                   "tools": tools}  # fmt: skip
        response = {"model": SERVED, "usage": {"prompt_tokens": 20, "completion_tokens": 10},
                    "choices": [{"message": {"role": "assistant", "content": served}}]}  # fmt: skip
        lines.append(json.dumps({"request": request, "response": response}) + "\n")
    log = tmp_path / "log.jsonl"
    log.write_text("".join(lines))
    folder = tmp_path / "calls"
    assert main(["import", "openai-chat", str(log), "--out", str(folder)]) == 0
    add_cheap(folder, {prompt: cheap for prompt, (_, cheap, _) in asked.items()})
    assert main(["truth", str(folder), "--by", "served"]) == 0
    prompt_of = prompts(folder)
    judged = {prompt_of[r["task_id"]]: r["correct"] for r in rows(folder) if r["model"] == CHEAP}
    assert judged == {prompt: same for prompt, (_, _, same) in asked.items()}
