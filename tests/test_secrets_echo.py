"""Secrets by what they are: a provider that echoes every tier parameter leaks none of them.

A tier param named ``token``, an ``extra_headers`` entry such as ``X-Gateway-Token`` and the
credentials in an ``api_base`` are secrets though nothing in their names says ``api_key``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-7c1e9a55d2"
HEADER = "hdr-0b6f3e81a4"
PASSWORD = "pw-5d29c7e01b"
POLICY = f"""\
task_type = "echo"
[[tiers]]
model = "echo"
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 1.0 }}
params.token = "{TOKEN}"
params.extra_headers = {{ "X-Gateway-Token" = "{HEADER}" }}
params.api_base = "https://gate:{PASSWORD}@gateway.invalid/v1"
params.temperature = 0.25
[[validators]]
kind = "matches"
pattern = "^[{{]"
"""


def _cli(job: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603  # our own command line
        [sys.executable, "-m", "cascade.cli", *args],
        cwd=job, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_an_echo_of_every_param_leaks_no_secret(tmp_path: Path) -> None:
    """Results, store, step log, summary, report and show: no token, header or URL password."""
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "tasks.jsonl").write_text('{"id": "t1", "type": "echo", "input": "hi"}\n')
    run = _cli(tmp_path, "run", "tasks.jsonl", "--policy", "policy.toml", "--store", "run.db",
               "--no-progress", "--backend", "tests.fake_backends:echo_params")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = _cli(tmp_path, "report", "run.db")
    show = _cli(tmp_path, "show", "run.db", "t1")
    outputs = [run.stdout, run.stderr, report.stdout, show.stdout, show.stderr]
    with sqlite3.connect(tmp_path / "run.db") as db:
        outputs.append("\n".join(db.iterdump()))
    outputs += [p.read_text() for p in tmp_path.glob("results*.jsonl")]
    everything = "\n".join(outputs)
    for secret in (TOKEN, HEADER, PASSWORD):
        assert secret not in everything
    assert "[REDACTED]" in everything  # the echo was there, and cleaned
    assert "0.25" in everything  # a harmless number is kept
