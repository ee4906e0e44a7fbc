"""Writing without waiting: ``Store.record_now``, and ``cascade serve``'s writer on the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cascade import Store
from cascade.outcome import Outcome
from cascade.serve.writer import GroupWriter
from cascade.types import Task


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

        async def held() -> int:
            turns = 0
            write = asyncio.ensure_future(writer.write(*_item(1), lambda db: None, alone=True))
            while turns < 20:  # the loop runs while the write waits for the lock
                await asyncio.sleep(0.01)
                turns += 1
            assert not write.done()
            other.execute("ROLLBACK")
            await write
            return turns

        try:
            assert asyncio.run(held()) == 20
        finally:
            other.close()
    assert _ids(path) == ["t1"]
