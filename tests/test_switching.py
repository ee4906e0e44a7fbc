"""After the switch: a ladder certified on imported traffic keeps being checked against it.

The end-to-end tests import a sample of the walkthrough's log (``examples/traffic``), record
two cheaper models from a fake OpenAI-compatible server on 127.0.0.1, certify a ladder with
``cascade optimize`` and serve the traffic with it through ``cascade run``: the written policy
audits against the served model, with the disagreement baseline calibrated on the training
tasks, and a silent change in the cheap models raises the disagreement alarm.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w

from cascade import Cascade
from cascade.audit.drift import DriftPlan, DriftWatch, binomial_tail
from cascade.audit.plan import AuditPlan, audited_tiers
from cascade.bench import load_dataset
from cascade.cli import main
from cascade.cli.record import sample_sizes
from cascade.errors import ConfigError
from cascade.optimize.certify import lower_bound
from cascade.optimize.gates import Gate
from cascade.optimize.sample_size import certification_tasks, rate_needed, sample_for
from cascade.optimize.search import ladders
from cascade.optimize.table import kind_table
from cascade.optimize.write import tier_tables
from cascade.policy import load_policy
from cascade.testing import FakeOpenAI, FakeReply
from cascade.types import HUMAN, Task
from examples.traffic.invoices import answer_as, make_log, read_invoice
from tests.synthetic import write_dataset

SERVED = "gpt-4o-mini-2024-07-18"
Handler = Callable[[dict[str, Any]], FakeReply]


@pytest.mark.parametrize(
    ("models", "audit_model", "end"),
    [
        (["cheap", "dear"], "dear", 1),  # the top tier's own model: it would be asked twice
        (["cheap", "openai/dear"], "dear", 1),  # the same model, with its provider named
        (["cheap", "dear"], "openai/dear", 1),  # named so by the audit
        (["cheap", "openrouter/openai/dear"], "dear", 1),  # a provider through another
        (["cheap", "dear"], "served", 2),  # another model checks the top tier too
        (["cheap"], "served", 1),  # a ladder of one tier, checked against the served model
        (["cheap"], "cheap", 0),
        (["cheap", "dear", HUMAN], "dear", 1),  # a person's tier is never audited
        (["cheap", "dear", HUMAN], "served", 2),
        ([HUMAN], "served", 0),
    ],
)
def test_the_tiers_an_audit_checks(models: list[str], audit_model: str, end: int) -> None:
    """Every tier below the top; the top too when the audit asks another model."""
    assert audited_tiers(AuditPlan(share=1.0, model=audit_model), models) == end


def test_a_calibrated_disagreement_rate_is_the_baseline_of_the_disagreement_alarm() -> None:
    """With ``disagreement`` calibrated, no observations are spent measuring the baseline."""
    calibrated = DriftPlan(window=20, baseline=200, check_every=10, false_alarm=0.01,
                           disagreement=(0.05,))  # fmt: skip
    watch = DriftWatch({"json": calibrated})
    alarms = [watch.audit("json", 0, disagreed=n % 2 == 0) for n in range(20)]
    raised = [alarm for alarm in alarms if alarm is not None]
    assert len(raised) == 1
    assert (raised[0].baseline_rate, raised[0].window_rate, raised[0].observed) == (0.05, 0.5, 20)
    measured = DriftWatch({"json": DriftPlan(window=20, baseline=200, check_every=10)})
    assert all(measured.audit("json", 0, disagreed=True) is None for _ in range(150))
    # Calibrated for tier 0 only: tier 1 measures its own, and says nothing in 20.
    assert all(watch.audit("json", 1, disagreed=True) is None for _ in range(20))


def test_a_disagreement_sample_leaves_the_acceptance_rate_tested_as_given() -> None:
    """disagreement_audits is the disagreement's sample only: acceptance stays binomial."""
    plan = DriftPlan(window=20, baseline=200, check_every=10, false_alarm=0.01,
                     acceptance=(0.9,), disagreement=(0.05,), disagreement_n=(100,))  # fmt: skip
    watch = DriftWatch({"json": plan})
    raised = [a for _ in range(20) for a in watch.result("json", "failed", None, 1)]
    assert len(raised) == 1
    assert raised[0].signal == "acceptance"
    assert raised[0].p_value == pytest.approx(binomial_tail(0, 20, 0.9, upper=False), abs=0)


