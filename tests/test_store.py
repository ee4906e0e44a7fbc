"""The SQLite store: outcomes round-trip, attempts are append-only, results are written once."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from cascade import Cascade, Settings, Status, Store, Tier
from cascade.backends import Reply, ScriptedBackend
from cascade.errors import ServerError
from tests.helpers import NO_WAIT, make, says_ok


def test_an_outcome_and_its_steps_round_trip(tmp_path: Path) -> None:
    """What the engine wrote is what the store reads back, step for step."""
    with Store(tmp_path / "run.db") as store:
        cascade, _ = make(
            {"a": [ServerError("503"), "no"], "b": ['{"x": 1}']},
            [Tier("a", retries=1), Tier("b")],
            store=store,
            run_id="r1",
        )
        outcome = cascade.run({"id": "t1", "type": "demo", "input": "x"})
        loaded = store.outcome("r1", "t1")
    assert loaded == outcome
    assert loaded is not None
    assert loaded.status is Status.EXHAUSTED
    assert [s.error is not None for s in loaded.steps] == [True, False, False]


def test_the_store_is_in_wal_mode(tmp_path: Path) -> None:
    """The file is opened in WAL mode, so readers run beside the writer."""
    Store(tmp_path / "run.db").close()
    mode = sqlite3.connect(tmp_path / "run.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_attempts_are_append_only(tmp_path: Path) -> None:
    """Updating or deleting a recorded attempt is refused by the database itself."""
    path = tmp_path / "run.db"
    with Store(path) as store:
        cascade, _ = make({"a": ["ok"]}, ["a"], store=store, run_id="r")
        cascade.run({"id": "t", "input": "x"})
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE attempts SET cost_usd = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM attempts")


def test_a_result_is_written_once_per_run_and_task(tmp_path: Path) -> None:
    """Running a task again in the same run appends its calls but never a second result."""
    with Store(tmp_path / "run.db") as store:
        cascade, _ = make({"a": ["ok"]}, ["a"], store=store, run_id="r")
        first = cascade.run({"id": "t", "input": "x"})
        second = cascade.run({"id": "t", "input": "x"})
        assert store.record(second) is False
        assert store.count("results") == 1
        assert store.count("attempts") == 3
        assert next(iter(store.results("r")))["id"] == "t"
        assert store.outcome("r", "t") == first


def test_concurrent_writers_from_asyncio_tasks_do_not_corrupt_it(tmp_path: Path) -> None:
    """Hundreds of tasks finishing at once all land, whole and consistent."""
    backend = ScriptedBackend({"a": [Reply("no", latency_s=0.001)], "b": [Reply("ok")]})
    with Store(tmp_path / "run.db") as store:
        cascade = Cascade(
            ["a", "b"], says_ok, backend=backend, store=store, log=False,
            settings=Settings(retry=NO_WAIT, run_id="r"),
        )  # fmt: skip

        async def main() -> list[Status]:
            tasks = [{"id": f"t{i}", "input": "x"} for i in range(300)]
            return [o.status async for o in cascade.amap(tasks, concurrency=64)]

        statuses = asyncio.run(main())
        assert statuses == [Status.ACCEPTED] * 300
        assert store.count("results") == 300
        assert store.count("attempts") == 600
        assert store.integrity_check() == "ok"


def test_two_connections_in_two_threads_share_one_file(tmp_path: Path) -> None:
    """Writers on separate connections wait for each other instead of failing."""
    path = tmp_path / "run.db"
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            with Store(path) as store:
                cascade, _ = make({"a": ["ok"]}, ["a"], store=store, run_id="shared")
                for i in range(100):
                    cascade.run({"id": f"{prefix}{i}", "input": "x"})
        except BaseException as exc:  # noqa: BLE001  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in "xy"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(path) as store:
        assert store.count("results") == 200
        assert store.integrity_check() == "ok"


def test_an_in_memory_store_opens_at_once() -> None:
    """``:memory:`` has no WAL; opening one neither waits nor fails."""
    started = time.perf_counter()
    with Store(":memory:") as store:
        store.start_run("r")
        assert store.count("runs") == 1
    assert time.perf_counter() - started < 1.0


V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, finished_at REAL,
    config TEXT NOT NULL DEFAULT '{}');
CREATE TABLE tasks (run_id TEXT NOT NULL, task_id TEXT NOT NULL, task_type TEXT NOT NULL,
    payload TEXT, state TEXT NOT NULL DEFAULT 'pending', lease_owner TEXT, lease_expires REAL,
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, task_id));
CREATE TABLE results (run_id TEXT NOT NULL, task_id TEXT NOT NULL, execution_id TEXT NOT NULL,
    task_type TEXT NOT NULL, status TEXT NOT NULL, output TEXT, parsed TEXT, tier INTEGER,
    model TEXT, attempts INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_s REAL NOT NULL,
    reasons TEXT NOT NULL, best_step INTEGER, created_at REAL NOT NULL,
    PRIMARY KEY (run_id, task_id));
INSERT INTO runs VALUES ('old', 1.0, 2.0, '{}');
INSERT INTO results VALUES ('old', 't1', 'e1', 'default', 'accepted', 'ok', 'null', 0, 'm', 1,
    0.5, 0.1, '[]', 0, 1.0);
PRAGMA user_version = 1;
"""


def test_a_version_1_store_is_upgraded_in_place(tmp_path: Path) -> None:
    """Opening a store written by the previous version adds the new columns and keeps the data."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
    with Store(path) as store:
        old = store.outcome("old", "t1")
        assert old is not None
        assert (old.status, old.cost_usd) == (Status.ACCEPTED, 0.5)
        assert next(store.select("SELECT executions, tiers_tried FROM results")) == (1, 1)
        assert next(store.select("SELECT user_version FROM pragma_user_version")) == (8,)
        cascade, _ = make({"m": ["ok"]}, ["m"], store=store, run_id="new")
        assert cascade.run({"id": "t2", "input": "x"}).accepted
        assert store.count("results") == 2


def test_the_store_redacts_secrets_in_errors_verdicts_and_reasons(tmp_path: Path) -> None:
    """Whatever reaches the store (not only through the engine's caller) is cleaned first."""
    from cascade.enums import CallKind, Decision  # noqa: PLC0415
    from cascade.outcome import Outcome, Step  # noqa: PLC0415
    from cascade.secrets import register_secrets  # noqa: PLC0415
    from cascade.types import Verdict  # noqa: PLC0415

    secret = "registered-but-not-key-shaped-4242"
    register_secrets([secret])
    step = Step(
        run_id="r", task_id="t", task_type="demo", step=0, tier=0, model_requested="m",
        model_served="m", kind=CallKind.CALL, prompt_tokens=1, completion_tokens=1,
        cost_usd=0.0, latency_s=0.0, decision=Decision.ESCALATE, ts=0.0,
        error=f"ServerError: echo {secret}",
        verdicts=(Verdict(False, reason=f"saw {secret}", feedback=f"drop {secret}"),),
    )  # fmt: skip
    outcome = Outcome(
        run_id="r", task_id="t", task_type="demo", status=Status.FAILED, output=None,
        parsed=None, tier=None, model=None, steps=(step,), cost_usd=0.0, latency_s=0.0,
        reasons=(f"tier 0 (m) cannot be asked: {secret}",),
    )  # fmt: skip
    with Store(tmp_path / "run.db") as store:
        store.record(outcome)
    with sqlite3.connect(tmp_path / "run.db") as db:
        dump = "\n".join(db.iterdump())
    assert secret not in dump
    assert dump.count("[REDACTED]") == 4
