"""What a refused run is told about the live holder of its store, whatever the lock file holds."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cascade.errors import ConfigError
from cascade.store.holder import holding


@contextmanager
def _held_by_another(store: Path, content: bytes) -> Iterator[None]:
    """A holder that is not cascade: it locks the file, with ``content`` inside."""
    lock = Path(f"{store}.lock")
    lock.write_bytes(content)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def test_the_refusal_names_what_holds_the_store_its_pid_host_and_since(tmp_path: Path) -> None:
    """The second run hears which command, which pid on which host, and since when."""
    store = tmp_path / "run.db"
    with (
        holding(store, what="cascade batch"),
        pytest.raises(ConfigError) as refused,
        holding(store),
    ):
        pass
    said = str(refused.value)
    assert said.startswith(f"--store {store} is in use by another live run (cascade batch, ")
    assert f", pid {os.getpid()} on {socket.gethostname()}, since " in said
    assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}\); wait for it to end", said)


def test_the_lock_file_says_who_holds_it_as_json(tmp_path: Path) -> None:
    """While held, STORE.lock holds the command, pid, host and start time, and nothing else."""
    store = tmp_path / "run.db"
    Path(f"{store}.lock").write_text("x" * 500)  # a longer leftover is overwritten whole
    with holding(store, what="cascade run"):
        found = json.loads(Path(f"{store}.lock").read_text())
    assert set(found) == {"what", "pid", "host", "since"}
    assert (found["what"], found["pid"], found["host"]) == (
        "cascade run",
        os.getpid(),
        socket.gethostname(),
    )


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"[1, 2]", b'{"what": "cascade run", "host": "h"}']
)
def test_a_holder_that_says_nothing_usable_is_refused_in_words(
    tmp_path: Path, content: bytes
) -> None:
    """An empty, garbled or pid-less lock file still refuses, saying the holder did not say."""
    store = tmp_path / "run.db"
    with _held_by_another(store, content), pytest.raises(ConfigError) as refused, holding(store):
        pass
    assert "(its holder did not say who it is)" in str(refused.value)


def test_missing_fields_of_a_holder_are_question_marks(tmp_path: Path) -> None:
    """A holder that gives only its pid is named by it, with the rest unknown."""
    store = tmp_path / "run.db"
    with (
        _held_by_another(store, b'{"pid": 4242}'),
        pytest.raises(ConfigError) as refused,
        holding(store),
    ):
        pass
    assert "(a run, pid 4242 on ?, since ?)" in str(refused.value)


def test_a_store_in_a_missing_folder_cannot_be_held(tmp_path: Path) -> None:
    """No lock file can be made: a configuration error naming the store and the reason."""
    store = tmp_path / "nowhere" / "run.db"
    refusal = r"^--store .*: cannot hold it \(.*run\.db\.lock: No such"
    with pytest.raises(ConfigError, match=refusal), holding(store):
        pass
