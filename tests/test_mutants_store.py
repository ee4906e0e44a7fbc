"""The store's ledger, batches, side file and verdict cache at the edges the mutation run found."""

from __future__ import annotations

import dataclasses
import datetime
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from cascade import Status, Store, Task
from cascade.enums import CallKind, Decision
from cascade.errors import ConfigError, TaskError
from cascade.outcome import Outcome, Step
from cascade.store.alarms import Arrivals, DriftAlarms, Escalated
from cascade.store.batches import BatchBook
from cascade.store.ledger import Entry, Ledger, Position
from cascade.store.queries import (
    audit_spent,
    audit_verdicts_after,
    audits_skipped,
    escalations_after,
    provider_health,
    record_reviews,
    run_config,
    spending,
    task_payload,
)
from cascade.store.schema import enable_wal
from cascade.store.unsaved import (
    Failure,
    SideFile,
    read_kept,
    restore_unsaved,
    side_paths,
    write_failure,
)
from cascade.store.verdicts import VerdictCache, default_cache_path, verdict_key
from cascade.types import Verdict


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store waits 0.1 s, not 30 s, for another connection's lock."""
    monkeypatch.setattr("cascade.store.db.BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr("cascade.store.schema.BUSY_TIMEOUT_S", 0.1)


def _step(task_id: str, cost: float = 0.25, number: int = 0) -> Step:
    return Step(
        run_id="r1", task_id=task_id, task_type="demo", step=number, tier=0,
        model_requested="m", model_served="m", kind=CallKind.CALL, prompt_tokens=3,
        completion_tokens=2, cost_usd=cost, latency_s=0.1, verdicts=(Verdict(False, "no"),),
        decision=Decision.ESCALATE, error=None, ts=1.0, output="answer",
    )  # fmt: skip


def _outcome(task_id: str, status: Status = Status.ACCEPTED, cost: float = 0.25) -> Outcome:
    return Outcome(
        "r1", task_id, "demo", status, "answer", None, 0, "m", (_step(task_id, cost),), cost, 0.1
    )


def _ledger(store: Store, *ids: str) -> Ledger:
    store.start_run("r1")
    ledger = Ledger(store, "r1")
    entries = [Entry(n, task=Task(i, input="x")) for n, i in enumerate(ids, start=1)]
    ledger.ingest(entries, finished=True)
    return ledger


def _states(store: Store) -> dict[str, tuple[str, str | None, int]]:
    rows = store.select("SELECT task_id, state, lease_owner, executions FROM tasks")
    return {task: (state, owner, runs) for task, state, owner, runs in rows}


def _quarantined(ledger: Ledger) -> list[dict[str, object]]:
    return [json.loads(line) for _, line in ledger.quarantine_after(0)]


# The ledger: abandon, renew, retry_failed, duplicates and quarantined lines.


def test_an_abandoned_task_keeps_its_paid_steps_and_goes_back_to_pending(tmp_path: Path) -> None:
    """A task cut off mid-way has its steps stored (counted as spent) and is leased again."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1", "t2")
        assert [leased.task.id for leased in ledger.lease("w1", 10, ttl_s=60)] == ["t1", "t2"]
        ledger.abandon("w1", [("t1", [_step("t1", 0.5), _step("t1", 0.25, 1)])])
        assert ledger.spent() == (0.75, 2)
        assert len({s for (s,) in store.select("SELECT execution_id FROM attempts")}) == 1
        assert store.outcome("r1", "t1") is None
        assert _states(store) == {"t1": ("pending", None, 1), "t2": ("leased", "w1", 1)}
        again = ledger.lease("w2", 10, ttl_s=60)
    assert [(leased.task.id, leased.execution) for leased in again] == [("t1", 2)]


def test_a_worker_cannot_abandon_a_lease_it_does_not_hold(tmp_path: Path) -> None:
    """Only the owner's lease returns to pending; another worker's stays, though the steps land."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        ledger.lease("w1", 10, ttl_s=60)
        ledger.abandon("w2", [("t1", [_step("t1")])])
        assert _states(store)["t1"] == ("leased", "w1", 1)
        assert store.count("attempts") == 1


def test_renewing_keeps_a_live_owners_leases_from_being_reclaimed(tmp_path: Path) -> None:
    """A lease past its deadline is reclaimed, unless its owner renewed it; renew counts its own."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1", "t2")
        ledger.lease("w1", 1, ttl_s=-1.0)
        ledger.lease("w2", 1, ttl_s=-1.0)
        assert ledger.renew("w1", ttl_s=60) == 1
        assert ledger.renew("nobody", ttl_s=60) == 0
        assert ledger.reclaim(alive=["w1", "w2"]) == 1
        assert _states(store) == {"t1": ("leased", "w1", 1), "t2": ("pending", None, 1)}


def test_retry_failed_sends_back_only_failed_tasks_and_keeps_their_calls(tmp_path: Path) -> None:
    """Failed results go and their tasks run again from zero executions; accepted ones stay."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1", "t2")
        ledger.lease("w1", 10, ttl_s=60)
        ledger.record([(_outcome("t1", Status.FAILED), 1), (_outcome("t2"), 1)])
        assert ledger.retry_failed() == 1
        assert [line["id"] for line in store.results("r1")] == ["t2"]
        assert store.count("attempts") == 2
        assert _states(store) == {"t1": ("pending", None, 0), "t2": ("done", None, 1)}
        assert ledger.retry_failed() == 0