def test_a_calibrated_rate_with_its_sample_is_tested_as_a_sample() -> None:
    """Measured on 100 audits, 5 % is a sample: Fisher's exact test, exact, and still alarms.

    Taken as a known rate, a 3 % measured on 60 audits alarmed falsely in 27 of 200 stable
    simulated runs of 2,000 audits (false_alarm 0.001); as a sample, in none.
    """
    plan = DriftPlan(window=20, baseline=200, check_every=10, false_alarm=0.01,
                     disagreement=(0.05,), disagreement_n=(100,))  # fmt: skip
    watch = DriftWatch({"json": plan})
    raised = [a for n in range(20) if (a := watch.audit("json", 0, disagreed=n % 2 == 0))]
    assert len(raised) == 1
    assert (raised[0].baseline_rate, raised[0].window_rate) == (0.05, 0.5)
    assert raised[0].p_value > 1e-6  # Fisher's, against 5 of 100: not the binomial's 4e-8
    steady = DriftWatch({"json": plan})  # the calibration's own rate: no alarm
    assert not any(steady.audit("json", 0, disagreed=n % 20 == 0) for n in range(400))


def test_a_disagreement_rate_that_is_not_a_rate_is_named(tmp_path: Path) -> None:
    """A calibrated rate of 0 would alarm on one disagreement: refused, with its field."""
    path = tmp_path / "p.toml"
    path.write_text('task_type = "t"\n[[tiers]]\nmodel = "m"\n[drift]\ndisagreement = [0.0]\n')
    with pytest.raises(ConfigError, match=r"p\.toml.*drift.*disagreement"):
        load_policy(path)
    path.write_text('task_type = "t"\n[[tiers]]\nmodel = "m"\n[drift]\ndisagreement = [0.04]\n')
    drift = load_policy(path).drift
    assert drift is not None
    assert drift.disagreement == (0.04,)


def test_the_sample_a_certification_needs_is_the_smallest_whose_bound_reaches_the_target() -> None:
    """Checked against the Clopper-Pearson bound itself, one task either side."""
    for target, rate in [(0.9, 0.95), (0.8, 0.9), (0.95, 0.99), (0.9, 1.0)]:
        tasks = certification_tasks(target, 0.9, rate)
        assert tasks is not None
        assert lower_bound(int(rate * tasks + 1e-9), tasks, 0.9) >= target
        fewer = tasks - 1
        assert lower_bound(int(rate * fewer + 1e-9), fewer, 0.9) < target
    assert certification_tasks(0.9, 0.9, 0.9) is None  # a ladder at the target never certifies
    assert sample_for(0.9, 0.9, 0.95) == 223  # 78 certification tasks are 35 % of 223
    assert rate_needed(0.9, 0.9, 62) is None  # even a perfect ladder needs 63
    assert rate_needed(0.9, 0.9, 63) == 1.0


def _fake(handlers: dict[str, Handler]) -> Handler:
    def answer(body: dict[str, Any]) -> FakeReply:
        return handlers.get(body["model"], answer_as(body["model"]))(body)

    return answer


@pytest.fixture
def server() -> Iterator[tuple[FakeOpenAI, dict[str, Handler]]]:
    """A fake OpenAI-compatible server answering as the walkthrough's models; swappable."""
    handlers: dict[str, Handler] = {}
    with FakeOpenAI(_fake(handlers)) as fake:
        yield fake, handlers


