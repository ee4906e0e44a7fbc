"""``cascade record`` killed with SIGKILL mid-job, then run again: nothing lost, nothing repeated.

The only pairs a rerun asks again are those whose answers had not reached the store when the
process died: the calls in flight, and the answers of the last few tens of milliseconds (the
runner's workers write outcomes in small batches, ``_FLUSH_S`` in ``cascade/run/worker.py``).
Every pair whose answer was stored is never asked again, and every pair ends with exactly one
row in the dataset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cascade.traffic.record_merge import stored_answers
from tests.test_record import (
    Provider,
    environment,
    record,
    record_command,
    recorded,
    write_dataset,
    write_policy,
)


def test_a_record_killed_mid_job_resumes_with_no_stored_pair_asked_again(tmp_path: Path) -> None:
    """Killed as the 15th of 40 calls comes in; the rerun asks what was not stored, once."""
    provider = Provider(delay_s=0.02)
    killed = threading.Event()
    process: list[subprocess.Popen[str]] = []

    def kill_at(count: int) -> None:
        if count == 15 and process and not killed.is_set():
            os.killpg(process[0].pid, signal.SIGKILL)
            killed.set()

    provider.hook = kill_at
    with provider.server:
        data = write_dataset(tmp_path / "data", {"qa": 12, "extract": 8})
        policy = write_policy(tmp_path, provider.server.base_url)
        command = record_command(data, policy, "--sample", "20", "--concurrency", "4")
        process.append(
            subprocess.Popen(  # noqa: S603  # our own command line
                command,
                env=environment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
        if not killed.wait(90):
            process[0].kill()
            pytest.fail(f"the record never reached its 15th call: {process[0].communicate()[1]}")
        process[0].communicate()
        assert process[0].returncode == -signal.SIGKILL
        time.sleep(0.3)  # a request sent just before the kill is counted too
        kept = set(stored_answers(data))  # answered and stored before the kill
        assert 0 < len(kept) < 40
        asked_before = set(provider.pairs())
        again = record(data, policy, "--sample", "20", "--concurrency", "4")
        assert again.returncode == 0, again.stdout + again.stderr
    assert "(resumed)" in again.stdout
    asked = provider.pairs()
    twice = {pair for pair, n in asked.items() if n > 1}
    assert not twice & kept, "a pair whose answer was stored was asked again"
    assert twice == asked_before - kept, "exactly the pairs asked but not stored, once more"
    rows = recorded(data)
    assert len(rows) == 40, "every pair has its one row"
    assert set(rows) == set(asked)
