"""How ``cascade record`` calls each model: the tier of one policy per model it asks.

A model is called as the user's own policy (``--policy P.toml``) calls it, when a tier of that
policy names it: its parameters (``api_base``, keys, sampling), timeout, retries, price, and
batch settings (``mode = "batch"`` and the rest) are kept, and so are the policy's rate limits
and breaker. What would change the answer or ask another model is left out: re-asks,
fallbacks, hedges, worked examples, validators. A model no tier names is called by its plain
litellm name. Every record tier is ``trusted``: its one answer is the record, judged later
(``cascade bench``, ``cascade optimize``), never here.

A task that came with a ``response_format`` or ``tools`` is asked with them, as the served model
was (unless the tier sets its own): its tasks get a policy of their own per model. A model's
tool calls are recorded as the function-call validator reads them (``[{"name", "arguments"}]``),
as ``cascade import`` records the served model's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from cascade.policy import load_policy
from cascade.secrets import secret_values

__all__ = ["RecordTiers", "record_tiers"]

_KEPT = frozenset(
    {"retries", "timeout_s", "temperature", "max_tokens", "params", "price", "context_window",
     "response_schema", "mode", "batch_size", "batch_wait_s", "batch_deadline_s",
     "batch_discount"}
)  # fmt: skip
"""Tier fields that say how to call the model, not what to do with its answer."""


@dataclass(frozen=True, slots=True)
class RecordTiers:
    """The tier table of each model asked, and the policy settings every record policy shares."""

    tables: Mapping[str, Mapping[str, Any]]
    shared: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    unmatched: tuple[str, ...] = ()
    """Models the source policy has no tier of: called by their plain litellm name."""

    def digest(self) -> str:
        """A hash of every setting, so another ``--policy`` makes another record job."""
        text = json.dumps([self.tables, self.shared], sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def has_secrets(self) -> bool:
        """Whether some tier's ``params`` hold a credential (written into the job's policies)."""
        return any(any(secret_values(t.get("params", {}))) for t in self.tables.values())

    def batch(self, model: str) -> bool:
        """Whether ``model``'s calls go through the batch API."""
        return self.tables[model].get("mode") == "batch"

    def model_row(self, model: str) -> dict[str, Any]:
        """``model``'s ``models.json`` row: the tier's price, else litellm's list price."""
        price = self.tables.get(model, {}).get("price")
        charged = " (batch-API price)" if self.tables.get(model, {}).get("mode") == "batch" else ""
        if price is not None:
            source = f"the tier's price in {self.source}"
            inp, out = price["input_usd_per_mtok"], price["output_usd_per_mtok"]
        else:
            from cascade.traffic.pricing import Pricer  # noqa: PLC0415  # imports litellm

            listed = Pricer().list_price(model)
            source = "litellm's cost map" if listed is not None else "unknown"
            inp = None if listed is None else listed.input_usd_per_mtok
            out = None if listed is None else listed.output_usd_per_mtok
        return {
            "name": model, "input_usd_per_mtok": inp, "output_usd_per_mtok": out,
            "price_source": f"{source}; each response's cost as charged by cascade record"
            f"{charged}",
        }  # fmt: skip

    def policy_text(
        self, task_type: str, model: str, response_format: Any, tools: Any = None
    ) -> str:
        """The TOML of the one-tier policy that asks ``model`` tasks of ``task_type``.

        The tasks' ``response_format`` and ``tools`` are sent as the served model was sent
        them (a tier's own ``response_schema`` or ``tools`` win).
        """
        tier = dict(self.tables[model])
        params = dict(tier.get("params", {}))
        if response_format is not None and "response_schema" not in tier:
            params.setdefault("response_format", response_format)
        if tools is not None:
            params.setdefault("tools", tools)
        if params:
            tier["params"] = params
        where = f" (its tier settings from {self.source})" if self.source else ""
        header = (
            f"# Written by cascade record: asks {model} once per task{where}.\n"
            "# The record job reads it again on a rerun; edit the source policy instead.\n"
        )
        policy = {"task_type": task_type, "prompt": "{input}", **self.shared, "tiers": [tier]}
        return header + tomli_w.dumps(policy)


def record_tiers(models: tuple[str, ...], policy: str | Path | None) -> RecordTiers:
    """The tiers that ask ``models``, as ``policy`` (when given) calls them."""
    if policy is None:
        return RecordTiers({m: _plain(m) for m in models})
    path = Path(policy)
    spec = load_policy(path).spec  # a bad policy fails here, with its file and line
    tables: dict[str, Mapping[str, Any]] = {}
    unmatched = []
    for model in models:
        found = next((t for t in spec.tiers if t.model == model), None)
        if found is None:
            tables[model] = _plain(model)
            unmatched.append(model)
            continue
        table = found.model_dump(include=set(_KEPT), exclude_unset=True, mode="json")
        schema = table.get("response_schema")
        if isinstance(schema, str):  # relative to the policy, which the job's are not beside
            table["response_schema"] = str((path.parent / schema).resolve())
        tables[model] = {**_plain(model), **table}
    shared: dict[str, Any] = {}
    if spec.limits:
        shared["limits"] = {k: v.model_dump(exclude_none=True) for k, v in spec.limits.items()}
    if spec.breaker is not None:
        shared["breaker"] = spec.breaker.model_dump(exclude_unset=True)
    return RecordTiers(tables, shared, path, tuple(unmatched))


def _plain(model: str) -> dict[str, Any]:
    return {"model": model, "trusted": True, "examples": False}