def _tier(model: str, base_url: str, cost: tuple[float, float]) -> str:
    price = f"input_usd_per_mtok = {cost[0]}, output_usd_per_mtok = {cost[1]}"
    return (f'\n[[tiers]]\nmodel = "{model}"\n'
            f'params = {{ api_base = "{base_url}", api_key = "sk-fake" }}\n'
            f"price = {{ {price} }}\n")  # fmt: skip


def test_self_consistency_samples_are_asked_as_their_tier_asks_its_model(
    tmp_path: Path, server: tuple[FakeOpenAI, dict[str, Handler]]
) -> None:
    """The second sample goes to the tier's endpoint with its key, not to the model's default."""
    fake, _ = server
    path = tmp_path / "p.toml"
    path.write_text('task_type = "json"\n' + _tier("openai/gpt-4.1-nano", fake.base_url, (1, 1))
                    + '\n[[validators]]\nkind = "self_consistency"\nsamples = 1\n')  # fmt: skip
    task = Task("t1", input="Reminder from Acme GmbH: invoice INV-1 (10.00 USD) falls due on "
                "2027-01-02.", type="json")  # fmt: skip
    outcome = Cascade(load_policy(path).plan).run(task)
    assert outcome.status.value == "accepted", outcome
    assert len(fake.requests) == 2  # the answer and its second sample, both on the fake


def test_an_agreement_check_calls_its_model_with_its_params(
    tmp_path: Path, server: tuple[FakeOpenAI, dict[str, Handler]]
) -> None:
    """``params`` of an agreement check reach the second model's call."""
    fake, _ = server
    path = tmp_path / "p.toml"
    path.write_text(
        'task_type = "json"\n' + _tier("openai/llama-3.1-8b-instant", fake.base_url, (1, 1))
        + '\n[[validators]]\nkind = "agreement"\nmodel = "openai/gpt-4.1-nano"\ncompare = "json"\n'
        + f'params = {{ api_base = "{fake.base_url}", api_key = "sk-fake" }}\n'
    )  # fmt: skip
    task = Task("t1", input="Reminder from Acme GmbH: invoice INV-1 (10.00 USD) falls due on "
                "2027-01-02.", type="json")  # fmt: skip
    outcome = Cascade(load_policy(path).plan).run(task)
    assert [r["model"] for r in fake.requests] == ["llama-3.1-8b-instant", "gpt-4.1-nano"]
    assert outcome.status.value == "accepted", outcome


def _certified(tmp_path: Path, fake: FakeOpenAI, audit_share: str) -> dict[str, Any]:
    """Import 160 logged requests, record two cheaper models, optimize; the written policy."""
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in make_log(160, seed=3)))
    data = tmp_path / "traffic"
    assert main(["import", "openai-chat", str(log), "--out", str(data)]) == 0
    tiers = (_tier("openai/llama-3.1-8b-instant", fake.base_url, (0.05, 0.08))
             + _tier("openai/gpt-4.1-nano", fake.base_url, (0.1, 0.4))
             + _tier(SERVED, fake.base_url, (0.15, 0.6)))  # fmt: skip
    policy = tmp_path / "mine.toml"
    policy.write_text('task_type = "json"\n' + tiers + '\n[[validators]]\nkind = "grounded"\n'
                      'fields = ["vendor", "invoice", "total", "due"]\n')  # fmt: skip
    record = ["record", str(data), "--policy", str(policy), "--sample", "200", "--no-progress"]
    assert main([*record, "--model", "openai/gpt-4.1-nano", "--model",
                 "openai/llama-3.1-8b-instant"]) == 0  # fmt: skip
    assert main(["truth", str(data), "--by", "served"]) == 0
    out = tmp_path / "cheaper.toml"
    assert main(["optimize", str(data), "--policy", str(policy), "--target-pass-rate", "0.8",
                 "--out", str(out), "--audit-share", audit_share]) == 0  # fmt: skip
    return tomllib.loads(out.read_text())


