"""``cascade run`` over files of tasks, and ``cascade report`` on what it stored."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cascade import Store
from cascade.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """A folder with two policies and a recorded dataset for the models they name."""
    policies = tmp_path / "policies"
    policies.mkdir()
    for task_type in ("labels", "moods"):
        (policies / f"{task_type}.toml").write_text(
            textwrap.dedent(
                f"""\
                task_type = "{task_type}"
                [[tiers]]
                model = "openai/small"
                [[tiers]]
                model = "big"
                [[validators]]
                kind = "one_of"
                labels = ["yes", "no", "happy"]
                """
            )
        )
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    rows = []
    for number in range(1, 7):
        small = "yes" if number % 2 else "maybe"  # even tasks fail at the small tier
        for model, output, cost in (("small", small, 0.001), ("big", "no", 0.01)):
            rows.append(
                {"task_id": f"t{number}", "model": model, "output": output, "cost_usd": cost}
            )
    (dataset / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dataset / "models.json").write_text("[]")
    return tmp_path


MIXED = [
    '{"id": "t1", "type": "labels", "input": "first"}',
    '{"id": "t2", "type": "labels", "input": "second"}',
    "{not json at all",
    '{"id": "t3", "type": "moods", "input": "third"}',
    '{"id": "t4", "input": "no type given"}',
    '{"id": "t5", "type": "poetry", "input": "no policy for this type"}',
    '{"type": "labels", "input": "no id"}',
    '{"id": "t6", "type": "labels"}',
    "",
    '["an array, not a task"]',
    '{"id": "t2", "type": "labels", "input": "a repeated id"}',
]


def run(job: Path, tasks: Path, *extra: str) -> int:
    """``cascade run`` with the job's policies and replay dataset."""
    return main(
        [
            "run",
            str(tasks),
            "--policy",
            str(job / "policies"),
            "--replay",
            str(job / "dataset"),
            "--out",
            str(job / "results.jsonl"),
            "--store",
            str(job / "run.db"),
            *extra,
        ]
    )