def test_a_failed_task_without_a_payload_is_not_sent_back(tmp_path: Path) -> None:
    """A failed result of a quarantined line (no task to run) loses its result but stays done."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        ledger = Ledger(store, "r1")
        failed = _outcome("bad", Status.FAILED)
        ledger.ingest([Entry(1, reason="not JSON", raw="{", outcome=failed)], finished=True)
        assert ledger.retry_failed() == 1
        assert ledger.unfinished() == 0
        assert ledger.lease("w1", 10, ttl_s=60) == []


def test_a_duplicate_of_a_task_with_no_line_names_an_earlier_line(tmp_path: Path) -> None:
    """A repeat of an id recorded with no input line says "an earlier line", with the id as raw."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        store.record(_outcome("t1"))
        ledger = Ledger(store, "r1")
        assert ledger.ingest([Entry(7, task=Task("t1", input="x"))]) == 1
        (quarantined,) = _quarantined(ledger)
    assert quarantined == {
        "line": 7,
        "reason": "duplicate id 't1': first on an earlier line, which keeps its result",
        "raw": {"id": "t1"},
    }


def test_a_quarantined_line_with_a_held_id_is_a_duplicate(tmp_path: Path) -> None:
    """A bad line whose id the run already holds counts as a duplicate and changes no task."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        bad = _outcome("t1", Status.FAILED)
        assert ledger.ingest([Entry(2, reason="no input", raw={"id": "t1"}, outcome=bad)]) == 1
        assert _states(store)["t1"] == ("pending", None, 0)
        assert store.outcome("r1", "t1") is None
        assert ledger.position().duplicates == 1


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ({"when": datetime.datetime(2024, 5, 1)}, {"when": "2024-05-01 00:00:00"}),
        ({(1, 2): "x"}, "{(1, 2): 'x'}"),
    ],
)
def test_a_quarantined_lines_raw_value_is_kept_as_json_or_as_its_repr(
    tmp_path: Path, raw: object, kept: object
) -> None:
    """What JSON can hold (with values written as text) is kept as JSON; anything else as repr."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        ledger = Ledger(store, "r1")
        ledger.ingest([Entry(1, reason="not a task", raw=raw)])
        (quarantined,) = _quarantined(ledger)
    assert quarantined["raw"] == kept


# The run's configuration and the named queries.


def test_amending_a_run_keeps_its_configuration_and_writes_values_as_text(tmp_path: Path) -> None:
    """``amend_run`` adds to what the run was started with; a path is kept as its text."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1", {"policy": "p.toml", "data": Path("in.jsonl")})
        store.start_run("r2", {"policy": "other.toml"})
        store.amend_run("r1", out=Path("out") / "results.jsonl")
        assert store.run_config("r1") == {
            "policy": "p.toml",
            "data": "in.jsonl",
            "out": "out/results.jsonl",
        }
        assert store.run_config("r2") == {"policy": "other.toml"}
        assert run_config(store, "r1") == store.run_config("r1")
        assert run_config(store, "unknown") is None


def test_a_task_payload_is_none_for_an_unknown_task_or_one_recorded_without_it(
    tmp_path: Path,
) -> None:
    """Only a task the ledger ingested has a payload to show."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        store.record(_outcome("t2"))
        assert ledger.unfinished() == 1
        held = task_payload(store, "r1", "t1")
        assert held is not None
        assert json.loads(held)["id"] == "t1"
        assert task_payload(store, "r1", "t2") is None
        assert task_payload(store, "r1", "nobody") is None


def test_a_reviewed_answer_keeps_its_parsed_value(tmp_path: Path) -> None:
    """A reviewer's parsed value is the result's, read back as the outcome's ``parsed``."""
    with Store(tmp_path / "run.db") as store:
        store.record(_outcome("t1", Status.NEEDS_REVIEW))
        record_reviews(store, [("r1", "t1", '{"x": 1}', {"x": 1}, "ann")])
        outcome = store.outcome("r1", "t1")
    assert outcome is not None
    assert (outcome.status, outcome.parsed) == (Status.ACCEPTED, {"x": 1})


# Provider batches.


def test_a_batch_is_created_and_ended_under_its_own_file_only(tmp_path: Path) -> None:
    """``created`` and ``ended`` change the named file's batch, and no other run's or file's."""
    with Store(tmp_path / "run.db") as store:
        book, other = BatchBook(store, "r1"), BatchBook(store, "r2")
        book.add("file-1", "m", ["a"])
        book.add("file-2", "m", ["b"])
        other.add("file-1", "m", ["a"])
        book.created("file-1", "batch-1")
        assert [(b.file_id, b.batch_id, b.state) for b in book.all()] == [
            ("file-1", "batch-1", "submitted"),
            ("file-2", None, "uploaded"),
        ]
        book.ended("file-1", "completed")
        found = book.batch("file-1")
        assert found is not None
        assert (found.batch_id, found.state, found.items) == ("batch-1", "completed", 1)
        untouched = other.batch("file-1")
        assert untouched is not None
        assert (untouched.batch_id, untouched.state) == (None, "uploaded")
        assert book.batch("file-3") is None