def _serve(tmp_path: Path, written: dict[str, Any], name: str) -> sqlite3.Connection:
    """Run the imported tasks through the written policy; its store, opened."""
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(written))
    store = tmp_path / f"{name}.db"
    out = tmp_path / f"{name}.jsonl"
    args = ["run", str(tmp_path / "traffic" / "tasks.jsonl"), "--policy", str(path),
            "--store", str(store), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return sqlite3.connect(store)


def test_the_written_policy_audits_its_ladder_against_the_served_model(
    tmp_path: Path, server: tuple[FakeOpenAI, dict[str, Handler]]
) -> None:
    """[audit] asks the served model, at its tier's endpoint; the baseline is calibrated."""
    fake, _ = server
    written = _certified(tmp_path, fake, audit_share="1")
    audit = written["audit"]
    assert (audit["model"], audit["share"], audit["compare"]) == (SERVED, 1.0, "auto")
    assert audit["params"]["api_base"] == fake.base_url  # as the user's tier calls it
    rates = written["drift"]["disagreement"]
    assert rates
    assert all(0 < rate < 0.2 for rate in rates)
    assert len(written["drift"]["disagreement_audits"]) == len(rates)
    for tier in written["tiers"]:  # a voter is called where the user's tier calls it
        for check in tier.get("validators", []):
            if check["kind"] == "agreement":
                assert check["params"]["api_base"] == fake.base_url
    db = _serve(tmp_path, written, "switched")
    audits = db.execute(
        "SELECT decision, model_requested FROM attempts WHERE kind = 'audit'"
    ).fetchall()
    end = audited_tiers(AuditPlan(1.0, SERVED), [tier["model"] for tier in written["tiers"]])
    audited = db.execute(
        "SELECT count(*) FROM results WHERE status = 'accepted' AND tier < ?", (end,)
    ).fetchone()[0]
    assert len(audits) == audited > 0  # every accepted answer of a tier not the served model
    assert {model for _, model in audits} == {SERVED}
    agreed = sum(decision == "agree" for decision, _ in audits)
    assert agreed / len(audits) > 0.8  # the ladder reproduces the served answers, as certified


def test_a_silent_change_in_the_cheap_models_raises_the_disagreement_alarm(
    tmp_path: Path, server: tuple[FakeOpenAI, dict[str, Handler]]
) -> None:
    """Both cheap models start reading the issue date as the due date: the audits disagree.

    Every check of the ladder still passes (the date is in the email, and they agree).
    """
    fake, handlers = server
    written = _certified(tmp_path, fake, audit_share="1")
    written["drift"] |= {"window": 20, "check_every": 5}
    quiet = _serve(tmp_path, written, "before")
    assert quiet.execute("SELECT count(*) FROM drift_alarms").fetchone()[0] == 0

    def drifted(model: str) -> Handler:
        def answer(body: dict[str, Any]) -> FakeReply:
            reply = answer_as(model)(body)
            text = next(m["content"] for m in body["messages"] if m["role"] == "user")
            _, _, issued = read_invoice(text)
            try:
                fields = json.loads(reply.content)
            except json.JSONDecodeError:
                return reply
            return FakeReply(json.dumps(fields | {"due": issued or fields["due"]}))

        return answer

    handlers |= {"gpt-4.1-nano": drifted("gpt-4.1-nano"),
                 "llama-3.1-8b-instant": drifted("llama-3.1-8b-instant")}  # fmt: skip
    loud = _serve(tmp_path, written, "after")
    alarms = loud.execute("SELECT signal, tier FROM drift_alarms").fetchall()
    assert ("disagreement", 0) in alarms, alarms


def test_a_written_voter_is_called_as_the_users_tier_of_its_model_calls_it(
    tmp_path: Path,
) -> None:
    """Agreement takes its model's tier params and price; a vote, params all voters share."""
    data = load_dataset(write_dataset(tmp_path, tasks=12))
    table, _ = kind_table(data, "math", max_reasks=0)
    tiny, mid, big = table.models[:3]
    gates = [Gate(0, voters=(1,)), Gate(0, voters=(1, 2))]
    found = ladders(table, np.arange(len(table.task_ids)), choose_on=(0,), last=[2], gates=gates)
    here = {"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-fake"}
    price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
    base: dict[str, dict[str, Any]] = {
        tiny: {"params": here},
        mid: {"params": here, "price": price},
        big: {"params": here},
    }
    checks: dict[str, dict[str, Any]] = {}
    for index in range(len(found.tiers)):
        for tier in tier_tables(found, index, base)[:-1]:
            for check in tier["validators"]:
                checks[check["kind"]] = check
    assert checks["agreement"]["params"] == here
    assert checks["agreement"]["price"] == price
    assert checks["vote"]["params"] == here
    apart = {"api_base": "http://127.0.0.1:10/v1"}
    base[big] = {"params": apart}  # voters on two endpoints: each its own
    votes = [c for i in range(len(found.tiers)) for t in tier_tables(found, i, base)[:-1]
             for c in t["validators"] if c["kind"] == "vote"]  # fmt: skip
    assert votes
    assert all(vote["voter_params"] == {mid: here, big: apart} for vote in votes)
    assert all("params" not in vote for vote in votes)
    assert all(vote["voter_prices"] == {mid: price} for vote in votes)


def test_record_says_how_large_a_sample_a_target_needs_before_anything_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run --target: the sample by the ladder's pass rate, and what this one certifies."""
    lines = sample_sizes(0.9, 0.9, 277)
    assert "  95.0% of the tasks needs a sample of about 223" in lines
    assert "  every task needs 63" in lines
    assert lines[-1] == (
        "a sample of 277 certifies 90.00% only for a ladder that passes about 94.6% of the "
        "tasks or more"
    )
    assert "too small" in sample_sizes(0.9, 0.9, 50)[-1]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in make_log(20, seed=1)))
    assert main(["import", "openai-chat", str(log), "--out", str(tmp_path / "d")]) == 0
    ask = ["record", str(tmp_path / "d"), "--model", "openai/gpt-4.1-nano", "--sample", "20"]
    capsys.readouterr()
    assert main([*ask, "--target", "0.9"]) == 2  # not with a run: it asks nothing
    assert "--target says how large a sample to record" in capsys.readouterr().err
    assert main([*ask, "--target", "1.5", "--dry-run"]) == 2
    assert "--target must be above 0 and below 1, not 1.5" in capsys.readouterr().err
    assert not (tmp_path / "d" / "record").exists()


