"""``openai-batch``: a Batch API job's input file, output file and error file, paired up.

The input file's lines are ``{"custom_id", "method", "url", "body"}`` with a chat-completions
``body``; the output file's are ``{"custom_id", "response": {"status_code", "body"}, "error"}``
and the error file's the same for failed requests. The files may be given in any order: each
is recognised by its lines. Requests are paired with answers by ``custom_id``; a request with
no answer, an answer with no request and a failed request are quarantined. Calls are priced at
litellm's batch rate where the log has no cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cascade.traffic.collect import Collector, read_lines
from cascade.traffic.exchange import Malformed, from_openai

__all__ = ["read_openai_batch"]

_Where = tuple[str, int, str]
"""A line's file name, number and text."""


def read_openai_batch(paths: list[Path], into: Collector) -> None:
    """Pair every file's requests and answers by ``custom_id`` into ``into``."""
    requests: dict[str, tuple[Any, _Where]] = {}
    answers: dict[str, tuple[Any, _Where]] = {}
    for path in paths:
        for line_no, text in read_lines(path):
            where = (path.name, line_no, text)
            try:
                line = json.loads(text)
                if not isinstance(line, Mapping) or not isinstance(line.get("custom_id"), str):
                    raise Malformed("the line has no custom_id")
                if "body" in line and "response" not in line:
                    side = requests
                elif "response" in line or "error" in line:
                    side = answers
                else:
                    raise Malformed("the line is neither a request (body) nor an answer (response)")
                if line["custom_id"] in side:
                    raise Malformed(f"custom_id {line['custom_id']!r} was seen before")
                side[line["custom_id"]] = (line, where)
            except (ValueError, RecursionError) as exc:
                reason = str(exc) if isinstance(exc, Malformed) else f"not JSON: {exc}"
                into.quarantine(path.name, line_no, reason, text)
    for custom_id, (request, where) in requests.items():
        answer = answers.pop(custom_id, None)
        try:
            if answer is None:
                raise Malformed(f"no answer for custom_id {custom_id!r} in the files given")
            into.add(from_openai(request.get("body"), _body(answer[0]), batch=True))
        except Malformed as exc:
            into.quarantine(where[0], where[1], str(exc), where[2])
    for custom_id, (_, where) in answers.items():
        into.quarantine(where[0], where[1], f"no request for custom_id {custom_id!r}", where[2])


def _body(answer: Mapping[str, Any]) -> Any:
    response = answer.get("response")
    if answer.get("error") and not response:
        raise Malformed(f"the request failed: {json.dumps(answer['error'])[:300]}")
    if not isinstance(response, Mapping):
        raise Malformed("the answer has no response")
    status = response.get("status_code")
    if isinstance(status, int) and status != 200:  # HTTP OK
        raise Malformed(f"the request failed with status {status}: "
                        f"{json.dumps(response.get('body'))[:300]}")  # fmt: skip
    return response.get("body")