# The side file of unsaved calls.


def test_kept_steps_are_restored_once_under_their_execution(tmp_path: Path) -> None:
    """An audit's steps the store could not take come back on the next run, and only once."""
    path = str(tmp_path / "run.db")
    failure = Failure(path, "No space left on device")
    assert SideFile(path).keep_steps([_step("t1", 0.5)], "exec-1", failure) == side_paths(path)[0]
    kept = read_kept(path)
    assert kept is not None
    assert (kept.entries, kept.calls, kept.cost_usd, kept.failure) == (1, 1, 0.5, str(failure))
    assert kept.path == side_paths(path)[0]
    with Store(path) as store:
        assert restore_unsaved(store) == 1
        rows = list(store.select("SELECT execution_id, cost_usd FROM attempts"))
        assert rows == [("exec-1", 0.5)]
        SideFile(path).keep_steps([_step("t1", 0.5)], "exec-1", failure)
        assert restore_unsaved(store) == 0
        assert store.count("attempts") == 1
    assert read_kept(path) is None


def test_kept_outcomes_are_restored_with_their_executions(tmp_path: Path) -> None:
    """A finished task's outcome and steps come back whole, with how many times it ran."""
    path = str(tmp_path / "run.db")
    failure = Failure(path, "disk I/O error")
    SideFile(path).keep_outcomes([(_outcome("t1", cost=0.5), 2), (_outcome("t2"), 1)], failure)
    kept = read_kept(path)
    assert kept is not None
    assert (kept.entries, kept.calls, kept.cost_usd, kept.failure) == (2, 2, 0.75, str(failure))
    with Store(path) as store:
        assert restore_unsaved(store) == 2
        assert store.outcome("r1", "t1") == _outcome("t1", cost=0.5)
        assert list(store.select("SELECT executions FROM results")) == [(2,), (1,)]
        SideFile(path).keep_outcomes([(_outcome("t1", cost=0.5), 1)], failure)
        assert restore_unsaved(store) == 0
        assert store.count("attempts") == 2


def test_an_unwritable_side_file_falls_back_to_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the store's folder cannot take the file, the entry goes under ``$TMPDIR``, whole."""
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setenv("TMPDIR", str(spare))
    monkeypatch.setattr("tempfile.tempdir", None)
    path = str(tmp_path / "gone" / "run.db")
    failure = Failure(path, "No space left on device")
    where = SideFile(path).keep_outcomes([(_outcome("t1"), 1)], failure)
    assert where == spare / "run.db.unsaved.jsonl"
    (line,) = where.read_text().splitlines()
    assert json.loads(line)["result"][1] == "t1"
    assert where.stat().st_mode & 0o777 == 0o600


def test_calls_kept_only_under_the_temporary_directory_are_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no side file beside the store, the one under ``$TMPDIR`` is read back, then removed."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "spare"))
    monkeypatch.setattr("tempfile.tempdir", None)
    (tmp_path / "spare").mkdir()
    path = str(tmp_path / "run.db")
    beside, spare = side_paths(path)
    SideFile(path).keep_outcomes([(_outcome("t1"), 1)], Failure(path, "full"))
    beside.rename(spare)
    with Store(path) as store:
        assert restore_unsaved(store) == 1
        assert store.outcome("r1", "t1") == _outcome("t1")
    assert not spare.exists()


def test_a_side_file_nowhere_writable_says_so() -> None:
    """With neither place writable, nothing is claimed to be kept."""
    side = SideFile("/proc/no/run.db")
    side.paths = (Path("/proc/no/a.jsonl"), Path("/proc/no/b.jsonl"))
    assert side.keep_steps([_step("t1")], "e", Failure("x", "full")) is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(28, "No space left on device"), "No space left on device"),
        (OSError("no errno"), "no errno"),
        (sqlite3.OperationalError("database or disk is full"), "database or disk is full"),
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
    ],
)
def test_a_full_disk_or_io_error_is_a_failed_write(error: BaseException, reason: str) -> None:
    """An OS error, or SQLite's full-disk and I/O errors, are failed writes, with their reason."""
    assert write_failure(error, "run.db") == Failure("run.db", reason)


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.IntegrityError("disk is full"),
        ValueError("disk is full"),
    ],
)
def test_other_errors_are_not_failed_writes(error: BaseException) -> None:
    """A lock, a constraint or a bug is not a full disk, whatever its words."""
    assert write_failure(error, "run.db") is None


