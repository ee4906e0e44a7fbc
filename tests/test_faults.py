"""Provider faults through a whole run: a real OpenAI-compatible server on 127.0.0.1 per provider.

Each case runs 40 tasks through ``cascade run``'s runner with the litellm backend. The tier's
primary model is served by one fake server and its fallback by another, each scripted per
request. Every task must end with exactly one result, accepted or with a definite status and
reason, and breakers must open (and close again once the primary recovers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import gc
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cascade import Store
from cascade.backends import LiteLLMBackend, Request, Response
from cascade.policy import load_policies
from cascade.run.job import Job
from cascade.run.runner import Runner
from cascade.run.tasks_file import read_lines
from cascade.steplog import StepLog
from cascade.testing import FakeOpenAI, FakeReply
from cascade.types import Price

PRIMARY, BACKUP = "openai/primary-model", "openai/backup-model"
PRICE = Price(1.0, 2.0)
TASKS = 40


class Script:
    """A server's script: the n-th request (from 1) gets ``reply(n)``; arrival times are kept."""

    def __init__(self, reply: Callable[[int], FakeReply]) -> None:
        self._reply = reply
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self.times: list[float] = []

    def __call__(self, _body: dict[str, Any]) -> FakeReply:
        """The reply to the next request."""
        with self._lock:
            number = next(self._count)
            self.times.append(time.monotonic())
        return self._reply(number)


def ok(delay_s: float = 0.0) -> Callable[[int], FakeReply]:
    """Always answer "ok" after ``delay_s``."""
    return lambda _n: FakeReply("ok", delay_s=delay_s)


def failing(first: int, fault: FakeReply) -> Callable[[int], FakeReply]:
    """Answer ``fault`` to the first ``first`` requests, then "ok"."""
    return lambda n: fault if n <= first else FakeReply("ok")


class Routed:
    """The litellm backend, sending each model to its own server (switchable mid-run)."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes
        self._inner = LiteLLMBackend(api_key="sk-fake-key-for-tests")

    async def complete(self, request: Request) -> Response:
        """Complete through litellm at the model's current server."""
        params = {**request.params, "api_base": self.routes[request.model]}
        return await self._inner.complete(dataclasses.replace(request, params=params))


@dataclass
class Case:
    """What a run through faults left behind."""

    results: list[dict[str, Any]]
    events: list[dict[str, Any]]
    seconds: float
    stored: int
    integrity: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)

    def statuses(self) -> dict[str, int]:
        """How many results ended in each status."""
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result["status"]] = counts.get(result["status"], 0) + 1
        return counts


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


POLICY = """\
task_type = "echo"
[[tiers]]
model = "{primary}"
fallbacks = ["{backup}"]
retries = 1
timeout_s = {timeout}
price = {{ input_usd_per_mtok = 1.0, output_usd_per_mtok = 2.0 }}
[[validators]]
kind = "one_of"
labels = ["ok"]
[breaker]
failures = 3
cooldown_s = 0.3
"""


def run_case(
    tmp_path: Path,
    routes: dict[str, str],
    *,
    timeout_s: float = 5.0,
    max_outage_s: float = 600.0,
    while_running: Callable[[Routed], None] | None = None,
) -> Case:
    """Run the tasks through the runner in this process and collect what it left."""
    (tmp_path / "p.toml").write_text(
        POLICY.format(primary=PRIMARY, backup=BACKUP, timeout=timeout_s)
    )
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(json.dumps({"id": f"t{n}", "input": f"say ok {n}"}) + "\n" for n in range(TASKS))
    )
    backend = Routed(routes)
    policies = load_policies(tmp_path / "p.toml")
    start = time.monotonic()
    with (
        Store(tmp_path / "run.db") as store,
        (tmp_path / "out.jsonl").open("w") as out,
        (tmp_path / "bad.jsonl").open("w") as bad,
        (tmp_path / "steps.jsonl").open("w") as steps,
    ):
        job = Job(
            str(tasks),
            str(tmp_path / "p.toml"),
            concurrency=4,
            workers=1,
            max_outage_s=max_outage_s,
        )
        runner = Runner(job, policies, store, backend=backend, log=StepLog(steps))

        async def go() -> None:
            if while_running is not None:
                asyncio.get_running_loop().call_later(0.5, while_running, backend)
            await runner.run(read_lines(tasks), out, bad)

        asyncio.run(go())
        stored, integrity = store.count("results"), store.integrity_check()
    seconds = time.monotonic() - start
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    changes = [
        (e["model"], e["before"], e["after"]) for e in events if e["event"] == "cascade.breaker"
    ]
    return Case(results, events, seconds, stored, integrity, changes)


@pytest.fixture
def servers() -> Iterator[Callable[[Script, Script], tuple[str, str]]]:
    """Start a primary and a backup server with the scripts given; stop them afterwards."""
    started: list[FakeOpenAI] = []

    def start(primary: Script, backup: Script) -> tuple[str, str]:
        urls = []
        for script in (primary, backup):
            server = FakeOpenAI(script)
            started.append(server)
            urls.append(server.start())
        return urls[0], urls[1]

    yield start
    for server in started:
        server.stop()


def _nothing_lost(case: Case) -> None:
    ids = [r["id"] for r in case.results]
    assert sorted(ids) == sorted(f"t{n}" for n in range(TASKS))
    assert case.stored == TASKS
    assert case.integrity == "ok"
    for result in case.results:
        assert result["status"] == "accepted" or result["reasons"], result


def _opened_and_closed(case: Case) -> None:
    primary = [change[1:] for change in case.changes if change[0] == PRIMARY]
    assert primary[0] == ("closed", "open")
    assert ("half_open", "closed") in primary
    assert primary[-1] == ("half_open", "closed")


