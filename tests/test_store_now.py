"""Writing without waiting: ``Store.record_now``, and ``cascade serve``'s writer on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade import Store
from cascade.outcome import Outcome
from cascade.serve.writer import GroupWriter
from cascade.testing import FakeReply
from cascade.types import Task
from tests.serving import Upstream, policy_file, served


def _item(n: int) -> tuple[Outcome, Task]:
    task = Task(f"t{n}", input="x", type="demo")
    return Outcome.failed("r1", task, "not run"), task


def _ids(path: Path) -> list[str]:
    with Store(path) as store:
        return [row[0] for row in store.select("SELECT task_id FROM results ORDER BY task_id")]


@contextmanager
def _held(path: Path) -> Iterator[None]:
    """Another connection (as another process would) holding the file's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_free_store_is_written_at_once(tmp_path: Path) -> None:
    """A free store takes the outcomes and ``also`` in one transaction, as ``record_many``."""
    seen: list[int] = []
    with Store(tmp_path / "s.db") as store:
        written = store.record_now([_item(1), _item(2)], also=lambda db: seen.append(1))
    assert written == [True, True]
    assert seen == [1]
    assert _ids(tmp_path / "s.db") == ["t1", "t2"]


def test_a_file_another_writer_holds_is_not_waited_for(tmp_path: Path) -> None:
    """Another process's write lock: ``None`` at once, nothing written, and waits come back."""
    path = tmp_path / "s.db"
    with Store(path) as store:
        with _held(path):
            start = time.monotonic()
            assert store.record_now([_item(1)]) is None
            assert time.monotonic() - start < 1.0  # not the 30 s busy timeout
        assert _ids(path) == []
        # The store's own waits are back: a writer waits out a lock held for a moment.
        with store.reading() as db:
            assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
        timer.start()
        try:
            assert store.record_many([_item(2)]) == [True]
        finally:
            timer.join()
            other.close()
        assert store.record_now([_item(3)]) == [True]
    assert _ids(path) == ["t2", "t3"]


def test_a_connection_another_thread_uses_is_not_waited_for(tmp_path: Path) -> None:
    """Our own writer in another thread: ``None``, and its transaction is left alone."""
    path = tmp_path / "s.db"
    with Store(path) as store:
        inside, release = threading.Event(), threading.Event()

        def also(_: sqlite3.Connection) -> None:
            inside.set()
            release.wait(10)

        writer = threading.Thread(target=store.record_many, args=([_item(1)],),
                                  kwargs={"also": also})  # fmt: skip
        writer.start()
        assert inside.wait(10)
        try:
            assert store.record_now([_item(2)]) is None
        finally:
            release.set()
            writer.join()
    assert _ids(path) == ["t1"]


def test_a_write_that_fails_leaves_nothing_and_the_store_usable(tmp_path: Path) -> None:
    """An error inside the transaction rolls all of it back and is raised."""

    def refuse(_: sqlite3.Connection) -> None:
        raise sqlite3.IntegrityError("no, say")

    path = tmp_path / "s.db"
    with Store(path) as store:
        with pytest.raises(sqlite3.IntegrityError, match="no, say"):
            store.record_now([_item(1)], also=refuse)
        assert store.record_now([_item(2)]) == [True]
    assert _ids(path) == ["t2"]


def test_an_error_sqlite_rolled_back_itself_is_the_one_raised(tmp_path: Path) -> None:
    """A write SQLite ends by rolling back (a full disk): its error, not "no transaction"."""

    def disk_full(db: sqlite3.Connection) -> None:
        db.execute("ROLLBACK")  # what SQLite does itself on SQLITE_FULL or SQLITE_IOERR
        raise sqlite3.OperationalError("database or disk is full")

    path = tmp_path / "s.db"
    with Store(path) as store:
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            store.record_now([_item(1)], also=disk_full)
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            store.record_many([_item(2)], also=disk_full)
        assert store.record_now([_item(3)]) == [True]
    assert _ids(path) == ["t3"]