def test_sqlite_error_codes_decide_before_the_words() -> None:
    """With an error code, SQLite's code decides: full and I/O errors are, others are not."""
    full = sqlite3.OperationalError("whatever")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    io = sqlite3.OperationalError("whatever")
    io.sqlite_errorcode = sqlite3.SQLITE_IOERR | (3 << 8)  # an extended I/O code
    busy = sqlite3.OperationalError("disk is full")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert write_failure(full, "db") == Failure("db", "whatever")
    assert write_failure(io, "db") == Failure("db", "whatever")
    assert write_failure(busy, "db") is None


def test_a_cut_side_file_line_is_passed_over(tmp_path: Path) -> None:
    """A line cut short by the full disk, or one not holding steps, adds nothing on restore."""
    path = str(tmp_path / "run.db")
    SideFile(path).keep_steps([_step("t1")], "e1", Failure(path, "full"))
    with side_paths(path)[0].open("a") as side:
        side.write('{"steps": [[1, 2\n["not", "an", "entry"]\n{"no": "steps"}\n{"steps": []}\n')
    kept = read_kept(path)
    assert kept is not None
    assert (kept.entries, kept.calls) == (2, 1)
    with Store(path) as store:
        assert restore_unsaved(store) == 1


def test_a_side_file_with_bytes_that_are_not_text_still_restores_its_entries(
    tmp_path: Path,
) -> None:
    """Garbage bytes in a side file (a torn write) are passed over; its whole entries come back."""
    path = str(tmp_path / "run.db")
    side_paths(path)[0].write_bytes(b"\xff\xfe\x00 torn\n")
    SideFile(path).keep_steps([_step("t1")], "e1", Failure(path, "full"))
    with Store(path) as store:
        assert restore_unsaved(store) == 1


# The verdict cache of sandboxed tests.


def test_a_verdict_is_kept_read_back_and_counted(tmp_path: Path) -> None:
    """A miss, then a put, then a hit with the same verdict, across a reopen."""
    cache = VerdictCache(tmp_path / "cache" / "verdicts.db")
    key = verdict_key("code", ["tests"], 1)
    assert cache.get(key) is None
    assert cache.get(key) is None
    cache.put(key, Verdict(False, reason="2 failed", feedback="fix test_a"))
    cache.put(verdict_key("other"), Verdict(True))
    cache.close()
    again = VerdictCache(tmp_path / "cache" / "verdicts.db")
    found = again.get(key)
    again.put(key, Verdict(True, reason="now passes"))
    replaced = again.get(key)
    again.close()
    assert found == Verdict(False, reason="2 failed", feedback="fix test_a")
    assert replaced == Verdict(True, reason="now passes")
    assert (cache.hits, cache.misses, again.hits, again.misses) == (0, 2, 2, 0)
    assert repr(again) == f"VerdictCache({str(tmp_path / 'cache' / 'verdicts.db')!r})"


def test_a_verdict_key_depends_on_every_part_and_not_on_key_order() -> None:
    """The key is stable for equal parts, whatever a mapping's order, and changes with any part."""
    key = verdict_key("code", {"a": 1, "b": "é"}, object)
    assert key == verdict_key("code", {"b": "é", "a": 1}, object)
    assert len(key) == 64
    assert key != verdict_key("code", {"a": 1, "b": "e"}, object)
    assert key != verdict_key("code", {"a": 1, "b": "é"})
    assert verdict_key("a", "b") != verdict_key("ab")


def test_the_verdict_cache_lives_under_cascade_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$CASCADE_CACHE`` places the cache; without it, it is under ``~/.cache/cascade``."""
    monkeypatch.setenv("CASCADE_CACHE", str(tmp_path / "c"))
    assert default_cache_path() == tmp_path / "c" / "verdicts.db"
    cache = VerdictCache()
    cache.close()
    assert cache.path == tmp_path / "c" / "verdicts.db"
    monkeypatch.delenv("CASCADE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "cascade" / "verdicts.db"


def test_a_verdict_cache_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    """A cache path under a file is refused in words, naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot open the verdict cache .*file/v\.db"):
        VerdictCache(blocker / "v.db")


def test_a_verdict_cache_makes_its_folders_and_serves_other_threads(tmp_path: Path) -> None:
    """The cache's missing folders are made, and a thread other than the opener's may use it."""
    cache = VerdictCache(tmp_path / "a" / "b" / "verdicts.db")
    found: list[Verdict | None] = []
    worker = threading.Thread(target=lambda: found.append(cache.get("k")))
    cache.put("k", Verdict(True, reason="ok"))
    worker.start()
    worker.join()
    cache.close()
    assert found == [Verdict(True, reason="ok")]


# Ingesting input: positions, duplicates, quarantined lines and executions.


