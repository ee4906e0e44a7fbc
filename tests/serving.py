"""A ``cascade serve`` for tests, in front of a fake provider: both real HTTP servers on loopback.

:func:`served` runs the server in a thread of the test process (uvicorn, the real app, the real
litellm backend); :func:`serve_process` runs the ``cascade serve`` command in a process of its
own, for what only a process can show (signals, worker processes).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cascade.serve.config import ServeConfig
from cascade.serve.prepared import Prepared, prepare
from cascade.serve.server import bind, uvicorn_server
from cascade.testing import FakeOpenAI, FakeReply

__all__ = ["SECRET", "Served", "Upstream", "policy_file", "serve_process", "served"]

SECRET = "sk-upstream-secret-0123456789abcdef"
"""The provider key every test policy holds: it must never reach a client or a log."""

CONTACT_SCHEMA = '{ type = "object", required = ["name"] }'


class Upstream:
    """A fake provider whose answers are scripted per model; a script's last answer repeats."""

    def __init__(self, script: Mapping[str, Sequence[str | FakeReply]]) -> None:
        self.script = {model: list(replies) for model, replies in script.items()}
        self.asked: dict[str, int] = {}
        self._lock = threading.Lock()
        self.fake = FakeOpenAI(self._answer)

    def _answer(self, body: dict[str, Any]) -> FakeReply:
        model = str(body.get("model"))
        with self._lock:
            count = self.asked[model] = self.asked.get(model, 0) + 1
        replies = self.script.get(model) or ["ok"]
        reply = replies[min(count, len(replies)) - 1]
        return reply if isinstance(reply, FakeReply) else FakeReply(content=reply, model=model)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body the provider received."""
        return self.fake.requests

    def __enter__(self) -> Upstream:
        self.fake.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.stop()


def policy_file(
    folder: Path,
    base_url: str,
    *,
    task_type: str = "contacts",
    models: Sequence[str] = ("small", "big"),
    validators: str = f'[[validators]]\nkind = "json_schema"\nschema = {CONTACT_SCHEMA}\n',
    head: str = "",
    tier: str = "",
    params: str = "",
) -> Path:
    """Write a policy whose tiers ask ``models`` of the fake provider at ``base_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    tiers = "".join(
        f'[[tiers]]\nmodel = "openai/{model}"\n'
        f"price = {{ input_usd_per_mtok = {1 + 9 * i}, output_usd_per_mtok = {2 + 18 * i} }}\n"
        f'params = {{ api_base = "{base_url}", api_key = "{SECRET}"{params} }}\n'
        f"retries = 0\n{tier}\n"
        for i, model in enumerate(models)
    )
    path = folder / f"{task_type}.toml"
    path.write_text(f'task_type = "{task_type}"\n{head}\n{tiers}{validators}')
    return path


@dataclass
class Served:
    """A running server: its base URL (ending in ``/v1``), its store and what it shares."""

    url: str
    store: Path
    prepared: Prepared
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.prepared.config.log_path


@contextlib.contextmanager
def served(policy: Path, store: Path, **options: Any) -> Iterator[Served]:
    """Serve ``policy`` from a thread of this process until the block ends."""
    prepared = prepare(ServeConfig(policy=str(policy), store=str(store), port=0, **options))
    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(prepared)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the server stopped as it started"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", store, prepared)
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


@dataclass
class Process:
    """A ``cascade serve`` process and the base URL it printed."""

    process: subprocess.Popen[str]
    url: str
    output: IO[str]


@contextlib.contextmanager
def serve_process(args: Sequence[str], cwd: Path) -> Iterator[Process]:
    """Run ``cascade serve ARGS --port 0`` until the block ends (then kill what is left)."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = subprocess.Popen(  # noqa: S603  # our own command
        [sys.executable, "-m", "cascade.cli", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    try:
        assert process.stdout is not None  # asked for
        line = process.stdout.readline()
        assert line.startswith("cascade serve: http://"), line
        yield Process(process, line.split()[2], process.stdout)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
