"""What a provider's batch API is to the batcher: its calls, and what a line of its files means.

See :mod:`cascade.backends.batcher` for how batches are gathered, submitted and followed; a
backend with a batch API has ``batch_api(model)`` returning a :class:`BatchApi`
(:class:`~cascade.backends.litellm.LiteLLMBatches` for litellm).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cascade.errors import BadRequest, BatchUnanswered, RateLimited, ServerError
from cascade.types import Request, Response, Tier

__all__ = ["ENDED", "BatchApi", "BatchView", "Line", "answer_of", "custom_id"]

ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
"""The states a provider batch ends in."""

Line = dict[str, Any]
"""One line of a batch's output or error file."""


@dataclass(frozen=True, slots=True)
class BatchView:
    """What the provider says of one batch."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None = None
    error_file_id: str | None = None


class BatchApi(Protocol):
    """A provider's files and batches endpoints, for the models of one tier.

    Methods raise :class:`~cascade.errors.ProviderError` s, like a backend's ``complete``.
    """

    def line(self, custom_id: str, request: Request) -> Line:
        """The input file's line for ``request``."""
        ...

    def response(self, tier: Tier, request: Request, body: Mapping[str, Any]) -> Response:
        """A completion body of the output file, priced at the batch price."""
        ...

    async def upload(self, tier: Tier, content: bytes) -> str:
        """Upload an input file; its id."""
        ...

    async def create(self, tier: Tier, file_id: str) -> BatchView:
        """Make a batch of an uploaded file: from here, the provider runs and bills it."""
        ...

    async def find(self, tier: Tier, file_id: str) -> BatchView | None:
        """The batch made of ``file_id``, if the provider has one."""
        ...

    async def retrieve(self, tier: Tier, batch_id: str) -> BatchView:
        """The batch's state now."""
        ...

    async def cancel(self, tier: Tier, batch_id: str) -> BatchView:
        """Ask the provider to stop the batch (what it finished is still returned)."""
        ...

    async def content(self, tier: Tier, file_id: str) -> bytes:
        """An output or error file."""
        ...


def custom_id(run_id: str, request: Request) -> str:
    """The id of a request in a batch, the same for the same request of a task in a run.

    So a resumed run finds what it submitted before.
    """
    what = [
        run_id,
        request.task_id,
        request.model,
        request.reask,
        request.sample,
        request.confidence,
        [dict(m) for m in request.messages],
        dict(request.params),
    ]
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
    return f"c-{digest[:32]}"


def answer_of(api: BatchApi, tier: Tier, request: Request, line: Line) -> Response:
    """The call's answer in ``line``, or the error it says."""
    if "unanswered" in line:
        raise BatchUnanswered(str(line["unanswered"]))
    response = line.get("response") or {}
    status = response.get("status_code")
    if status == 200 and isinstance(response.get("body"), Mapping):
        return api.response(tier, request, response["body"])
    body = response.get("body")
    # A body that is not an object (a gateway's "Bad gateway" text, say) is the error said.
    error = line.get("error") or (body.get("error") if isinstance(body, Mapping) else body) or {}
    if not isinstance(error, Mapping):
        error = {"message": str(error)}
    said = ": ".join(str(error[key]) for key in ("code", "message") if error.get(key))
    message = f"batch item {line.get('custom_id')}: {status or 'not run'}: {said or 'no reason'}"
    if not isinstance(status, int):
        raise BatchUnanswered(message)
    if status == 429:
        raise RateLimited(message, None)
    if status >= 500:
        raise ServerError(message)
    raise BadRequest(message)