def test_a_runs_position_counts_lines_duplicates_and_the_end_of_input(tmp_path: Path) -> None:
    """Lines read, repeated ids (two in one batch) and the end mark are what the run stored."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        ledger = Ledger(store, "r1")
        assert ledger.position() == Position(0, 0, False)
        assert Ledger(store, "nobody").position() == Position(0, 0, False)
        assert ledger.ingest([]) == 0
        assert ledger.position() == Position(0, 0, False)
        task = Task("t1", input="x")
        entries = [Entry(2, task=task), Entry(3, task=task), Entry(4, task=task)]
        assert ledger.ingest(entries) == 2
        assert ledger.position() == Position(4, 2, False)
        ledger.ingest([], finished=True)
        assert ledger.position() == Position(4, 2, True)
        reasons = [line["reason"] for line in _quarantined(ledger)]
    assert reasons == [
        "duplicate id 't1': first on line 2, which keeps its result",
        "duplicate id 't1': first on line 2, which keeps its result",
    ]


def test_quarantined_lines_after_a_repeated_id_are_still_recorded(tmp_path: Path) -> None:
    """A bad line repeating a held id does not stop the batch: the next bad line gets its result."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        repeat = Entry(2, reason="bad", raw={}, outcome=_outcome("t1", Status.FAILED))
        again = dataclasses.replace(repeat, line=3)
        fresh = Entry(4, raw={}, outcome=_outcome("t2", Status.FAILED))
        assert ledger.ingest([repeat, again, fresh]) == 2
        failed = store.outcome("r1", "t2")
        assert failed is not None
        assert failed.status is Status.FAILED
        assert [line["reason"] for line in _quarantined(ledger)] == ["bad", "bad", ""]


def test_a_recorded_task_keeps_its_payload_and_its_count_of_executions(tmp_path: Path) -> None:
    """``record`` with the task keeps it; the ledger's record keeps how many times each ran."""
    with Store(tmp_path / "run.db") as store:
        assert store.record(_outcome("t1"), Task("t1", input="x")) is True
        assert store.record(_outcome("t1")) is False
        held = task_payload(store, "r1", "t1")
        assert held is not None
        assert json.loads(held)["input"] == "x"
        Ledger(store, "r1").record([(_outcome("t2"), 3)])
        rows = list(store.select("SELECT task_id, executions FROM results ORDER BY task_id"))
        assert rows == [("t1", 1), ("t2", 3)]


def test_skipped_audits_add_up_within_a_run_and_a_run_not_held_is_passed_over(
    tmp_path: Path,
) -> None:
    """A resumed run adds its skipped audits to the earlier ones; an unknown run adds nothing."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        Ledger(store, "r1").add_audits_skipped({"demo": (2, 1)})
        Ledger(store, "r1").add_audits_skipped({"demo": (3, 1)})
        Ledger(store, "nobody").add_audits_skipped({"demo": (4, 1)})
        assert audits_skipped(store, None) == {"demo": (5, 1.0)}


@pytest.mark.parametrize("sql", ["\n  SELECT 1", "with x AS (SELECT 1 AS one) SELECT one FROM x"])
def test_select_runs_queries_however_they_start(tmp_path: Path, sql: str) -> None:
    """A query may start with white space, or with a ``WITH`` clause, in any case."""
    with Store(tmp_path / "run.db") as store:
        assert list(store.select(sql)) == [(1,)]


def test_select_refuses_a_statement_that_is_not_a_query(tmp_path: Path) -> None:
    """``select`` is for reading: a write is refused in words and changes nothing."""
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        with pytest.raises(ValueError, match=r"^select\(\) runs queries only$"):
            list(store.select("DELETE FROM runs"))
        assert store.count("runs") == 1


# Rows read back: results, tasks, steps and verdicts.


def test_results_after_a_row_carry_status_tier_and_whether_the_task_escalated(
    tmp_path: Path,
) -> None:
    """A result read for the results file and the progress bar says what the outcome said."""
    low = _step("t1")
    high = dataclasses.replace(_step("t1", number=1), tier=1, decision=Decision.ACCEPT)
    climbed = dataclasses.replace(_outcome("t1"), tier=1, steps=(low, high), task_type="maths")
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        ledger.lease("w1", 1, ttl_s=60)
        ledger.record([(climbed, 3)])
        store.record(_outcome("t2", Status.FAILED))
        first, second = ledger.results_after(0)
    assert (first.status, first.escalated, first.executions) == ("accepted", True, 3)
    assert (first.task_type, first.tier, first.tiers_tried) == ("maths", 1, 2)
    assert (second.status, second.escalated, second.tiers_tried) == ("failed", False, 1)
    assert first.line["attempts"] == 2
    assert second.line["attempts"] == 1


def test_a_leased_task_is_the_task_that_was_ingested(tmp_path: Path) -> None:
    """Messages, meta (with a value JSON does not know), extras and deadline come back."""
    task = Task(
        "t1",
        messages=({"role": "user", "content": "hi"},),
        meta={"when": datetime.date(2024, 5, 1)},
        extra={"tests": "assert True"},
        deadline_s=2.5,
    )
    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        ledger = Ledger(store, "r1")
        ledger.ingest([Entry(1, task=task)])
        (leased,) = ledger.lease("w1", 1, ttl_s=60)
    assert leased.task == dataclasses.replace(task, meta={"when": "2024-05-01"})


def test_a_task_the_store_cannot_read_back_is_named_as_corrupt(tmp_path: Path) -> None:
    """A payload that is no longer a valid task is a corrupt store, said in words."""
    path = tmp_path / "run.db"
    with Store(path) as store:
        _ledger(store, "t1")
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE tasks SET payload = '{"id": "t1"}'""")
    with (
        Store(path) as store,
        pytest.raises(TaskError, match="the store holds a task it cannot read back: "),
    ):
        Ledger(store, "r1").lease("w1", 1, ttl_s=60)


