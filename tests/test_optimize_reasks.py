"""Re-ask budgets: served from recorded ``alt_outputs``, graded per answer, searched, written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cascade.backends.base import Request
from cascade.backends.replay import ReplayBackend
from cascade.bench import load_dataset
from cascade.bench.suite import policy_cascades
from cascade.cli import main
from cascade.errors import ConfigError
from cascade.optimize.table import kind_table
from cascade.policy import load_policies
from cascade.validators import all_of
from tests.synthetic import write_dataset


@pytest.fixture(scope="module")
def resampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic suite where the cheap models recorded two more samples of each answer."""
    return write_dataset(tmp_path_factory.mktemp("suite"), alts=2)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run a ``cascade`` command with ``--json``; what it printed."""
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def ask(backend: ReplayBackend, reask: int) -> tuple[str, float | None]:
    """What the replay serves ``tiny`` on task ``math-0`` at re-ask ``reask``."""
    messages = ({"role": "user", "content": "question math-0"},)
    request = Request("tiny", messages, task_id="math-0", reask=reask)
    response = asyncio.run(backend.complete(request))
    return response.text, response.confidence


def test_a_reask_is_served_the_next_sample_with_its_own_confidence_and_grade(
    resampled: Path,
) -> None:
    """Ask k gets alternative k (the last once they run out); each is graded on its own."""
    rows = [json.loads(line) for line in (resampled / "responses.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["task_id"] == "math-0" and r["model"] == "tiny")
    first, second = row["alt_outputs"]
    backend = ReplayBackend.from_dataset(resampled)
    assert ask(backend, 0) == (row["output"], row["confidence"])
    assert ask(backend, 1) == (first["output"], first["confidence"])
    assert ask(backend, 2) == ask(backend, 5) == (second["output"], second["confidence"])
    data = load_dataset(resampled)
    assert data.right_at("math-0", "tiny", 1) is first["correct"]
    assert data.right_at("math-0", "tiny", 4) is second["correct"]
    assert data.is_right("math-0", "tiny", second["output"]) is second["correct"]
    assert data.is_right("math-0", "tiny", "an answer nobody recorded") is False


def test_worked_examples_are_not_taken_for_reasks(resampled: Path, tmp_path: Path) -> None:
    """A tier sent the policy's worked examples still gets the first answer on its first ask."""
    policy = tmp_path / "math.toml"
    policy.write_text(
        'task_type = "math"\n\n[[examples]]\ninput = "1 + 1"\noutput = "#### 2"\n\n'
        '[[tiers]]\nmodel = "tiny"\nreasks = 1\nvalidators = [{ kind = "matches", '
        'pattern = "NEVER" }]\n\n[[tiers]]\nmodel = "big"\ntrusted = true\n'
    )
    data = load_dataset(resampled)
    cascade = policy_cascades(str(policy), data, all_of())["*"]
    task = next(t for t in data.tasks if t.id == "math-0")
    steps = asyncio.run(cascade.arun(task)).steps
    record = data.backend.record("math-0", "tiny")
    assert [s.output for s in steps[:2]] == [record.output, record.alt_outputs[0]]
    assert [str(s.kind) for s in steps] == ["call", "reask", "call"]


def test_bad_alt_outputs_are_named(tmp_path: Path) -> None:
    """A malformed ``alt_outputs`` names the file, line and entry."""
    folder = write_dataset(tmp_path / "suite", tasks=2)
    lines = (folder / "responses.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["alt_outputs"] = [{"output": "fine"}, {"text": "no output field"}]
    lines[2] = json.dumps(row)
    (folder / "responses.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"responses\.jsonl:3: alt_outputs\[1\] needs a string"):
        load_dataset(folder)
    row["alt_outputs"] = "not a list"
    lines[2] = json.dumps(row)
    (folder / "responses.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ConfigError, match=r"responses\.jsonl:3: field 'alt_outputs' must be a list"
    ):
        ReplayBackend.from_dataset(folder)


def test_reask_budgets_are_searched_written_and_replay_as_simulated(
    resampled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where re-asks are recorded, the optimizer uses them, and the engine agrees to the cent."""
    out, plain = tmp_path / "chosen", tmp_path / "plain"
    found = run_json(
        capsys, "optimize", str(resampled), "--target-pass-rate", "0.85", "--out", str(out)
    )
    assert any("re-ask" in text for text in found["ladders"].values())
    budgets = [t.reasks for p in load_policies(out) for t in p.spec.tiers]
    assert max(budgets) >= 1
    assert budgets[-1] == 0  # the trusted last tier is never re-asked
    assert found["train"]["pass_rate"] == pytest.approx(found["simulated_train"]["pass_rate"])
    assert found["train"]["cost_per_task_usd"] == pytest.approx(
        found["simulated_train"]["cost_per_task_usd"], rel=1e-5
    )
    held = run_json(capsys, "bench", str(resampled), "--policy", str(out), "--split", "held-out")
    (ladder,) = held["ladders"].values()
    assert ladder["pass_rate"] == pytest.approx(found["held_out"]["pass_rate"])
    assert ladder["cost_per_task_usd"] == pytest.approx(found["held_out"]["cost_per_task_usd"])
    without = run_json(
        capsys, "optimize", str(resampled), "--target-pass-rate", "0.85", "--out", str(plain),
        "--max-reasks", "0",
    )  # fmt: skip
    assert not any("re-ask" in text for text in without["ladders"].values())
    assert without["gates_searched"] < found["gates_searched"]
    # Asking the cheap model again is cheaper than asking a dearer one, on unseen tasks too.
    assert found["held_out"]["cost_per_task_usd"] < without["held_out"]["cost_per_task_usd"]
    assert found["held_out"]["pass_rate"] >= 0.85


def test_without_recorded_samples_nothing_is_reasked(tmp_path: Path) -> None:
    """A suite with no ``alt_outputs`` offers no re-ask: asking again would repeat the answer."""
    table, _ = kind_table(
        load_dataset(write_dataset(tmp_path / "s", tasks=20)), "math", max_reasks=3
    )
    assert len(table.turns) == 1
    assert not table.reasks.any()
    assert table.samples == ()
