"""``cascade serve`` across retries and shutdowns: no second bill, nothing paid for lost."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cascade.store import Store
from cascade.store.served import STALE_S
from cascade.testing import FakeReply
from tests.serving import Served, Upstream, policy_file, serve_process, served, wait_for

ASK = [{"role": "user", "content": "Ada Lovelace wrote the first program."}]
GOOD = {"model": "cascade/contacts", "messages": ASK}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The small model answers prose (rejected), the big one the JSON the policy wants."""
    with Upstream({"small": ["prose"], "big": ['{"name": "Ada"}']}) as up:
        yield up


def post(url: str, body: Any = GOOD, **headers: str) -> httpx.Response:
    """POST a chat completion to the server at ``url``."""
    return httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=60)


def spend(store: Path) -> list[tuple[Any, ...]]:
    """Each client's spend and request count, as the store holds them."""
    with Store(store) as opened:
        return list(opened.select("SELECT client, spent_usd, requests FROM client_spend"))


@pytest.fixture
def server(upstream: Upstream, tmp_path: Path) -> Iterator[Served]:
    """A server of the contacts policy, small then big."""
    with served(policy_file(tmp_path / "p", upstream.fake.base_url), tmp_path / "s.db") as run:
        yield run


def test_a_retried_request_gets_the_stored_reply_without_a_second_bill(
    server: Served, upstream: Upstream
) -> None:
    """The same Idempotency-Key twice: one ladder, one bill, the same completion."""
    first = post(server.url, **{"Idempotency-Key": "job-7-item-1"})
    again = post(server.url, **{"Idempotency-Key": "job-7-item-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-cascade-task-id"] == first.json()["id"]
    assert upstream.asked == {"small": 1, "big": 1}
    [(client, spent, requests)] = spend(server.store)
    assert (client, requests) == ("anonymous", 1)
    assert spent == pytest.approx(float(first.headers["x-cascade-cost-usd"]))
    other = post(server.url, **{"Idempotency-Key": "job-7-item-2"})
    assert other.json()["id"] != first.json()["id"]
    assert upstream.asked == {"small": 2, "big": 2}


def test_a_key_reused_for_another_request_is_a_conflict(server: Served, upstream: Upstream) -> None:
    """The key names one request: another body under it gets 409, and runs nothing."""
    assert post(server.url, **{"Idempotency-Key": "k1"}).status_code == 200
    changed = {**GOOD, "messages": [{"role": "user", "content": "Grace Hopper"}]}
    conflict = post(server.url, changed, **{"Idempotency-Key": "k1"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert upstream.asked == {"small": 1, "big": 1}


def test_a_retry_while_the_first_still_runs_is_told_so(upstream: Upstream, tmp_path: Path) -> None:
    """A client that times out and retries at once does not start a second ladder."""
    upstream.script["big"] = [FakeReply(content='{"name": "Ada"}', delay_s=1.5, model="big")]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    with served(policy, tmp_path / "s.db") as server:
        replies: list[httpx.Response] = []
        first = threading.Thread(
            target=lambda: replies.append(post(server.url, **{"Idempotency-Key": "slow"}))
        )
        first.start()
        wait_for(lambda: upstream.asked.get("big", 0) == 1)
        busy = post(server.url, **{"Idempotency-Key": "slow"})
        first.join()
        assert busy.status_code == 409
        assert "still running" in busy.json()["error"]["message"]
        assert replies[0].status_code == 200
        assert post(server.url, **{"Idempotency-Key": "slow"}).json() == replies[0].json()
    assert upstream.asked == {"small": 1, "big": 1}


def test_a_rejected_ladder_is_replayed_as_the_same_error_and_a_stream_as_a_stream(
    upstream: Upstream, tmp_path: Path
) -> None:
    """What a key got is what its retries get: the 422, or the accepted answer as events."""
    upstream.script["big"] = ["more prose"]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    with served(policy, tmp_path / "s.db") as server:
        first = post(server.url, **{"Idempotency-Key": "bad"})
        again = post(server.url, **{"Idempotency-Key": "bad"})
        assert first.status_code == again.status_code == 422
        assert again.json() == first.json()
        upstream.script["big"] = ['{"name": "Ada"}']
        streamed = {**GOOD, "stream": True}
        one = post(server.url, streamed, **{"Idempotency-Key": "s"})
        two = post(server.url, streamed, **{"Idempotency-Key": "s"})
    assert one.headers["content-type"].startswith("text/event-stream")
    assert two.text == one.text
    assert one.text.endswith("data: [DONE]\n\n")
    assert upstream.asked == {"small": 2, "big": 2}


def _request_in_thread(url: str, replies: list[Any], **headers: str) -> threading.Thread:
    def ask() -> None:
        try:
            replies.append(post(url, **headers))
        except httpx.HTTPError as exc:
            replies.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    return thread


def test_sigterm_lets_a_request_in_flight_finish_and_records_it(
    upstream: Upstream, tmp_path: Path
) -> None:
    """SIGTERM: no new connection is taken, the one in flight gets its answer, exit 0."""
    upstream.script["big"] = [FakeReply(content='{"name": "Ada"}', delay_s=1.5, model="big")]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    args = ["--policy", str(policy), "--store", str(tmp_path / "s.db"), "--grace", "20"]
    with serve_process(args, tmp_path) as running:
        replies: list[Any] = []
        thread = _request_in_thread(running.url, replies)
        wait_for(lambda: upstream.asked.get("big", 0) == 1)
        running.process.send_signal(signal.SIGTERM)
        thread.join(60)
        assert running.process.wait(60) == 0
    assert replies[0].status_code == 200
    assert replies[0].json()["choices"][0]["message"]["content"] == '{"name": "Ada"}'
    with pytest.raises(httpx.ConnectError):
        post(running.url)
    with Store(tmp_path / "s.db") as store:
        assert [row[0] for row in store.select("SELECT status FROM results")] == ["accepted"]
        [(finished,)] = store.select("SELECT finished_at FROM runs")
    assert finished is not None


def test_a_request_cut_off_after_the_grace_is_recorded_with_what_it_paid(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Past --grace the ladder is cut: small's paid call is stored, and a retry runs afresh."""
    upstream.script["big"] = [FakeReply(content='{"name": "Ada"}', delay_s=30, model="big")]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    store = tmp_path / "s.db"
    args = ["--policy", str(policy), "--store", str(store), "--grace", "0.5"]
    with serve_process(args, tmp_path) as running:
        replies: list[Any] = []
        thread = _request_in_thread(running.url, replies, **{"Idempotency-Key": "cut"})
        wait_for(lambda: upstream.asked.get("big", 0) == 1)
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(30) == 0
        thread.join(60)
    assert isinstance(replies[0], httpx.HTTPError) or replies[0].status_code >= 500
    with Store(store) as opened:
        [(task_id, status, reasons, cost)] = opened.select(
            "SELECT task_id, status, reasons, cost_usd FROM results"
        )
        steps = opened.steps(opened.select("SELECT run_id FROM runs").__next__()[0], task_id)
    assert status == "failed"
    assert "cut off" in json.loads(reasons)[0]
    # small's answer, paid; big's call, cut off mid-way and counted as the engine counts a
    # cancelled call (its prompt was sent: it may be billed)
    assert [(step.model_requested, step.decision) for step in steps] == [
        ("openai/small", "escalate"),
        ("openai/big", "cancel"),
    ]
    assert steps[0].cost_usd > 0
    assert cost == pytest.approx(sum(step.cost_usd for step in steps))
    [(_, spent, _)] = spend(store)
    assert spent == pytest.approx(cost)
    upstream.script["big"] = ['{"name": "Ada"}']
    with served(policy, store) as server:  # the key was freed: the retry runs the ladder
        retried = post(server.url, **{"Idempotency-Key": "cut"})
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


def test_two_workers_serve_one_store_and_stop_together(upstream: Upstream, tmp_path: Path) -> None:
    """--workers 2: every request answered, each recorded once in one run; SIGTERM stops both."""
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    args = ["--policy", str(policy), "--store", str(tmp_path / "s.db"), "--workers", "2"]
    with serve_process(args, tmp_path) as running:
        wait_for(lambda: _healthy(running.url), timeout_s=90)
        replies: list[Any] = []
        threads = [_request_in_thread(running.url, replies) for _ in range(12)]
        for thread in threads:
            thread.join(120)
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(60) == 0
    assert [r.status_code for r in replies] == [200] * 12
    with Store(tmp_path / "s.db") as store:
        rows = list(store.select("SELECT run_id, task_id FROM results"))
    assert len(rows) == 12
    assert len({run for run, _ in rows}) == 1
    assert {task for _, task in rows} == {r.json()["id"] for r in replies}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_claim_left_running_by_a_killed_server_is_taken_over_by_the_retry(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A SIGKILL mid-request: its claim is taken over once stale, and the retry runs afresh."""
    upstream.script["big"] = [FakeReply(content='{"name": "Ada"}', delay_s=30, model="big")]
    policy = policy_file(tmp_path / "p", upstream.fake.base_url)
    store = tmp_path / "s.db"
    with serve_process(["--policy", str(policy), "--store", str(store)], tmp_path) as running:
        replies: list[Any] = []
        thread = _request_in_thread(running.url, replies, **{"Idempotency-Key": "crash"})
        wait_for(lambda: upstream.asked.get("big", 0) == 1)
        running.process.kill()
        running.process.wait(30)
        thread.join(60)
    assert isinstance(replies[0], httpx.HTTPError)
    upstream.script["big"] = ['{"name": "Ada"}']
    with served(policy, store) as server:
        # The killed run never said it ended: for all the next run knows, it still runs.
        assert post(server.url, **{"Idempotency-Key": "crash"}).status_code == 409
        with Store(store) as opened, opened.writing() as db:
            db.execute("UPDATE served SET updated_at = updated_at - ?", (STALE_S,))
        retried = post(server.url, **{"Idempotency-Key": "crash"})
        again = post(server.url, **{"Idempotency-Key": "crash"})
    assert retried.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert upstream.asked == {"small": 2, "big": 2}


def test_an_answer_the_store_cannot_take_is_a_500_not_a_200(
    server: Served, upstream: Upstream
) -> None:
    """A result that is not stored is not answered as if it were: a retry would not find it."""
    with Store(server.store) as store, store.writing() as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON results BEGIN "
                   "SELECT RAISE(ABORT, 'disk full, say'); END")  # fmt: skip
    failed = post(server.url, **{"Idempotency-Key": "lost"})
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "store_failed"
    assert "disk full, say" in failed.json()["error"]["message"]
    assert upstream.asked == {"small": 1, "big": 1}  # the calls were made: the log has them
    events = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert any(e.get("event") == "cascade.serve.unstored" for e in events)
    assert sum(e.get("event") == "cascade.step" for e in events) == 2
