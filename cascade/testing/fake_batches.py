"""The fake provider's files and batches endpoints: OpenAI's batch API, scriptable, on loopback.

:class:`FakeBatches` keeps uploaded files and batches in memory. A batch's items are answered
by the fake's own chat handler (one line of the input file is one request), ``complete_after_s``
after the batch was created; until then it is ``in_progress``. An item whose reply is not a 200
goes to the batch's error file, the others to its output file. A batch may be made to expire
(the items not done go to the error file as ``batch_expired``) or be cancelled by the client.
Every request line the fake answered is kept in ``answered``, so tests can count how often the
provider received each ``custom_id``.

It is served by a :class:`~cascade.testing.FakeOpenAI`, which has one by default; pass your own
to set how the batches behave, then point a batch tier at the fake as at any provider::

    batches = FakeBatches(complete_after_s=0.2, expire=False)
    with FakeOpenAI(lambda body: FakeReply(content="ok"), batches=batches) as fake:
        ...  # run a batch tier with params {"api_base": fake.base_url, "api_key": "sk-fake"}
    assert sorted(batches.answered) == [...]  # each item's custom_id, once per time it ran
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeBatches"]

Answer = Callable[[dict[str, Any]], tuple[int, bytes]]
"""A chat request body to (status, response body): the fake's own completions."""


@dataclass(slots=True)
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    created_at: float
    metadata: dict[str, Any]
    due_at: float = 0.0
    status: str = "in_progress"
    output_file_id: str | None = None
    error_file_id: str | None = None
    done: int = 0
    failed: int = 0
    total: int = 0


