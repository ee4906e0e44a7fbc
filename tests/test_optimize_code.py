"""Code in the optimizer: tests as gates, function names bound, verdicts kept, prices unknown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.bench import load_dataset
from cascade.cli import main
from cascade.optimize.table import kind_table
from cascade.policy import load_policy
from cascade.store.verdicts import VerdictCache
from cascade.testing import verdict_of
from cascade.validators import passes_tests
from tests.synthetic import write_code_dataset


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty code tasks: cheap answers of every kind, a right big model, an unpriced one."""
    return write_code_dataset(tmp_path_factory.mktemp("code"), tasks=40)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run a ``cascade`` command with ``--json``; what it printed."""
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_a_misnamed_function_is_bound_to_the_entry_point_and_the_verdict_says_so() -> None:
    """One top-level function: bound to the name the tests call, and the pass names the binding."""
    answer = "def solve(x):\n    return x + 1\n"
    verdict = verdict_of(passes_tests(), answer, tests=["assert inc(1) == 2"], entry_point="inc")
    assert verdict.passed
    assert verdict.reason == "bound solve to inc"


def test_an_ambiguous_binding_fails_with_its_reason() -> None:
    """Two functions that both fit the tests' calls: no guess, a failure naming both."""
    answer = "def a(x):\n    return x\n\ndef b(x):\n    return x + 1\n"
    verdict = verdict_of(passes_tests(), answer, tests=["assert inc(1) == 2"], entry_point="inc")
    assert not verdict.passed
    assert "2 of its functions (a, b) fit" in verdict.reason


def test_arity_picks_the_one_function_that_fits() -> None:
    """Of a helper and the solution, the one whose parameters fit the tests' calls is bound."""
    answer = "def helper(x):\n    return x\n\ndef main(x, y):\n    return x + y\n"
    verdict = verdict_of(passes_tests(), answer, tests=["assert add(1, 2) == 3"], entry_point="add")
    assert verdict.passed
    assert verdict.reason == "bound main to add"


def test_a_task_without_tests_fails_or_faults_as_asked() -> None:
    """``missing="fail"`` escalates a task that brings no tests; the default says it is a fault."""
    failed = verdict_of(passes_tests(missing="fail"), "def f():\n    pass\n")
    faulted = verdict_of(passes_tests(), "def f():\n    pass\n")
    assert not failed.passed
    assert not failed.fault
    assert faulted.fault


def test_hidden_tests_never_reach_the_validators(suite: Path) -> None:
    """The gold tests are taken off the tasks; the visible ones stay."""
    data = load_dataset(suite)
    assert all("hidden_tests" not in t.extra and "visible_tests" in t.extra for t in data.tasks)


def test_code_is_optimized_with_tests_as_gates_and_replays_as_simulated(
    suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chosen ladder runs the visible tests; the engine agrees; the unpriced model is named."""
    out = tmp_path / "code.toml"
    found = run_json(capsys, "optimize", str(suite), "--target-pass-rate", "0.6", "--out",
                     str(out), "--holdout", "0")  # fmt: skip
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-6
    )
    assert "mystery: its price is unknown" in found["notes"]
    policy = load_policy(out)
    assert [t.model for t in policy.spec.tiers] == ["cheap", "big"]
    kinds = [v.kind for v in policy.spec.tiers[0].validators]
    assert "tests" in kinds
    again = run_json(capsys, "optimize", str(suite), "--target-pass-rate", "0.6", "--out",
                     str(tmp_path / "again.toml"), "--holdout", "0")  # fmt: skip
    assert again["sandbox_verdicts"]["run"] == 0  # every verdict read back from the cache
    assert again["sandbox_verdicts"]["cached"] > 0


def test_the_table_judges_each_sample_and_binds_names(suite: Path, tmp_path: Path) -> None:
    """Renamed right answers pass the visible tests; lookups pass them too, and are wrong."""
    data = load_dataset(suite)
    table, left_out = kind_table(data, "code", cache=VerdictCache(tmp_path / "v.db"))
    assert left_out == ["mystery: its price is unknown"]
    assert [c.name for c in table.checks] == ["compiles", "tests"]
    tests = table.turns[0].passes[1]
    cheap = table.models.index("cheap")
    records = [data.backend.record(t, "cheap").output for t in table.task_ids]
    for column, output in enumerate(records):
        if "def solve" in output or "+ 1" in output or ".get(" in output:
            assert tests[cheap, column], output
        else:
            assert not tests[cheap, column], output
    assert len(table.samples) == 2


def test_bench_shows_an_unpriced_model_apart(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model with no price is neither a model row nor part of the oracle, but is named."""
    report = run_json(capsys, "bench", str(suite))
    data = load_dataset(suite)
    right = sum(data.correct[(t.id, "mystery")] for t in data.tasks) / len(data.tasks)
    assert "mystery" not in report["models"]
    assert report["unpriced_models"]["mystery"]["pass_rate"] == pytest.approx(right)
    assert sorted(report["models"]) == ["big", "cheap"]
    assert report["oracle"]["cost_usd"] <= report["models"]["big"]["cost_usd"]