def test_an_outcome_round_trips_whatever_its_parts(tmp_path: Path) -> None:
    """Parsed values (one JSON does not know), times, a self-reported verdict, no verdicts."""
    reported = dataclasses.replace(
        _step("t1"), verdicts=(Verdict(True, reason="ran", self_reported=True),)
    )
    bare = dataclasses.replace(_step("t1", number=1), verdicts=())
    outcome = dataclasses.replace(
        _outcome("t1"),
        parsed={"when": datetime.date(2024, 5, 1)},
        steps=(reported, bare),
        compute_s=1.5,
        waited_s=2.5,
    )
    empty = dataclasses.replace(_outcome("t2", Status.FAILED), output=None, tier=None)
    with Store(tmp_path / "run.db") as store:
        store.record(outcome)
        store.record(empty)
        assert store.outcome("r1", "t1") == dataclasses.replace(
            outcome, parsed={"when": "2024-05-01"}
        )
        assert store.outcome("r1", "t2") == empty


def test_audit_queries_read_only_audit_steps_and_escalations(tmp_path: Path) -> None:
    """Audit spend and verdicts come from audit steps; escalations from escalating steps."""
    audit = dataclasses.replace(_step("t1", 0.125, 1), kind=CallKind.AUDIT, decision=Decision.AGREE)
    with Store(tmp_path / "run.db") as store:
        store.record(_outcome("t1", cost=0.5))
        store.append_steps([audit], "audit-1")
        assert audit_spent(store, "r1") == {"demo": 0.125}
        assert audit_verdicts_after(store, "r1", 0) == [(2, "demo", 0, "agree")]
        assert [row[:3] for row in escalations_after(store, "r1", 0)] == [(1, "demo", 0)]
        assert audit_verdicts_after(store, "r1", 2) == []


# Transactions and switching a store to WAL mode.


def test_a_failed_transaction_writes_nothing_and_raises_its_own_error(tmp_path: Path) -> None:
    """An error inside a write rolls back all of it, and is the error the caller sees."""

    def fail(db: sqlite3.Connection) -> None:
        db.execute("UPDATE runs SET duplicates = 9")
        raise LookupError("mid-write")

    with Store(tmp_path / "run.db") as store:
        store.start_run("r1")
        with pytest.raises(LookupError, match="mid-write"):
            store.record_many([(_outcome("t1"), None)], also=fail)
        assert (store.count("results"), store.count("attempts")) == (0, 0)
        assert Ledger(store, "r1").position() == Position(0, 0, False)


@pytest.mark.parametrize(
    "holding",
    [
        pytest.param(["BEGIN", "SELECT * FROM other"], id="a reader: the switch waits"),
        pytest.param(
            ["BEGIN IMMEDIATE", "INSERT INTO other VALUES (1)"],
            id="a writer: the switch fails at once and is retried",
        ),
    ],
)
def test_opening_a_store_another_connection_holds_switches_to_wal_once_it_lets_go(
    tmp_path: Path, holding: list[str]
) -> None:
    """A store first opened while another connection reads or writes it still ends in WAL mode."""
    path = tmp_path / "run.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for statement in holding:
        other.execute(statement).fetchall()
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with Store(path) as store, store.reading() as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        release.join()
        other.close()
    assert mode == "wal"


class _BrokenDisk:
    """A connection whose every statement fails as a broken disk does."""

    def __init__(self) -> None:
        self.tries = 0

    def execute(self, sql: str) -> None:
        self.tries += 1
        raise sqlite3.OperationalError("disk I/O error")


def test_an_error_that_is_not_a_lock_is_not_retried_while_switching_to_wal() -> None:
    """Only a lock is waited out: a disk error is raised at the first try, as it is."""
    broken = _BrokenDisk()
    with pytest.raises(sqlite3.OperationalError, match=r"^disk I/O error$"):
        enable_wal(broken)  # type: ignore[arg-type]  # a stand-in for a connection
    assert broken.tries == 1


@pytest.mark.usefixtures("short_lock_wait")
def test_a_file_locked_past_the_wait_is_not_switched_to_wal(tmp_path: Path) -> None:
    """Held for longer than the wait, the switch gives up, saying the database is locked."""
    path = tmp_path / "run.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE other (x)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM other").fetchall()
    try:
        with pytest.raises(sqlite3.OperationalError, match="to WAL mode: database is locked"):
            Store(path)
    finally:
        reader.close()


# Runs, counts, spending and steps read back.


def test_an_unknown_run_has_an_empty_configuration(tmp_path: Path) -> None:
    """``run_config`` of a run the store does not hold is empty, not an error."""
    with Store(tmp_path / "run.db") as store:
        assert store.run_config("nobody") == {}