def test_each_voter_is_called_with_its_own_params(tmp_path: Path) -> None:
    """A vote whose voters live on two endpoints: each call goes where its voter_params say."""
    with FakeOpenAI(_fake({})) as first, FakeOpenAI(_fake({})) as second:
        path = tmp_path / "p.toml"
        voters = {
            "openai/gpt-4.1-nano": {"api_base": first.base_url, "api_key": "sk-a"},
            "openai/llama-3.1-8b-instant": {"api_base": second.base_url, "api_key": "sk-b"},
        }
        path.write_text(
            'task_type = "json"\n' + _tier("gpt-4o-mini-2024-07-18", first.base_url, (1, 1))
            + tomli_w.dumps({"validators": [{"kind": "vote", "models": list(voters), "k": 3,
                                             "voter_params": voters, "voter_prices": {
                                                 model: {"input_usd_per_mtok": 1.0,
                                                         "output_usd_per_mtok": 1.0}
                                                 for model in voters}}]})
        )  # fmt: skip
        task = Task("t1", input="Reminder from Acme GmbH: invoice INV-1 (10.00 USD) falls due "
                    "on 2027-01-02.", type="json")  # fmt: skip
        outcome = Cascade(load_policy(path).plan).run(task)
    assert [r["model"] for r in first.requests] == ["gpt-4o-mini-2024-07-18", "gpt-4.1-nano"]
    assert [r["model"] for r in second.requests] == ["llama-3.1-8b-instant"]
    assert outcome.status.value == "accepted", outcome