@dataclass
class FakeBatches:
    """The batch API's state, and how it behaves (see the module's doc)."""

    complete_after_s: float = 0.2
    """Seconds from a batch's creation to its end (read as each batch is made)."""
    expire: bool = False
    """Batches expire when due instead of completing."""
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, _Batch] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    """The ``custom_id`` of every item the provider ran, in order, repeats included."""
    created: list[str] = field(default_factory=list)
    """The input file id of every batch created, in order."""
    on: Callable[[str, str], bool] | None = None
    """Called with a stage and an id as requests come: ``create`` (a file id, before the batch
    is made: returning ``False`` refuses it with a 503), ``created`` (the new batch's id),
    ``retrieve`` (a batch id) and ``content`` (a file id). Tests kill clients from here."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, answer: Answer
    ) -> tuple[int, bytes] | None:
        """Serve ``method path``; ``None`` when it is not a files or batches request."""
        parts = path.split("?", maxsplit=1)[0].rstrip("/").split("/")
        if len(parts) < 3 or parts[2] not in ("files", "batches"):
            return None
        with self._lock:
            if parts[2] == "files":
                return self._files(method, parts[3:], headers, raw)
            return self._batches(method, parts[3:], raw, answer)

    def _files(
        self, method: str, rest: list[str], headers: dict[str, str], raw: bytes
    ) -> tuple[int, bytes]:
        if method == "POST" and not rest:
            content = _multipart_file(headers.get("content-type", ""), raw)
            if content is None:
                return _error(400, "no file in the upload")
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = content
            return 200, _json(_file(file_id, len(content), "batch"))
        if method == "GET" and len(rest) == 2 and rest[1] == "content":
            self._hook("content", rest[0])
            content = self.files.get(rest[0])
            return (200, content) if content is not None else _error(404, f"no file {rest[0]}")
        if method == "GET" and len(rest) == 1 and rest[0] in self.files:
            return 200, _json(_file(rest[0], len(self.files[rest[0]]), "batch"))
        return _error(404, "no such files route")

    def _batches(
        self, method: str, rest: list[str], raw: bytes, answer: Answer
    ) -> tuple[int, bytes]:
        if method == "POST" and not rest:
            body = json.loads(raw or b"{}")
            source = str(body.get("input_file_id", ""))
            if source not in self.files:
                return _error(400, f"no input file {source}")
            if not self._hook("create", source):
                return _error(503, "refused by the test")
            batch = _Batch(f"batch_{next(self._ids)}", source, str(body.get("endpoint", "")),
                           time.time(), dict(body.get("metadata") or {}))  # fmt: skip
            batch.total = len(self.files[source].splitlines())
            batch.due_at = batch.created_at + self.complete_after_s
            self.batches[batch.id] = batch
            self.created.append(source)
            self._hook("created", batch.id)
            return 200, _json(_view(batch))
        if method == "GET" and not rest:
            views = [_view(self._advance(b, answer)) for b in self.batches.values()]
            return 200, _json({"object": "list", "data": views, "has_more": False})
        found = self.batches.get(rest[0]) if rest else None
        if found is None:
            return _error(404, f"no batch {rest[0] if rest else ''}")
        batch = found
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch.status in ("in_progress", "validating"):
                self._finish(batch, answer, "cancelled", "batch_cancelled")
            return 200, _json(_view(batch))
        if method == "GET" and len(rest) == 1:
            self._hook("retrieve", batch.id)
            return 200, _json(_view(self._advance(batch, answer)))
        return _error(404, "no such batches route")

    @property
    def received(self) -> list[str]:
        """The ``custom_id`` of every item of every batch created, repeats included.

        What the provider was asked to run (and bills), whether or not anyone came for results.
        """
        with self._lock:
            files = [self.files[source] for source in self.created]
        return [str(json.loads(line)["custom_id"]) for f in files for line in f.splitlines()]

    def _hook(self, stage: str, name: str) -> bool:
        return self.on is None or self.on(stage, name) is not False

    def _advance(self, batch: _Batch, answer: Answer) -> _Batch:
        """Finish a batch whose time has come."""
        if batch.status == "in_progress" and time.time() >= batch.due_at:
            if self.expire:
                self._finish(batch, answer, "expired", "batch_expired")
            else:
                self._finish(batch, answer, "completed", "")
        return batch

    def _finish(self, batch: _Batch, answer: Answer, status: str, cut: str) -> None:
        """Answer the items (none when ``cut`` says why they were not), write both files."""
        out: list[str] = []
        errors: list[str] = []
        for line in self.files[batch.input_file_id].decode().splitlines():
            item = json.loads(line)
            custom_id = str(item.get("custom_id"))
            if cut:
                errors.append(_line(custom_id, None, {"code": cut, "message": f"{status}"}))
                continue
            self.answered.append(custom_id)
            code, body = answer(dict(item.get("body") or {}))
            payload = json.loads(body) if body.strip().startswith(b"{") else {"raw": body.decode()}
            response = {"status_code": code, "request_id": f"req-{custom_id}", "body": payload}
            (out if code == 200 else errors).append(_line(custom_id, response, None))
        batch.status, batch.done, batch.failed = status, len(out), len(errors)
        if out:
            batch.output_file_id = f"file-{next(self._ids)}"
            self.files[batch.output_file_id] = ("\n".join(out) + "\n").encode()
        if errors:
            batch.error_file_id = f"file-{next(self._ids)}"
            self.files[batch.error_file_id] = ("\n".join(errors) + "\n").encode()


def _line(custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None) -> str:
    return json.dumps({"id": f"item-{custom_id}", "custom_id": custom_id,
                       "response": response, "error": error})  # fmt: skip


def _view(batch: _Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "request_counts": {"total": batch.total, "completed": batch.done, "failed": batch.failed},
        "metadata": batch.metadata,
    }


def _file(file_id: str, size: int, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed"}  # fmt: skip


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, _json({"error": {"message": message, "type": "invalid_request_error"}})


def _multipart_file(content_type: str, raw: bytes) -> bytes | None:
    """The ``file`` part of a multipart upload."""
    marker = "boundary="
    if marker not in content_type:
        return None
    boundary = (
        content_type.split(marker, 1)[1].split(";", maxsplit=1)[0].strip().strip('"').encode()
    )
    for part in raw.split(b"--" + boundary):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return body.removesuffix(b"\r\n")
    return None