def test_a_commit_that_fails_is_rolled_back_and_raised(tmp_path: Path) -> None:
    """A constraint checked at COMMIT: its error, nothing written, and the store writes on."""

    def dangling(db: sqlite3.Connection) -> None:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS p (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TEMP TABLE IF NOT EXISTS c (id INTEGER REFERENCES p (id)"
                   " DEFERRABLE INITIALLY DEFERRED)")  # fmt: skip
        db.execute("INSERT INTO c VALUES (1)")  # refused only when the transaction commits

    path = tmp_path / "s.db"
    with Store(path) as store:
        with store.reading() as db:
            db.execute("PRAGMA foreign_keys = ON")
        for write in (store.record_now, store.record_many):
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                write([_item(1)], also=dangling)
        assert store.record_now([_item(2)]) == [True]
        assert store.record_many([_item(3)]) == [True]
    assert _ids(path) == ["t2", "t3"]


def test_a_request_alone_is_written_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing else in flight: no thread is used; with others in flight, one is."""
    threads: list[object] = []
    real = asyncio.to_thread

    async def counted(*args: object, **kwargs: object) -> object:
        threads.append(args[0])
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counted)
    with Store(tmp_path / "s.db") as store:
        writer = GroupWriter(store)

        async def both() -> None:
            await writer.write(*_item(1), lambda db: None, alone=True)
            assert threads == []
            await writer.write(*_item(2), lambda db: None)
            assert len(threads) == 1

        asyncio.run(both())
        assert writer.groups == 2
    assert _ids(tmp_path / "s.db") == ["t1", "t2"]


def test_a_request_alone_waits_in_a_thread_for_a_held_store(tmp_path: Path) -> None:
    """A store another process holds: the write waits off the loop, which keeps turning."""
    path = tmp_path / "s.db"
    with Store(path) as store:
        writer = GroupWriter(store)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")

        async def held() -> float:
            write = asyncio.ensure_future(writer.write(*_item(1), lambda db: None, alone=True))
            start = time.monotonic()
            await asyncio.sleep(0.2)  # the loop turns while the write waits for the lock
            turned = time.monotonic() - start
            assert not write.done()
            other.execute("ROLLBACK")
            await write
            return turned

        try:
            assert asyncio.run(held()) < 1.0  # not held up by the 30 s wait for the lock
        finally:
            other.close()
    assert _ids(path) == ["t1"]


def test_the_server_writes_a_lone_request_on_the_loop_and_overlapping_ones_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request at a time is stored at once; two in flight together go through the group."""
    now, grouped = [], []
    record_now, record_many = Store.record_now, Store.record_many

    def spy_now(self: Store, *args: Any, **kwargs: Any) -> list[bool] | None:
        now.append(1)
        return record_now(self, *args, **kwargs)

    def spy_many(self: Store, *args: Any, **kwargs: Any) -> list[bool]:
        grouped.append(1)
        return record_many(self, *args, **kwargs)

    monkeypatch.setattr(Store, "record_now", spy_now)
    monkeypatch.setattr(Store, "record_many", spy_many)
    answer = '{"name": "Ada"}'
    with Upstream({"small": [FakeReply(answer), FakeReply(answer, delay_s=0.5)]}) as up:
        policy = policy_file(tmp_path / "p", up.fake.base_url, models=("small",))
        with served(policy, tmp_path / "s.db") as server:
            ask = {"model": "cascade/contacts", "messages": [{"role": "user", "content": "Ada"}]}
            first = httpx.post(f"{server.url}/chat/completions", json=ask, timeout=30)
            assert first.status_code == 200
            assert (len(now), len(grouped)) == (1, 0)
            with ThreadPoolExecutor(2) as pool:  # the second is still running when one ends
                replies = list(pool.map(
                    lambda _: httpx.post(f"{server.url}/chat/completions", json=ask, timeout=30),
                    range(2),
                ))  # fmt: skip
            assert [r.status_code for r in replies] == [200, 200]
            assert len(grouped) >= 1
    with Store(tmp_path / "s.db") as store:
        assert next(store.select("SELECT count(*) FROM results"))[0] == 3