def test_find_run_refuses_a_key_that_is_not_a_name(tmp_path: Path) -> None:
    """A key that could not be a configuration key is refused, named, before any SQL is built."""
    with Store(tmp_path / "run.db") as store, pytest.raises(ValueError, match="'a-b'"):
        store.find_run(**{"a-b": 1})


def test_every_table_of_the_store_can_be_counted_and_no_other(tmp_path: Path) -> None:
    """``count`` knows the five tables, and refuses any other name in words."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1")
        ledger.ingest([Entry(2, reason="bad", raw="x")])
        counts = {t: store.count(t) for t in ("runs", "tasks", "attempts", "results", "quarantine")}
        assert counts == {"runs": 1, "tasks": 1, "attempts": 0, "results": 0, "quarantine": 1}
        with pytest.raises(ValueError, match="no table 'batches'"):
            store.count("batches")


def test_spending_is_every_call_and_the_audits_share_of_it(tmp_path: Path) -> None:
    """The run's spend counts every step; its audit spend only the audits' steps."""
    audit = dataclasses.replace(_step("t1", 0.125, 1), kind=CallKind.AUDIT)
    with Store(tmp_path / "run.db") as store:
        store.record(_outcome("t1", cost=0.5))
        store.append_steps([audit], "audit-1")
        assert spending(store, "r1") == (0.625, 0.125)
        assert spending(store, None) == (0.625, 0.125)
        assert spending(store, "other") == (0.0, 0.0)


def test_audits_skipped_add_up_across_runs(tmp_path: Path) -> None:
    """Skipped audits of one type in two runs are summed, with the cap as a number."""
    with Store(tmp_path / "run.db") as store:
        for run_id, count in (("r1", 2), ("r2", 3)):
            store.start_run(run_id)
            Ledger(store, run_id).add_audits_skipped({"demo": (count, 1), "other": (0, 2)})
        assert audits_skipped(store, None) == {"demo": (5, 1.0), "other": (0, 2.0)}
        assert audits_skipped(store, "r1") == {"demo": (2, 1.0), "other": (0, 2.0)}


def test_a_steps_confidence_compute_time_and_batch_mark_round_trip(tmp_path: Path) -> None:
    """What a step says of its answer's confidence, local compute and batch call is read back."""
    step = dataclasses.replace(_step("t1"), confidence=0.75, compute_s=1.5, batch=True)
    with Store(tmp_path / "run.db") as store:
        store.append_steps([step], "e1")
        assert store.steps("r1", "t1") == [step]


def test_a_drift_alarm_is_known_by_run_type_tier_and_signal_until_cleared(tmp_path: Path) -> None:
    """``has`` finds the run's own alarm, not another signal's or tier's, and not once cleared."""
    with Store(tmp_path / "run.db") as store:
        alarms = DriftAlarms(store)
        alarms.raise_("r1", "demo", 0, "acceptance", "drift", escalate=False)
        assert alarms.has("r1", "demo", 0, "acceptance")
        assert not alarms.has("r1", "demo", 0, "cost")
        assert not alarms.has("r1", "demo", 1, "acceptance")
        assert not alarms.has("r2", "demo", 0, "acceptance")
        assert alarms.clear("demo") == 1
        assert not alarms.has("r1", "demo", 0, "acceptance")


def test_a_runs_drift_alarms_read_back_by_name(tmp_path: Path) -> None:
    """``of_run`` gives each alarm as a mapping of its fields, of one run or of all."""
    with Store(tmp_path / "run.db") as store:
        alarms = DriftAlarms(store)
        alarms.raise_("r1", "demo", 1, "acceptance", "drift!", escalate=True)
        alarms.raise_("r2", "demo", 0, "cost", "dearer", escalate=False)
        (alarm,) = alarms.of_run("r1")
        assert len(alarms.of_run(None)) == 2
    raised = alarm.pop("raised_at")
    assert isinstance(raised, float)
    assert alarm == {
        "run_id": "r1",
        "task_type": "demo",
        "tier": 1,
        "signal": "acceptance",
        "text": "drift!",
        "escalate": 1,
        "cleared_at": None,
    }


def test_provider_health_reads_errors_escalations_failures_waits_and_trips(tmp_path: Path) -> None:
    """Each part of a summary's provider health counts what it names, and only that."""
    broken = dataclasses.replace(_step("t1"), error="ServerError: 503", output=None)
    failed = dataclasses.replace(
        _outcome("t1", Status.FAILED), steps=(broken,), reasons=("ServerError: 503",), waited_s=2.5
    )
    with Store(tmp_path / "run.db") as store:
        store.record(failed)
        store.record(_outcome("t2"))
        Ledger(store, "r1").add_breaker_trips(3)
        health = {key: list(rows) for key, rows in provider_health(store, "r1").items()}
    assert health == {
        "errors": [("ServerError: 503", "escalate")],
        "escalations": [(0, 1), (1, 1)],
        "failed": [('["ServerError: 503"]',)],
        "waited_s": [(2.5,)],
        "trips": [(3.0,)],
    }


