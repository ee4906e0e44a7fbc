"""``cascade optimize --per-kind``: each kind's own pass rate is certified, not only the mix's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main
from tests.synthetic import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic suite: 400 multiple-choice and 400 math tasks, three models."""
    return write_dataset(tmp_path_factory.mktemp("suite"), tasks=400)


def _optimize(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["optimize", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def _comments(path: Path) -> str:
    return " ".join(line.lstrip("# ") for line in path.read_text().splitlines())


def test_per_kind_certifies_every_kinds_own_bound_where_the_pooled_claim_does_not(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At 85 %, the pooled choice leaves math's own bound below; --per-kind lifts every kind's."""
    pooled = _optimize(capsys, str(dataset), "--target-pass-rate", "0.85", "--strong-last-tier",
                       "--out", str(tmp_path / "pooled"))  # fmt: skip
    kinds = pooled["guarantee"]["chosen"]["kinds"]
    assert min(k["lower_bound"] for k in kinds.values()) < 0.85  # the mix's claim only
    assert "pooled over the kinds" in _comments(tmp_path / "pooled" / "math.toml")
    each = _optimize(capsys, str(dataset), "--target-pass-rate", "0.85", "--per-kind",
                     "--strong-last-tier", "--out", str(tmp_path / "each"))  # fmt: skip
    kinds = each["guarantee"]["chosen"]["kinds"]
    assert sorted(kinds) == ["math", "multiple_choice"]
    assert all(k["lower_bound"] >= 0.85 for k in kinds.values())
    assert "for each kind (math, multiple_choice) on its own" in each["guarantee"]["statement"]
    assert "--per-kind" in each["command"]
    for kind in kinds:
        text = _comments(tmp_path / "each" / f"{kind}.toml")
        assert f"This file's own claim: {kind}'s pass rate on new tasks is at least 85.0%" in text
        rate = kinds[kind]["certification_pass_rate"]
        assert f"On its certification tasks it passed {rate:.1%}" in text
        assert "pooled" not in text
