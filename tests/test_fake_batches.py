"""The fake provider's batch API, driven through litellm's own batch calls on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cascade.testing import FakeBatches, FakeOpenAI, FakeReply

# litellm's files and batches calls make an OpenAI client per call and never close it, so its
# sockets are found open when the event loop ends: the client side runs in a process of its own.
CLIENT = """
import asyncio, json, sys
import litellm

async def go(url, content, cancel, listing):
    where = {"custom_llm_provider": "openai", "api_base": url, "api_key": "sk-fake"}
    if listing:
        found = await litellm.alist_batches(**where)
        return [[b.input_file_id, b.status] for b in found.data]
    upload = await litellm.acreate_file(file=("in.jsonl", content), purpose="batch", **where)
    batch = await litellm.acreate_batch(completion_window="24h", input_file_id=upload.id,
                                        endpoint="/v1/chat/completions", **where)
    seen = [batch.status]
    if cancel:
        batch = await litellm.acancel_batch(batch_id=batch.id, **where)
    while batch.status in ("validating", "in_progress"):
        await asyncio.sleep(0.05)
        batch = await litellm.aretrieve_batch(batch_id=batch.id, **where)
    seen.append(batch.status)
    files = {}
    for name in ("output_file_id", "error_file_id"):
        file_id = getattr(batch, name)
        if file_id:
            got = await litellm.afile_content(file_id=file_id, **where)
            files[name] = [json.loads(x) for x in got.content.decode().splitlines()]
    return {"seen": seen, "files": files}

url, cancel, listing = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
print(json.dumps(asyncio.run(go(url, sys.stdin.buffer.read(), cancel, listing))))
"""


def client(server: FakeOpenAI, content: bytes = b"", *, cancel: bool = False,
           listing: bool = False) -> Any:  # fmt: skip
    """Run the client side through litellm in a process of its own; what it printed."""
    done = subprocess.run(  # noqa: S603  # our own script
        [sys.executable, "-c", CLIENT, server.base_url, str(int(cancel)), str(int(listing))],
        input=content, capture_output=True, timeout=120, check=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )  # fmt: skip
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def reply(body: dict[str, Any]) -> FakeReply:
    """'ok' to most; a 500 to requests that say 'bad'."""
    text = str(body["messages"][0]["content"])
    return FakeReply("ok", status=500 if "bad" in text else 200)


def lines(*contents: str) -> bytes:
    """A batch input file: one chat request per content, ``custom_id`` c0, c1, ..."""
    rows = [
        {"custom_id": f"c{n}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}}
        for n, text in enumerate(contents)
    ]  # fmt: skip
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """The fake provider with batches due 0.2 s after they are created."""
    with FakeOpenAI(reply, batches=FakeBatches(complete_after_s=0.2)) as fake:
        yield fake


def test_a_batch_runs_each_item_once_and_splits_failures(server: FakeOpenAI) -> None:
    """In progress until due; then each item once, answers in the output file, 500s apart."""
    found = client(server, lines("say a", "bad one", "say c"))
    assert found["seen"] == ["in_progress", "completed"]
    out = {r["custom_id"]: r["response"] for r in found["files"]["output_file_id"]}
    assert sorted(out) == ["c0", "c2"]
    assert out["c0"]["body"]["choices"][0]["message"]["content"] == "ok"
    (error,) = found["files"]["error_file_id"]
    assert error["custom_id"] == "c1"
    assert error["response"]["status_code"] == 500
    assert server.batches.answered == ["c0", "c1", "c2"]


def test_an_expired_batch_answers_nothing(server: FakeOpenAI) -> None:
    """An expiring batch puts every item in its error file as batch_expired."""
    server.batches.expire = True
    found = client(server, lines("say a", "say b"))
    assert found["seen"][-1] == "expired"
    assert [e["error"]["code"] for e in found["files"]["error_file_id"]] == ["batch_expired"] * 2
    assert server.batches.answered == []


def test_a_cancelled_batch_answers_nothing(server: FakeOpenAI) -> None:
    """Cancelled before it is due: no item is run, each is named in the error file."""
    found = client(server, lines("say a"), cancel=True)
    assert found["seen"] == ["in_progress", "cancelled"]
    assert found["files"]["error_file_id"][0]["error"]["code"] == "batch_cancelled"
    assert server.batches.answered == []


def test_batches_are_listed_with_their_input_file(server: FakeOpenAI) -> None:
    """GET /v1/batches lists every batch (how a resumed run finds one it created)."""
    client(server, lines("say a"))
    assert client(server, listing=True) == [["file-1", "completed"]]
    assert server.batches.created == ["file-1"]