@pytest.mark.parametrize("synchronous", ["OFF", "NORMAL", "FULL", "EXTRA"])
def test_every_sqlite_synchronous_level_opens_a_store(tmp_path: Path, synchronous: str) -> None:
    """Each of SQLite's four durability levels is accepted, and set on the connection."""
    with Store(tmp_path / "run.db", synchronous=synchronous) as store:
        with store.reading() as db:
            level = db.execute("PRAGMA synchronous").fetchone()[0]
        assert level == ["OFF", "NORMAL", "FULL", "EXTRA"].index(synchronous)


def test_an_unknown_synchronous_level_is_refused_in_words(tmp_path: Path) -> None:
    """A level SQLite does not have is refused, naming the four it has."""
    with pytest.raises(ValueError, match="must be OFF, NORMAL, FULL or EXTRA, not 'fast'"):
        Store(tmp_path / "run.db", synchronous="fast")
    assert not (tmp_path / "run.db").exists()


def test_a_store_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    """A store in a folder that does not exist is refused, naming the path."""
    with pytest.raises(ConfigError, match=r"cannot open the store .*missing/run\.db"):
        Store(tmp_path / "missing" / "run.db")


def test_a_store_opened_in_one_thread_serves_another(tmp_path: Path) -> None:
    """The run's worker threads share one store: a thread other than the opener's records."""
    with Store(tmp_path / "run.db") as store:
        worker = threading.Thread(target=lambda: store.record(_outcome("t1")))
        worker.start()
        worker.join()
        assert store.outcome("r1", "t1") == _outcome("t1")


# Opening a store, and the drift alarms a run reads while it runs.


def test_a_file_with_a_foreign_tasks_table_is_refused_as_a_store(tmp_path: Path) -> None:
    """A SQLite file whose tables are not cascade's is refused in words, and left as it was."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE tasks (x)")
    with pytest.raises(ConfigError, match=r"cannot be used as a cascade store: .*no such column"):
        Store(path)
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["tasks"]


@pytest.mark.usefixtures("short_lock_wait")
def test_a_store_locked_past_the_wait_says_locked_not_unusable(tmp_path: Path) -> None:
    """A store another connection keeps locked is a lock (retry later), not a foreign file."""
    path = tmp_path / "run.db"
    Store(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as raised:
            Store(path)
    finally:
        other.close()
    assert not isinstance(raised.value, ConfigError)


def test_arrivals_say_where_the_first_unsettled_task_stands(tmp_path: Path) -> None:
    """The first task still pending, or leased, is the first unsettled arrival; none once done."""
    with Store(tmp_path / "run.db") as store:
        ledger = _ledger(store, "t1", "t2", "t3")
        arrivals = Arrivals(store, "r1")
        assert arrivals.of(0, 0) == ({}, 1)
        ledger.lease("w1", 1, ttl_s=60)
        assert arrivals.of(0, 0) == ({}, 1)
        ledger.record([(_outcome("t1"), 1)])
        assert arrivals.of(0, 1) == ({1: 1}, 2)
        ledger.lease("w1", 2, ttl_s=60)
        ledger.record([(_outcome("t3"), 1), (_outcome("t2"), 1)])
        assert arrivals.of(1, 2) == ({2: 3}, 2)
        assert arrivals.of(1, 3) == ({2: 3, 3: 2}, None)


def test_escalated_types_are_read_again_once_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The escalated types are read at the first call, then again once ``every_s`` has passed."""
    now = [100.0]
    monkeypatch.setattr("cascade.store.alarms.time.monotonic", lambda: now[0])
    with Store(tmp_path / "run.db") as store:
        alarms = DriftAlarms(store)
        every_quarter, by_default = Escalated(store, every_s=0.25), Escalated(store)
        assert every_quarter() == by_default() == set()
        alarms.raise_("r1", "demo", 0, "acceptance", "drift", escalate=True)
        alarms.raise_("r1", "calm", 0, "acceptance", "drift", escalate=False)
        now[0] += 0.0625
        assert every_quarter() == by_default() == set()
        now[0] += 0.1875
        assert every_quarter() == by_default() == {"demo"}
        alarms.clear()
        now[0] += 0.25
        assert every_quarter() == by_default() == set()


# The two tests that wait on another connection's lock, last: they take seconds.


def test_a_writer_waits_for_another_processs_write_to_end(tmp_path: Path) -> None:
    """Two writers on one file take turns: a write waits out another's short transaction."""
    path = tmp_path / "run.db"
    with Store(path) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(1.0, lambda: other.execute("COMMIT"))
        release.start()
        try:
            store.start_run("r1")
        finally:
            release.join()
            other.close()
        assert store.count("runs") == 1


@pytest.mark.timeout(60)
def test_a_verdict_cache_waits_for_another_writer(tmp_path: Path) -> None:
    """A put while another process holds the file for several seconds waits, and lands."""
    path = tmp_path / "verdicts.db"
    cache = VerdictCache(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(6.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        cache.put("k", Verdict(False, reason="late"))
    finally:
        release.join()
        other.close()
    assert cache.get("k") == Verdict(False, reason="late")
    cache.close()
