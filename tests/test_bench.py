"""``cascade bench`` on the recorded bfcl-simple suite: real replays, numbers that add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cascade.bench import load_dataset
from cascade.bench.dataset import is_label
from cascade.cli import main

BFCL = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bfcl-simple"
pytestmark = pytest.mark.skipif(
    not BFCL.is_dir(), reason="../shared/datasets is not beside the repo"
)

MINI, SONNET = "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20240620"


def run_json(capsys: pytest.CaptureFixture[str], *ladders: str) -> dict[str, object]:
    """Run ``cascade bench --json`` and decode what it printed."""
    args = ["bench", str(BFCL), "--json"]
    for ladder in ladders:
        args += ["--ladder", ladder]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_validators_never_see_gold() -> None:
    """No label field survives on the tasks that are replayed."""
    data = load_dataset(BFCL)
    assert len(data.tasks) == 400
    assert not any(is_label(k) for task in data.tasks for k in task.extra)


def test_single_models_match_the_dataset_card(capsys: pytest.CaptureFixture[str]) -> None:
    """Per-model accuracy and mean cost agree with SOURCE.md's table."""
    report = run_json(capsys)
    models = report["models"]
    assert isinstance(models, dict)
    assert models[MINI]["pass_rate"] == pytest.approx(0.935)
    assert models[SONNET]["pass_rate"] == pytest.approx(0.960)
    assert models[MINI]["cost_per_task_usd"] == pytest.approx(0.000062, rel=0.01)