@pytest.mark.parametrize(
    "retry_after",
    [
        pytest.param(lambda: "1", id="seconds"),
        pytest.param(lambda: email.utils.formatdate(time.time() + 2, usegmt=True), id="http-date"),
    ],
)
def test_a_429_pauses_every_task_for_retry_after(
    tmp_path: Path, servers: Any, retry_after: Callable[[], str]
) -> None:
    """429 with Retry-After (seconds or an HTTP date): all tasks wait it out, then succeed."""

    def reply(n: int) -> FakeReply:
        if n == 1:
            return FakeReply(status=429, headers={"Retry-After": retry_after()})
        return FakeReply("ok")

    primary, backup = Script(reply), Script(ok())
    urls = servers(primary, backup)
    case = run_case(tmp_path, {PRIMARY: urls[0], BACKUP: urls[1]})
    _nothing_lost(case)
    assert case.statuses() == {"accepted": TASKS}
    assert backup.times == []  # a short pause is waited out, not sent to the fallback
    # The requests already in flight with the first arrive at once; none is sent in the pause.
    first = primary.times[0]
    later = [t for t in primary.times if t > first + 0.1]
    assert min(later) - first >= 0.9, "no request reached the provider during the pause"
    assert case.changes == []  # rate limiting is not a failure of the provider


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(FakeReply(status=500), id="500"),
        pytest.param(FakeReply(status=503), id="503"),
        pytest.param(FakeReply(body=b'{"choices": [tru'), id="malformed-json"),
        pytest.param(FakeReply("ok", truncate=True), id="truncated-body"),
        pytest.param(FakeReply("ok", delay_s=2.0), id="read-timeout"),
    ],
)
def test_a_burst_of_faults_opens_the_breaker_and_recovery_closes_it(
    tmp_path: Path, servers: Any, fault: FakeReply
) -> None:
    """Faults on the primary go to the fallback; the breaker opens, probes, and closes."""
    primary, backup = Script(failing(6, fault)), Script(ok(delay_s=0.1))
    urls = servers(primary, backup)
    case = run_case(tmp_path, {PRIMARY: urls[0], BACKUP: urls[1]}, timeout_s=0.5)
    _nothing_lost(case)
    assert case.statuses() == {"accepted": TASKS}
    _opened_and_closed(case)
    assert len(backup.times) >= 3
    served = {r["model"] for r in case.results}  # as the servers named themselves
    assert served == {"primary-model", "backup-model"}


def test_connection_refused_then_the_provider_comes_back(tmp_path: Path, servers: Any) -> None:
    """Refused connections open the breaker; once the provider is back a probe closes it."""
    primary, backup = Script(ok()), Script(ok(delay_s=0.1))
    urls = servers(primary, backup)

    def revive(backend: Routed) -> None:
        backend.routes[PRIMARY] = urls[0]

    case = run_case(tmp_path, {PRIMARY: _refused_url(), BACKUP: urls[1]}, while_running=revive)
    _nothing_lost(case)
    assert case.statuses() == {"accepted": TASKS}
    _opened_and_closed(case)
    assert primary.times, "the revived provider was probed"


def test_a_provider_down_for_good_sends_everything_to_its_fallback(
    tmp_path: Path, servers: Any
) -> None:
    """A primary that only answers 503 stays open (failed probes reopen it); all via fallback."""
    primary, backup = Script(lambda _n: FakeReply(status=503)), Script(ok(delay_s=0.1))
    urls = servers(primary, backup)
    case = run_case(tmp_path, {PRIMARY: urls[0], BACKUP: urls[1]})
    _nothing_lost(case)
    assert case.statuses() == {"accepted": TASKS}
    assert {r["model"] for r in case.results} == {"backup-model"}
    changes = [change[1:] for change in case.changes if change[0] == PRIMARY]
    assert changes[0] == ("closed", "open")
    assert ("half_open", "open") in changes
    assert len(primary.times) < TASKS  # the open breaker spared the dead provider


def test_everything_down_ends_every_task_failed_with_its_reason(tmp_path: Path) -> None:
    """With no provider up, each task waits out the outage bound, then fails, saying why."""
    case = run_case(tmp_path, {PRIMARY: _refused_url(), BACKUP: _refused_url()}, max_outage_s=0.3)
    _nothing_lost(case)
    assert case.statuses() == {"failed": TASKS}
    for result in case.results:
        assert "provider unavailable since" in result["reasons"][0], result
    reasons = " ".join(" ".join(r["reasons"]) for r in case.results)
    assert "ServerError" in reasons or "circuit breaker is open" in reasons
    assert (PRIMARY, "closed", "open") in case.changes
    assert (BACKUP, "closed", "open") in case.changes
    assert case.seconds < 30


def test_a_call_cancelled_while_litellm_builds_it_leaves_no_coroutine_behind() -> None:
    """Cancelled in litellm's worker thread, a call is stopped after it, not leaked unawaited."""
    server = FakeOpenAI(Script(ok()))
    url = server.start()
    backend = LiteLLMBackend(api_base=url, api_key="sk-fake-key-for-tests")
    request = Request(PRIMARY, ({"role": "user", "content": "say ok"},), price=PRICE)

    async def cancel_at_once() -> None:
        await backend.ready(PRIMARY)
        for _ in range(20):
            call = asyncio.ensure_future(backend.complete(request))
            await asyncio.sleep(0)  # the call is in litellm's worker thread now
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

    try:
        asyncio.run(cancel_at_once())
    finally:
        server.stop()
    gc.collect()  # an unawaited coroutine warns as it is collected: an error here