def test_mixed_input_loses_nothing(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Good lines get results; bad ones are quarantined with line and reason; none vanish."""
    tasks = job / "tasks.jsonl"
    tasks.write_text("\n".join(MIXED) + "\n")
    assert run(job, tasks) == 0
    results = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    quarantine = [
        json.loads(line) for line in (job / "results.quarantine.jsonl").read_text().splitlines()
    ]
    by_id = {r["id"]: r for r in results}
    assert len(by_id) == len(results), "one result line per task"
    assert {by_id[t]["status"] for t in ("t1", "t2", "t3")} == {"accepted"}
    assert by_id["t2"]["model"] == "big"
    assert by_id["t1"]["model"] == "small"
    assert {by_id[t]["status"] for t in ("t4", "t5", "t6")} == {"quarantined"}
    lines = {entry["line"]: entry["reason"] for entry in quarantine}
    assert sorted(lines) == [3, 5, 6, 7, 8, 10, 11]
    assert "not valid JSON" in lines[3]
    assert "no policy serves task type 'default'" in lines[5]
    assert "'poetry'" in lines[6]
    assert "'id' must be a non-empty string" in lines[7]
    assert "needs exactly one of 'input' or 'messages'" in lines[8]
    assert "must be a JSON object" in lines[10]
    assert lines[11] == "duplicate id 't2': first on line 2, which keeps its result"
    out = capsys.readouterr().out
    assert "read        10 lines (0 tasks were done before)" in out
    assert "duplicates  1 repeated task ids kept their first result" in out
    with Store(job / "run.db") as store:
        assert store.count("results") == len(results) == 6


def test_csv_input(job: Path) -> None:
    """CSV with a header row streams like JSONL."""
    tasks = job / "tasks.csv"
    tasks.write_text(
        'id,type,input,meta\nt1,labels,"one, with a comma","{""k"": 1}"\nt2,moods,two,\n'
    )
    assert run(job, tasks) == 0
    results = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    assert sorted((r["id"], r["status"]) for r in results) == [
        ("t1", "accepted"),
        ("t2", "accepted"),
    ]


def test_a_missing_tasks_file_is_named(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong path is a clear error, not a traceback."""
    assert run(job, job / "nope.jsonl") == 2
    assert "tasks file" in capsys.readouterr().err


def test_a_bad_policy_stops_the_run_before_it_starts(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Policy problems are reported with file and line, and no result file is written."""
    (job / "policies" / "labels.toml").write_text("task_type = 3\n[[tiers]]\nmodel = 'x'\n")
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    assert run(job, tasks) == 2
    assert "labels.toml:1: task_type: Input should be a valid string" in capsys.readouterr().err
    assert not (job / "results.jsonl").exists()


@pytest.mark.skipif(not (SHARED / "bfcl-simple").is_dir(), reason="../shared is not beside us")
def test_a_replay_run_over_bfcl_matches_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every bfcl task ends in a definite status, and the run's summary is the store's report."""
    out, store = tmp_path / "results.jsonl", tmp_path / "run.db"
    argv = ["run", str(SHARED / "bfcl-simple" / "tasks.jsonl"), "--policy"]
    argv += [str(ROOT / "policies" / "function_call.toml"), "--replay", str(SHARED / "bfcl-simple")]
    assert main([*argv, "--out", str(out), "--store", str(store)]) == 0
    printed = capsys.readouterr().out
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(results) == 400
    assert {r["status"] for r in results} <= {"accepted", "exhausted", "budget_exhausted"}
    assert main(["report", str(store)]) == 0
    reported = capsys.readouterr().out
    assert reported.strip()
    header, reported = reported.split("\n", 1)
    assert header.endswith("(1 run in the store)")
    assert printed.rstrip().endswith(reported.rstrip())
    assert main(["report", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tasks"] == 400
    assert sum(data["statuses"].values()) == 400
    assert data["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in results))


def test_report_on_a_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reporting on a store that does not exist says so, and creates nothing."""
    assert main(["report", str(tmp_path / "none.db")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_a_line_that_is_not_utf8_is_quarantined(job: Path) -> None:
    """Bytes that are not UTF-8 spoil only their own line, which is quarantined with its number."""
    tasks = job / "tasks.jsonl"
    tasks.write_bytes(b'{"id": "t1", "type": "labels", "input": "one"}\n{"id": "\xff"}\n')
    assert run(job, tasks) == 0
    quarantine = (job / "results.quarantine.jsonl").read_text().splitlines()
    assert [json.loads(q)["line"] for q in quarantine] == [2]
    assert "not UTF-8" in json.loads(quarantine[0])["reason"]


def test_a_csv_row_that_is_not_utf8_is_quarantined_with_its_line(job: Path) -> None:
    """Bad bytes spoil only their own CSV row: quarantined under its line; the rest all run."""
    tasks = job / "tasks.csv"
    first = "".join(f"t{n},labels,row {n}\n" for n in (1, 2, 3)).encode()
    after = "".join(f"t{n},labels,row {n}\n" for n in (4, 5, 6)).encode()
    tasks.write_bytes(b"id,type,input\n" + first + b"t9,labels,\xff\xfe\n" + after)
    assert run(job, tasks) == 0
    lines = (job / "results.quarantine.jsonl").read_text().splitlines()
    quarantine = [json.loads(q) for q in lines]
    assert [q["line"] for q in quarantine] == [5]
    assert "not UTF-8" in quarantine[0]["reason"]
    assert "t9,labels," in quarantine[0]["raw"]
    assert sorted(_results(job)) == ["t1", "t2", "t3", "t4", "t5", "t6"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_byte_order_mark_is_not_part_of_the_first_task(job: Path, suffix: str) -> None:
    """A file saved with a UTF-8 BOM: its first task runs like the others."""
    tasks = job / f"tasks{suffix}"
    if suffix == ".csv":
        body = "id,type,input\nt1,labels,one\nt2,labels,two\n"
    else:
        body = "".join(
            json.dumps({"id": f"t{n}", "type": "labels", "input": "x"}) + "\n" for n in (1, 2)
        )
    tasks.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert run(job, tasks) == 0
    assert (job / "results.quarantine.jsonl").read_text() == ""
    assert sorted(_results(job)) == ["t1", "t2"]


def test_a_quarantined_id_then_a_good_line_with_it_counts_a_duplicate(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first line with an id wins even when it was quarantined, and the second is a repeat."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(
        '{"id": "t1", "type": "poetry", "input": "no policy"}\n'
        '{"id": "t1", "type": "labels", "input": "fine"}\n'
    )
    assert run(job, tasks) == 0
    results = [json.loads(line) for line in (job / "results.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in results] == [("t1", "quarantined")]
    assert "duplicates  1" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--rpm", "--tpm"])
@pytest.mark.parametrize("value", ["openai", "openai=0", "openai=many", "=5"])
def test_a_bad_rate_limit_is_named(
    job: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """A rate limit must be KEY=N with N > 0; the error quotes the option."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    assert run(job, tasks, flag, value) == 2
    assert f"{flag} {value!r}: expected KEY=N" in capsys.readouterr().err


def _results(job: Path) -> dict[str, dict[str, object]]:
    lines = (job / "results.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def _quarantine(job: Path) -> dict[int, str]:
    lines = (job / "results.quarantine.jsonl").read_text().splitlines()
    return {e["line"]: e["reason"] for e in map(json.loads, lines)}


def test_bad_csv_rows_are_quarantined_with_their_line_and_swallow_nothing(job: Path) -> None:
    """An unclosed quote or a wrong field count costs that row alone; the next rows run."""
    tasks = job / "tasks.csv"
    tasks.write_text(
        "id,type,input\n"
        "t1,labels,fine\n"
        't2,labels,"never closed\n'
        "t3,labels,after the bad quote\n"
        't4,labels,"two\nlines"\n'
        "t5,labels,one,too many\n"
        "t8,labels\n"
        "t6,labels,last\n"
    )
    assert run(job, tasks) == 0
    assert sorted(_results(job)) == ["t1", "t3", "t4", "t6"]
    assert _quarantine(job) == {
        3: "bad CSV row: a quoted field is never closed",
        7: "bad CSV row: the row has 4 fields, the header 3",
        8: "bad CSV row: the row has 2 fields, the header 3",
    }


def test_a_duplicate_id_is_named_with_both_lines(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The repeated line is quarantined, naming the line that keeps the id."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(
        '{"id": "t1", "type": "labels", "input": "a"}\n'
        '{"id": "t3", "type": "labels", "input": "b"}\n'
        '{"id": "t1", "type": "labels", "input": "again"}\n'
    )
    assert run(job, tasks) == 0
    assert _quarantine(job) == {3: "duplicate id 't1': first on line 1, which keeps its result"}
    assert sorted(_results(job)) == ["t1", "t3"]
    assert "duplicates  1 repeated task ids" in capsys.readouterr().out


def test_an_empty_tasks_file_gets_a_warning(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with no task says so instead of finishing silently."""
    tasks = job / "tasks.jsonl"
    tasks.write_text("\n")
    assert run(job, tasks) == 0
    assert f"warning     {tasks} holds no tasks" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--out", "--store", "--log"])
def test_an_unwritable_path_is_exit_2_naming_it(
    job: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """A path in a missing folder: exit 2, the path named, no traceback, nothing run."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    bad = job / "no such folder" / "file"
    code = main(["run", str(tasks), "--policy", str(job / "policies"), "--replay",
                 str(job / "dataset"), "--out", str(job / "results.jsonl"),
                 "--store", str(job / "run.db"), flag, str(bad)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err
    assert "Traceback" not in err


def test_report_on_a_file_that_is_not_a_store_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with the file named, not a traceback; the file is left as it was."""
    path = tmp_path / "results.jsonl"
    path.write_text('{"id": "t1"}\n' * 100)
    assert main(["report", str(path)]) == 2
    assert f"{path} cannot be used as a cascade store: file is not a database" in (
        capsys.readouterr().err
    )
    assert path.read_text() == '{"id": "t1"}\n' * 100  # untouched


def test_report_shows_the_latest_run_by_default_one_run_or_all(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs in one store: the latest by default, --run for one, --all for both."""
    first, second = job / "first.jsonl", job / "second.jsonl"
    first.write_text(MIXED[0] + "\n" + MIXED[1] + "\n")
    second.write_text(MIXED[3] + "\n")
    assert run(job, first) == 0
    assert run(job, second) == 0
    capsys.readouterr()
    with Store(job / "run.db") as store:
        runs = [r for (r,) in store.select("SELECT run_id FROM runs ORDER BY created_at")]
    assert main(["report", str(job / "run.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 1
    assert main(["report", str(job / "run.db"), "--run", runs[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 2
    assert main(["report", str(job / "run.db"), "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 3
    assert main(["report", str(job / "run.db"), "--run", "nope"]) == 2
    assert "has no run 'nope'" in capsys.readouterr().err


def test_show_prints_one_tasks_steps_verdicts_and_costs(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its result, each step with its model, verdicts and cost, as text or JSON."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n" + MIXED[1] + "\n")
    assert run(job, tasks) == 0
    capsys.readouterr()
    assert main(["show", str(job / "run.db"), "t1"]) == 0
    assert ", 1 step stored" in capsys.readouterr().out
    assert main(["show", str(job / "run.db"), "t2"]) == 0
    out = capsys.readouterr().out
    assert "accepted: tier 1 big, $0.011000, 2 steps stored" in out
    assert "step 0 tier 0 call openai/small" in out
    assert "fail one_of(['yes', 'no', 'happy']): 'maybe' is not one of" in out
    assert "step 1 tier 1 call big" in out
    assert "    pass one_of(['yes', 'no', 'happy'])\n" in out  # no reason: no dangling colon
    assert main(["show", str(job / "run.db"), "t2", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["cost_usd"] for s in shown["steps"]] == [0.001, 0.01]
    assert main(["show", str(job / "run.db"), "t404"]) == 2
    assert "holds no task 't404'" in capsys.readouterr().err


def test_dry_run_estimates_the_floor_and_the_worst_case_and_calls_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Priced tiers: the floor and worst case follow from token counts, prices and re-asks."""
    (tmp_path / "p.toml").write_text(
        textwrap.dedent(
            """\
            task_type = "echo"
            [[tiers]]
            model = "openai/cheap"
            reasks = 1
            params = { max_tokens = 100 }
            price = { input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }
            [[tiers]]
            model = "openai/dear"
            params = { max_tokens = 100 }
            price = { input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }
            [[validators]]
            kind = "one_of"
            labels = ["ok"]
            """
        )
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"t{n}", "input": "hi"}) + "\n" for n in range(10)))
    code = main(["run", str(tasks), "--policy", str(tmp_path / "p.toml"), "--dry-run",
                 "--store", str(tmp_path / "run.db")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    from cascade.tokens import count_tokens  # noqa: PLC0415

    prompt = count_tokens([{"role": "user", "content": "hi"}])
    floor = 10 * (prompt * 1.0 + 100 * 2.0) / 1e6  # answers no longer than max_tokens
    worst = 10 * ((prompt * 1 + 100 * 2) + ((prompt + 100) * 1 + 100 * 2)
                  + (prompt * 10 + 100 * 20)) / 1e6  # fmt: skip
    assert (
        f"echo: 10 tasks, {10 * prompt} prompt tokens; floor ${floor:.6f}, worst case ${worst:.6f}"
        in out
    )
    assert "no model was called" in out
    assert not (tmp_path / "run.db").exists()


def test_a_replay_missing_a_tiers_model_is_refused_at_the_start(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy naming a model the dataset never recorded: exit 2 at file:line, nothing run."""
    policy = job / "policies" / "labels.toml"
    policy.write_text(policy.read_text().replace('model = "big"', 'model = "huge"'))
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n")
    assert run(job, tasks) == 2
    err = capsys.readouterr().err
    said = "tiers[1].model: the replayed dataset dataset has no answers of 'huge'"
    assert f"{policy}:5: {said} (it has big, small)" in err
    assert not (job / "run.db").exists()


def test_a_policy_edited_in_place_is_named_on_resume(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resume under edited policy files stops, naming the change, until it is said ok."""
    tasks = job / "tasks.jsonl"
    tasks.write_text(MIXED[0] + "\n" + MIXED[1] + "\n")
    assert run(job, tasks) == 0
    policy = job / "policies" / "labels.toml"
    policy.write_text(policy.read_text() + "# edited\n")
    capsys.readouterr()
    assert run(job, tasks) == 2
    err = capsys.readouterr().err
    assert f"{job / 'policies'} changed since run " in err
    assert "--policy-changed ok" in err
    assert run(job, tasks, "--policy-changed", "ok") == 0
    assert "the rest runs under the new one" in capsys.readouterr().out
    assert run(job, tasks) == 0  # the run now knows the edited policy