def test_the_oracle_is_the_cheapest_right_model_per_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The oracle's figures, counted again here from the records.

    Its pass rate is the share of tasks some model got right; its cost, per task, the cheapest
    right model's (the cheapest model's where none was right).
    """
    report = run_json(capsys)
    oracle, models = report["oracle"], report["models"]
    assert isinstance(oracle, dict)
    assert isinstance(models, dict)
    data = load_dataset(BFCL)
    solved = cost = 0.0
    for task in data.tasks:
        right = [data.cost[(task.id, m)] for m in data.models if data.correct[(task.id, m)]]
        solved += bool(right)
        cost += min(right or [data.cost[(task.id, m)] for m in data.models])
    assert oracle["pass_rate"] == pytest.approx(solved / 400)
    assert oracle["cost_usd"] == pytest.approx(cost)
    assert all(oracle["pass_rate"] >= m["pass_rate"] for m in models.values())


def test_a_task_not_accepted_is_never_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ladder whose one tier rejects every answer passes nothing, however right its answers."""
    policy = tmp_path / "never.toml"
    policy.write_text(f'task_type = "function_call"\n[[tiers]]\nmodel = "{SONNET}"\n'
                      '[[validators]]\nkind = "matches"\npattern = "NEVER MATCHES"\n')  # fmt: skip
    assert main(["bench", str(BFCL), "--policy", str(policy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    never = report["ladders"]["never"]
    assert never["statuses"] == {"exhausted": 400}
    assert never["pass_rate"] == 0.0
    assert never["delivered_rate"] == pytest.approx(report["models"][SONNET]["pass_rate"])
    assert main(["bench", str(BFCL), "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "delivered" in out
    assert "--ladder ladders are checked with" not in out  # no --ladder given: nothing to say
    assert main(["bench", str(BFCL), "--ladder", f"{MINI},{SONNET}"]) == 0
    out = capsys.readouterr().out
    assert "--ladder ladders are checked with: function_call:" in out
    for column in ("false accepts", "false rejects", "delivered", "$/task", "escalated"):
        assert f"\n  {column}: " in out  # every column the table prints is defined under it
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "savings vs a model as good: the share of cost saved" in capsys.readouterr().out


def test_kind_narrows_the_tasks_and_a_wrong_kind_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--kind`` keeps that kind's tasks; a kind the dataset lacks is an error naming its kinds."""
    assert main(["bench", str(BFCL), "--kind", "function_call", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == 400
    assert main(["bench", str(BFCL), "--kind", "math"]) == 2
    assert "its kinds are function_call" in capsys.readouterr().err


def test_a_ladder_is_reproducible_and_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    """The same ladder gives the same numbers twice, and its counts add up to the tasks."""
    ladder = f"open-mistral-nemo-2407,{MINI},{SONNET}"
    first = run_json(capsys, ladder)["ladders"]
    second = run_json(capsys, ladder)["ladders"]
    assert first == second
    assert isinstance(first, dict)
    (score,) = first.values()
    assert sum(score["statuses"].values()) == 400
    assert sum(score["accepted_by_tier"]) == score["statuses"]["accepted"]
    assert 0 < score["escalation_rate"] < 1
    # A cheap first rung whose bad calls are caught costs less than sonnet alone.
    assert score["cost_usd"] < run_json(capsys)["models"][SONNET]["cost_usd"]  # type: ignore[index]


ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [
    str(ROOT / "policies" / "function_call.toml"),
    str(ROOT / "policies" / "ladders" / "function_call_agreement.toml"),
]


def run_policies(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    """``cascade bench --json`` over the shipped function-call policies."""
    args = ["bench", str(BFCL), "--json", *extra]
    for policy in SHIPPED:
        args += ["--policy", policy]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_agreement_beats_the_strong_model_for_a_fraction_of_its_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two cheap models that agree, else sonnet: a better pass rate than sonnet, far cheaper."""
    report = run_policies(capsys)
    sonnet = report["models"][SONNET]
    agree = report["ladders"]["function_call_agreement"]
    assert agree["pass_rate"] > sonnet["pass_rate"]
    assert agree["cost_usd"] < 0.4 * sonnet["cost_usd"]
    # The schema check alone lets almost every wrong call through; agreement catches most.
    assert report["ladders"]["function_call"]["false_accept_rate"] > 0.9
    assert agree["false_accept_rate"] < 0.5
    assert agree["savings_vs_equal_model"] > 0.6


def test_the_json_carries_the_designed_keys_and_intervals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """DESIGN.md's keys, 95 % intervals around each estimate, and the same numbers twice."""
    report = run_policies(capsys)
    assert report["tasks"] == 400
    for score in [*report["models"].values(), report["oracle"], *report["ladders"].values()]:
        assert {"pass_rate", "cost_usd"} <= set(score)
        low, high = score["pass_rate_ci95"]
        assert low <= score["pass_rate"] <= high
        low, high = score["cost_per_task_ci95"]
        assert low <= score["cost_per_task_usd"] <= high
    for score in report["ladders"].values():
        keys = {"accepted_by_tier", "false_accept_rate", "false_reject_rate"}
        assert keys <= set(score)
    area = report["frontier_area"]
    assert area["models_and_ladders"] >= area["models"] > 0
    assert run_policies(capsys) == report


def test_the_report_has_the_tables_and_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--report`` writes report.md naming every model and ladder, and a real PNG."""
    run_policies(capsys, "--report", str(tmp_path))
    markdown = (tmp_path / "report.md").read_text()
    for name in [*load_dataset(BFCL).models, "function_call_agreement", "oracle"]:
        assert name in markdown
    assert "- **savings vs a model as good**: the share of cost saved" in markdown
    picture = (tmp_path / "pareto.png").read_bytes()
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(picture) > 20_000


def test_the_plot_names_each_ladder_beside_its_point_and_no_label_covers_another(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ladders are labelled by name (not "ladder 1"), and the labels are kept apart."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from cascade.bench.charts import cost_figure  # noqa: PLC0415

    results = run_policies(capsys)
    figure = cost_figure(results)
    try:
        texts = [t for t in figure.axes[0].texts if t.get_text()]
        names = [t.get_text() for t in texts]
        assert "function_call_agreement" in names
        assert not [n for n in names if n.startswith("ladder ")]
        renderer = figure.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in texts]
        clashes = [(names[i], names[j]) for i in range(len(boxes))
                   for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]  # fmt: skip
        assert clashes == []
    finally:
        plt.close(figure)


def test_a_policy_naming_an_unrecorded_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names the policy, the model and what the dataset has."""
    policy = tmp_path / "other.toml"
    policy.write_text('task_type = "function_call"\n[[tiers]]\nmodel = "openai/gpt-5"\n')
    assert main(["bench", str(BFCL), "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "has no recorded outputs of openai/gpt-5" in err
    assert MINI in err


def test_latency_quantiles_come_from_the_recorded_latencies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """p50 and p95 of a model are its recorded latencies' own; a one-call ladder's are the same."""
    import numpy as np  # noqa: PLC0415

    report = run_json(capsys, MINI)
    data = load_dataset(BFCL)
    recorded = np.asarray([data.latency[(task.id, MINI)] for task in data.tasks])
    model = report["models"]
    assert isinstance(model, dict)
    mini = model[MINI]
    assert mini["latency_p50_s"] == pytest.approx(np.quantile(recorded, 0.5), abs=1e-4)
    assert mini["latency_p95_s"] == pytest.approx(np.quantile(recorded, 0.95), abs=1e-4)
    assert mini["latency_p95_s"] > mini["latency_p50_s"] > 0
    ladders = report["ladders"]
    assert isinstance(ladders, dict)
    (ladder,) = ladders.values()
    assert ladder["latency_p50_s"] == mini["latency_p50_s"]
    assert ladder["latency_p95_s"] == mini["latency_p95_s"]


def test_a_deadline_replays_each_ladder_beside_itself(capsys: pytest.CaptureFixture[str]) -> None:
    """--deadline adds each ladder with that deadline: no task escalates past it, p95 falls."""
    import numpy as np  # noqa: PLC0415

    assert main(["bench", str(BFCL), "--json", "--ladder", f"{MINI},{SONNET}",
                 "--deadline", "1.5"]) == 0  # fmt: skip
    ladders = json.loads(capsys.readouterr().out)["ladders"]
    free, timed = ladders[f"{MINI} → {SONNET}"], ladders[f"{MINI} → {SONNET}, deadline 1.5 s"]
    data = load_dataset(BFCL)
    sonnet_p90 = np.quantile([data.latency[(t.id, SONNET)] for t in data.tasks], 0.9)
    assert sonnet_p90 > 1.5  # so no escalation fits in 1.5 s after a first answer
    assert timed["accepted_by_tier"][1] == 0 < free["accepted_by_tier"][1]
    assert timed["statuses"]["deadline"] == free["escalation_rate"] * 400
    assert timed["latency_p95_s"] < free["latency_p95_s"]
    assert timed["cost_usd"] < free["cost_usd"]


def test_a_deadline_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    """--deadline 0 is refused, naming the option."""
    assert main(["bench", str(BFCL), "--ladder", MINI, "--deadline", "0"]) == 2
    assert "--deadline" in capsys.readouterr().err


def test_replayed_expected_latency_is_the_p90_of_the_tasks_it_is_timed_on() -> None:
    """A replay expects a model's p90 latency; timed on some tasks, theirs alone."""
    import numpy as np  # noqa: PLC0415

    data = load_dataset(BFCL)
    every = [data.latency[(t.id, SONNET)] for t in data.tasks]
    assert data.backend.expected_latency_s(SONNET) == pytest.approx(np.quantile(every, 0.9))
    some = [t.id for t in data.tasks[:50]]
    timed = data.backend.timed_on(some)
    expected = np.quantile([data.latency[(i, SONNET)] for i in some], 0.9)
    assert timed.expected_latency_s(SONNET) == pytest.approx(expected)
    assert timed.expected_latency_s("openai/gpt-5") is None


def test_a_batch_tier_is_priced_at_the_batch_price_and_passes_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--batch-tier: the same answers at litellm's batch price (half, for gpt-4o-mini)."""
    assert main(["bench", str(BFCL), "--json", "--ladder", f"{MINI},{SONNET}",
                 "--batch-tier", MINI]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    ladders = report["ladders"]
    sync, batch = ladders[f"{MINI} → {SONNET}"], ladders[f"{MINI} → {SONNET}, batch {MINI}"]
    assert batch["pass_rate"] == sync["pass_rate"]
    assert batch["statuses"] == sync["statuses"]
    alone = report["models"][MINI]["cost_usd"]
    assert batch["cost_usd"] == pytest.approx(sync["cost_usd"] - alone / 2, rel=1e-6)
    assert "litellm's batch price" in report["batch_pricing"][MINI]


def test_a_batch_tier_litellm_cannot_price_takes_the_discount(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model without a batch price in litellm's map costs --batch-discount of its calls."""
    assert main(["bench", str(BFCL), "--json", "--ladder", SONNET, "--batch-tier", SONNET,
                 "--batch-discount", "0.6"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    batch = report["ladders"][f"{SONNET}, batch {SONNET}"]
    assert batch["cost_usd"] == pytest.approx(0.6 * report["models"][SONNET]["cost_usd"], rel=1e-6)
    assert "60% of the recorded cost" in report["batch_pricing"][SONNET]


def test_a_policy_batch_tier_is_priced_so_beside_the_same_policy_run_synchronously(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy whose tiers say mode = "batch" is priced as --batch-tier prices the same ladder.

    gpt-4o-mini at litellm's batch price, sonnet at its tier's batch_discount; a synchronous
    row beside it, with the same answers.
    """
    shipped = Path(__file__).resolve().parents[1] / "policies" / "function_call.toml"
    policy = shipped.read_text()
    policy = policy.replace(f'model = "openai/{MINI}"', f'model = "openai/{MINI}"\nmode = "batch"')
    policy = policy.replace(
        f'model = "anthropic/{SONNET}"',
        f'model = "anthropic/{SONNET}"\nmode = "batch"\nbatch_discount = 0.6',
    )
    (tmp_path / "nightly.toml").write_text(policy)
    assert main(["bench", str(BFCL), "--json", "--policy", str(tmp_path / "nightly.toml"),
                 "--policy", str(shipped), "--batch-tier", MINI, "--batch-tier", SONNET,
                 "--batch-discount", "0.6"]) == 0  # fmt: skip
    ladders = json.loads(capsys.readouterr().out)["ladders"]
    batch, sync = ladders["nightly"], ladders["nightly, synchronous"]
    assert batch["statuses"] == sync["statuses"] == ladders["function_call"]["statuses"]
    assert sync["cost_usd"] == pytest.approx(ladders["function_call"]["cost_usd"])
    priced = ladders[f"function_call, batch {MINI}, {SONNET}"]
    assert batch["cost_usd"] == pytest.approx(priced["cost_usd"])
    assert batch["cost_usd"] < 0.6 * sync["cost_usd"]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--batch-tier", "openai/gpt-5"], "--batch-tier openai/gpt-5"),
        (["--batch-tier", MINI, "--batch-discount", "0"], "--batch-discount"),
    ],
)
def test_bad_batch_options_are_named(
    capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    """An unknown batch model, or a discount outside (0, 1], is exit 2 naming it."""
    assert main(["bench", str(BFCL), "--ladder", MINI, *extra]) == 2
    assert said in capsys.readouterr().err


def test_a_held_out_replay_plans_deadlines_by_training_latencies() -> None:
    """On --split held-out, expected latencies come from the training tasks, never held-out ones."""
    import numpy as np  # noqa: PLC0415

    from cascade.bench.dataset import split_ids  # noqa: PLC0415
    from cascade.bench.suite import WhatIf, bench  # noqa: PLC0415

    found = bench(str(BFCL), [MINI], split=("held-out", 0.3, 0), whatif=WhatIf(deadline_s=1.5))
    full = load_dataset(BFCL)
    train, held = split_ids(full, 0.3, 0)
    assert {t.id for t in found.data.tasks} == held
    expected = np.quantile([full.latency[(i, SONNET)] for i in sorted(train)], 0.9)
    assert found.data.backend.expected_latency_s(SONNET) == pytest.approx(expected)


def test_a_hedged_policy_runs_both_tiers_at_once_and_its_losers_are_not_rejections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hedge lowers p95 for a price; a cancelled answer is no false reject of the validator."""
    body = (
        'task_type = "function_call"\n[budget]\ndeadline_s = 1.5\n'
        f'[[tiers]]\nmodel = "openai/{MINI}"\n{{hedge}}\n'
        '[[tiers]]\nmodel = "anthropic/claude-3-haiku-20240307"\n'
        '[[validators]]\nkind = "function_call"\n'
    )
    (tmp_path / "plain.toml").write_text(body.format(hedge=""))
    (tmp_path / "hedged.toml").write_text(body.format(hedge="hedge = true"))
    assert main(["bench", str(BFCL), "--json", "--policy", str(tmp_path / "plain.toml"),
                 "--policy", str(tmp_path / "hedged.toml")]) == 0  # fmt: skip
    ladders = json.loads(capsys.readouterr().out)["ladders"]
    plain, hedged = ladders["plain"], ladders["hedged"]
    assert hedged["latency_p95_s"] < plain["latency_p95_s"]
    assert hedged["cost_usd"] > plain["cost_usd"]
    assert hedged["pass_rate"] >= plain["pass_rate"] - 0.005
    assert hedged["false_reject_rate"] < 0.05


def test_an_audit_replay_says_what_it_would_find_and_cost(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--audit-share: what the seeded sample of tier-0 answers would show, and cost.

    The audit model's recorded answers compared with them, the truth behind each disagreement,
    and the audits' recorded cost.
    """
    from cascade.audit import AuditPlan, sampled  # noqa: PLC0415

    args = ["--audit-share", "0.25", "--audit-model", SONNET, "--audit-seed", "3"]
    assert main(["bench", str(BFCL), "--json", "--ladder", f"{MINI},{SONNET}", *args]) == 0
    audit = json.loads(capsys.readouterr().out)["ladders"][f"{MINI} → {SONNET}"]["audit"]
    data = load_dataset(BFCL)
    plan = AuditPlan(share=0.25, model=SONNET, seed=3)
    drawn = [t for t in data.tasks if sampled(plan, t.type, 0, t.id)]
    total = audit["total"]
    assert 0 < total["audited"] <= len(drawn)
    assert total["audited"] >= 0.9 * len(drawn)  # mini accepts almost every task at tier 0
    assert list(audit["by_tier"]) == ["function_call tier 0"]
    assert total["caught"] <= min(total["disagreed"], total["wrongly_accepted"])
    # mini's first answer is what tier 0 accepts: the wrong ones among the drawn, less those
    # tier 0 did not accept, are the audit's truly wrong
    wrong = sum(not data.correct[(t.id, MINI)] for t in drawn)
    left = len(drawn) - total["audited"]
    assert wrong - left <= total["wrongly_accepted"] <= wrong
    per_call = [data.backend.cost_of(t.id, SONNET) for t in drawn]
    assert min(per_call) * total["audited"] <= total["cost_usd"] <= max(per_call) * total["audited"]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--audit-share", "0.1"], "--audit-share and --audit-model go together"),
        (["--audit-share", "1.5", "--audit-model", SONNET], "--audit-share must be"),
        (["--audit-share", "0.1", "--audit-model", "openai/gpt-5"], "--audit-model openai/gpt-5"),
    ],
)
def test_bad_audit_options_are_named(
    capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    """An audit option alone, a share outside (0, 1], an unknown model: exit 2 naming it."""
    assert main(["bench", str(BFCL), "--ladder", f"{MINI},{SONNET}", *extra]) == 2
    assert said in capsys.readouterr().err
