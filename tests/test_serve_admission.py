"""Who may start a request in ``cascade serve``, under load, retries and a busy store."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.errors import ConfigError
from cascade.serve.config import ServeConfig
from cascade.serve.prepared import prepare
from cascade.testing import FakeReply
from tests.serving import Upstream, policy_file, serve_process, served, wait_for

ASK = {"model": "cascade/contacts", "messages": [{"role": "user", "content": "Ada Lovelace"}]}
KEY = "ck-alice-0123456789abcdef"
ANSWER = FakeReply('{"name": "Ada"}', prompt_tokens=100, completion_tokens=50, delay_s=0.5)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """Each answer costs $0.0002 at the small tier's price and takes half a second."""
    with Upstream({"small": [ANSWER]}) as up:
        yield up


def post(url: str, key: str | None = None, **headers: str) -> httpx.Response:
    """POST the request, with ``key`` as the bearer."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(f"{url}/chat/completions", json=ASK, headers=headers, timeout=60)


@pytest.mark.parametrize("who", ["key", "server"])
def test_requests_sent_together_cannot_all_slip_under_a_budget(
    who: str, upstream: Upstream, tmp_path: Path
) -> None:
    """Ten at once against a $0.0004 budget, each holding back its policy's $0.0002 cap: two run."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",),
                         head="[budget]\nmax_cost_per_task_usd = 0.0002\n")  # fmt: skip
    options: dict[str, Any] = {"budget_usd": 0.0004}
    key = None
    if who == "key":
        keys = tmp_path / "keys.toml"
        keys.write_text(f'[[keys]]\nname = "a"\nkey = "{KEY}"\nbudget_usd = 0.0004\n')
        options, key = {"keys_file": str(keys)}, KEY
    with served(policy, tmp_path / "s.db", **options) as server, ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda _: post(server.url, key), range(10)))
        assert sorted(r.status_code for r in replies) == [200] * 2 + [429] * 8
        assert len(upstream.requests) == 2
        # what was held back is given back: the spend is exact, and the next one is refused
        assert post(server.url, key).status_code == 429


def test_a_retry_gets_its_stored_reply_even_over_the_rate_or_the_budget(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The reply was paid for: a retried key is answered before the rate or budget is looked at."""
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[keys]]\nname = "a"\nkey = "{KEY}"\nrpm = 1\nbudget_usd = 0.0002\n')
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "s.db", keys_file=str(keys)) as server:
        first = post(server.url, KEY, **{"Idempotency-Key": "k"})
        again = post(server.url, KEY, **{"Idempotency-Key": "k"})
        other = post(server.url, KEY, **{"Idempotency-Key": "k2"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 429
    assert len(upstream.requests) == 1


def test_a_busy_store_holds_up_its_requests_not_the_server(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Another process holds the store: /health still answers, and the request ends once free."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "s.db") as server:
        holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        replies: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: replies.append(post(server.url)))
        thread.start()
        wait_for(lambda: len(upstream.requests) == 1)
        time.sleep(0.3)  # the answer is in; its write waits for the store
        started = time.monotonic()
        health = httpx.get(server.url.removesuffix("/v1") + "/health", timeout=10)
        assert health.status_code == 200
        assert time.monotonic() - started < 2
        assert not replies
        holder.execute("ROLLBACK")
        holder.close()
        thread.join(60)
    assert replies[0].status_code == 200


def test_review_and_batch_tiers_are_refused_at_start(tmp_path: Path) -> None:
    """A request cannot wait for a person or a provider batch: the server will not start."""
    for line, says in (('model = "human"', "human review tier"),
                       ('model = "m"\nmode = "batch"', "batch tiers")):  # fmt: skip
        policy = tmp_path / "p.toml"
        policy.write_text(f'task_type = "x"\n[[tiers]]\nmodel = "cheap"\n[[tiers]]\n{line}\n')
        with pytest.raises(ConfigError, match=says):
            prepare(ServeConfig(policy=str(policy), store=str(tmp_path / "s.db")))


def test_workers_stop_when_the_server_process_is_killed(upstream: Upstream, tmp_path: Path) -> None:
    """A SIGKILL of the command: its worker processes shut down instead of serving on, orphaned."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    args = ["--policy", str(policy), "--store", str(tmp_path / "s.db"), "--workers", "2"]
    with serve_process(args, tmp_path) as running:
        wait_for(lambda: _children(running.process.pid) == 2, timeout_s=60)
        children = _children_pids(running.process.pid)
        running.process.send_signal(signal.SIGKILL)
        running.process.wait(30)
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout_s=30)


def _children_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            worker = b"spawn_main" in (entry / "cmdline").read_bytes()
            if worker and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _children(pid: int) -> int:
    return len(_children_pids(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_a_store_that_fails_is_a_json_500_not_a_traceback(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The served table is gone: the idempotency claim fails, and the client gets OpenAI's shape."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",))
    with served(policy, tmp_path / "s.db") as server:
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute("DROP TABLE served")
        reply = post(server.url, **{"Idempotency-Key": "k"})
    assert reply.status_code == 500
    assert reply.json()["error"]["type"] == "server_error"
    assert "served" in reply.json()["error"]["message"]
    assert upstream.requests == []


def test_a_result_the_store_refused_gives_back_its_hold_and_its_key(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Not stored: what it held back of the budget is free again, and the retry runs."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url, models=("small",),
                         head="[budget]\nmax_cost_per_task_usd = 0.0002\n")  # fmt: skip
    store = tmp_path / "s.db"
    with served(policy, store, budget_usd=0.0002) as server:
        with sqlite3.connect(store) as db:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON results BEGIN "
                       "SELECT RAISE(ABORT, 'disk full, say'); END")  # fmt: skip
        assert post(server.url, **{"Idempotency-Key": "k"}).status_code == 500
        with sqlite3.connect(store) as db:
            [(held,)] = db.execute("SELECT total(reserved_usd) FROM client_reserved")
            db.execute("DROP TRIGGER refuse")
        assert held == 0
        retried = post(server.url, **{"Idempotency-Key": "k"})  # the budget has room: none spent
    assert retried.status_code == 200
    assert len(upstream.requests) == 2
