r"""``not_missing(...)``: a field the input plainly holds must not come back empty.

Grounding catches invented values, but not left-out ones: a small model that answers
``"phone": null`` for a text with a phone number in it passes every other check. This validator
takes a regular expression per field; when the input has a match, the answer's field must hold a
value. The reason quotes what was found, so a re-ask can tell the model where to look.

>>> from cascade.types import Attempt, Task, Tier, Usage
>>> check = not_missing({"email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"})
>>> def judge(text, output):
...     task = Task("t", input=text)
...     return check(Attempt(task, 0, Tier("m"), "m", "m", output, Usage(), 0.0, 0.0))
>>> judge("write to ada@example.org", '{"email": null}').reason
"$.email is empty, but the input has 'ada@example.org'"
>>> judge("no address here", '{"email": null}').passed
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cascade.errors import ConfigError
from cascade.types import Attempt, Verdict
from cascade.validators.base import CostClass
from cascade.validators.jsonvalue import extract_json

__all__ = ["not_missing"]


class _NotMissing:
    cost_class = CostClass.FREE

    def __init__(self, patterns: Mapping[str, re.Pattern[str]]) -> None:
        self._patterns = dict(patterns)

    def __repr__(self) -> str:
        return f"not_missing({sorted(self._patterns)})"

    def __call__(self, attempt: Attempt) -> Verdict:
        task = attempt.task
        text = task.input
        if text is None:
            text = "\n".join(m["content"] for m in task.messages or () if m["role"] == "user")
        value, problem = extract_json(attempt.output)
        if problem is not None:
            return Verdict(False, reason=problem, feedback="Answer with one JSON object.")
        if not isinstance(value, dict):
            return Verdict(False, reason="the answer is not a JSON object")
        missing = []
        for field, pattern in self._patterns.items():
            found = pattern.search(text)
            if found is not None and value.get(field) in (None, "", [], {}):
                missing.append(f"$.{field} is empty, but the input has {found.group(0)!r}")
        if missing:
            reason = "; ".join(missing)
            return Verdict(False, reason=reason, feedback=reason + ". Copy it from the text.")
        return Verdict(True)


def not_missing(patterns: Mapping[str, str]) -> _NotMissing:
    """A validator: each field whose pattern matches the input must have a value."""
    if not patterns:
        raise ConfigError("not_missing needs at least one field and its pattern")
    compiled = {}
    for field, pattern in patterns.items():
        try:
            compiled[field] = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"field {field}: bad regular expression {pattern!r}: {exc}") from exc
    return _NotMissing(compiled)
