"""An audit's ``max_cost_usd`` holds with audits in flight, in one worker or several.

Each audit reserves its worst cost before it calls and settles it after, so the audits' spend
never passes the cap; the audits skipped for it are counted in the run's summary and in
``cascade report --json``. Whole ``cascade run`` processes against the loopback fake.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cascade.cli import main
from cascade.testing import FakeReply
from tests.test_audit import audit_steps
from tests.test_run_trouble import KEY, Script, cascade_run, serve, statuses

__all__ = ["serve"]  # the fake provider's fixture, used by name

CAP = 0.0004
TASKS = 60

POLICY = """\
task_type = "echo"
[[tiers]]
model = "openai/cheap-model"
retries = 0
timeout_s = 5
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[tiers]]
model = "openai/dear-model"
retries = 0
timeout_s = 5
params = {{ api_base = "{url}", api_key = "{key}" }}
price = {{ input_usd_per_mtok = 10.0, output_usd_per_mtok = 20.0 }}
[[validators]]
kind = "one_of"
labels = ["ok", "fine"]
[audit]
share = 1.0
model = "openai/audit-model"
seed = 7
max_cost_usd = {cap}
params = {{ api_base = "{url}", api_key = "{key}", max_tokens = 2 }}
price = {{ input_usd_per_mtok = 5.0, output_usd_per_mtok = 5.0 }}
"""


def slow_audits(model: str, _n: int) -> FakeReply:
    """Every tier answers "ok" at once; the audit model takes 0.2 s, so audits overlap."""
    if model == "audit-model":
        return FakeReply("ok", delay_s=0.2, completion_tokens=2)
    return FakeReply("ok")


def write_job(tmp_path: Path, url: str) -> Path:
    """The policy with its capped audit of every accepted answer, and 60 tasks."""
    (tmp_path / "policy.toml").write_text(POLICY.format(url=url, key=KEY, cap=CAP))
    lines = [json.dumps({"id": f"t{n}", "type": "echo", "input": f"say ok {n}"})
             for n in range(TASKS)]  # fmt: skip
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize("workers", [1, 2])
def test_the_audit_cap_holds_with_audits_in_flight_and_the_skipped_are_counted(
    tmp_path: Path, serve: Any, workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Audits' spend stays within the cap across workers; the summary counts the rest."""
    job = write_job(tmp_path, serve(Script(slow_audits)))
    run = cascade_run(job, "--workers", str(workers))
    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(job) == {"accepted": TASKS}
    steps = audit_steps(job)
    spent = sum(s["cost_usd"] for s in steps)
    assert 0 < spent <= CAP
    audited = {s["task_id"] for s in steps}
    skipped = TASKS - len(audited)
    assert skipped > 0
    found = re.search(r"echo: (\d+) audits skipped: the audit cap of \$0.0004 was reached",
                      run.stdout)  # fmt: skip
    assert found is not None, run.stdout
    assert int(found.group(1)) == skipped
    assert main(["report", str(job / "run.db"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["audits_skipped"] == {"echo": {"skipped": skipped, "cap_usd": CAP}}
