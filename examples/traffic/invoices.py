"""A sample of logged extraction traffic, and fake models that answer it, for the walkthrough.

The log (``invoices.jsonl`` beside this file) is what a job that extracts invoice fields from
emails would have logged in a day: one OpenAI chat-completions request/response pair per line,
each request with the same instructions, the email, and a ``response_format`` JSON schema;
each answer from ``gpt-4o-mini``, with its tokens and latency. Some emails were sent twice
(reminders), so some requests repeat. The served answers are right about 97 % of the time: a
real model errs too, and "right" on your own traffic is first "what it answered then".

The emails, vendors and amounts are made up, and the output is the same for the same seed:

    python examples/traffic/invoices.py examples/traffic/invoices.jsonl [--requests 300]

:func:`answer_as` gives what the walkthrough's fake OpenAI-compatible server answers as each
model, deterministically: the served model as it did in the log, and two cheaper models with
their own, typical failures (an amount written the European way, prose around the JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cascade.testing import FakeReply

VENDORS = (
    "Acme GmbH", "Borealis Freight AB", "Cobalt Office Supply", "Dunmore Print Ltd",
    "Elbe Logistik", "Fjord Analytics AS", "Granite Cloud Inc", "Harbor Legal LLP",
    "Iberia Catering SL", "Juniper Facilities", "Kestrel Security Ltd", "Lumen Energy BV",
    "Meridian Travel", "Northwind Traders", "Orchid Design Studio", "Pioneer Telecom",
    "Quarry Stone & Tile", "Riverside Plumbing", "Summit IT Services", "Tessera Translations",
)  # fmt: skip
CURRENCIES = ("EUR", "USD", "GBP")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "invoice": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"enum": list(CURRENCIES)},
        "due": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "required": ["vendor", "invoice", "total", "currency", "due"],
    "additionalProperties": False,
}
INSTRUCTIONS = (
    "Extract the vendor, invoice number, total amount, currency and due date (YYYY-MM-DD) from "
    "the email. Answer with JSON only."
)
TEMPLATES = (
    "Hello,\nplease find attached invoice {invoice} from {vendor}. The amount of {amount} "
    "{currency} is due on {due}.\nKind regards,\nAccounts",
    "Dear customer, {vendor} has issued invoice {invoice} dated {issued}. Total: {amount} "
    "{currency}. Payment due {due}.",
    "Reminder from {vendor}: invoice {invoice} ({amount} {currency}) falls due on {due}. "
    "Issued {issued}.",
    "Hi team - forwarding {vendor}'s invoice {invoice}, issued {issued}, for {amount} "
    "{currency}; they want it paid by {due}. Thanks!",
)
SERVED = "gpt-4o-mini-2024-07-18"


def amount_text(value: float, european: bool) -> str:
    """An amount as an email writes it: ``1,249.00``, or ``1.249,00`` the European way."""
    text = f"{value:,.2f}"
    return text.translate(str.maketrans(",.", ".,")) if european else text


def make_log(requests: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    """The sample log's lines: ``requests`` request/response pairs, about 7 % of them repeats."""
    rng = random.Random(seed)  # noqa: S311  # made-up data, the same for the same seed
    emails: list[tuple[str, dict[str, Any]]] = []
    while len(emails) < requests:
        if emails and rng.random() < 0.07:
            emails.append(rng.choice(emails))  # a reminder: the same email again
            continue
        currency = rng.choice(CURRENCIES)
        total = round(rng.uniform(20, 20_000), 2)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        fields = {
            "vendor": rng.choice(VENDORS),
            "invoice": f"INV-{rng.randint(1000, 99999)}",
            "total": total,
            "currency": currency,
            "due": f"2027-{month:02d}-{day:02d}",
        }
        issued = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        european = currency == "EUR" and rng.random() < 0.5
        text = rng.choice(TEMPLATES).format(
            **fields, amount=amount_text(total, european), issued=issued
        )
        emails.append((text, fields))
    return [_line(text, fields, rng) for text, fields in emails]


def _line(text: str, fields: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    answer = answer_as("gpt-4o-mini")(_body("gpt-4o-mini", text)).content
    usage = {"prompt_tokens": 120 + len(text) // 4, "completion_tokens": 24 + len(answer) // 8}
    return {
        "request": _body("gpt-4o-mini", text),
        "response": {
            "id": f"chatcmpl-{hashlib.sha256(text.encode()).hexdigest()[:12]}",
            "model": SERVED,
            "usage": usage,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
        },
        "latency_ms": round(rng.uniform(600, 1800)),
    }


def _body(model: str, text: str) -> dict[str, Any]:
    return {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": text},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "invoice", "schema": SCHEMA, "strict": True},
        },
    }


def read_invoice(text: str) -> tuple[dict[str, Any], bool, str]:
    """The right fields of an email, as the served model should have read them.

    Also whether its amount is written the European way, and its issue date (``""`` when it
    gives none).
    """
    vendor = next(v for v in VENDORS if v in text)
    found = re.search(r"(INV-\d+)", text)
    amount = re.search(r"([\d.,]+) (EUR|USD|GBP)", text)
    due = re.search(r"(?:due on|due|by) (\d{4}-\d{2}-\d{2})", text)
    issued = re.search(r"(?:dated|[Ii]ssued) (\d{4}-\d{2}-\d{2})", text)
    if found is None or amount is None or due is None:
        raise ValueError(f"not an email of the sample: {text!r}")
    written = amount.group(1)
    european = re.fullmatch(r"[\d.]*,\d\d", written) is not None
    number = written.replace(".", "").replace(",", ".") if european else written.replace(",", "")
    fields = {"vendor": vendor, "invoice": found.group(1), "total": float(number),
              "currency": amount.group(2), "due": due.group(1)}  # fmt: skip
    return fields, european, issued.group(1) if issued else ""


def _chance(model: str, text: str) -> float:
    """A number in [0, 1) fixed by the model and the email: which answers a model gets wrong."""
    digest = hashlib.sha256(f"{model}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answer_as(model: str) -> Callable[[dict[str, Any]], FakeReply]:
    """What a fake OpenAI-compatible server answers as ``model``, from the email asked about.

    ``model`` is the name as the request gives it (the provider prefix dropped).
    """

    def answer(body: dict[str, Any]) -> FakeReply:
        text = next(m["content"] for m in body["messages"] if m["role"] == "user")
        fields, european, issued = read_invoice(text)
        served = model.startswith("gpt-4o-mini")  # its dated name too, as a policy may call it
        luck = _chance("gpt-4o-mini" if served else model, text)
        if served:  # the served model: wrong about 3 % of the time
            if luck < 0.03:
                fields["due"] = issued or fields["due"][:8] + "01"
        elif model == "gpt-4.1-nano":  # cheap; misreads European amounts, as a string
            if european:
                fields["total"] = amount_text(fields["total"], european=True)
            elif luck < 0.03:
                fields["due"] = issued or fields["due"][:8] + "01"
        elif model == "llama-3.1-8b-instant":  # cheapest; often wraps its JSON in prose
            if luck < 0.3:
                return FakeReply(f"Here is the extracted data:\n{json.dumps(fields)}")
            if luck < 0.36:
                fields["invoice"] = fields["invoice"].removeprefix("INV-")
        else:
            return FakeReply(f"no such model: {model}", status=404)
        return FakeReply(json.dumps(fields))

    return answer


def main() -> None:
    """Write the sample log."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    lines = make_log(args.requests, args.seed)
    args.out.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    print(f"wrote {args.out}: {len(lines)} requests")  # noqa: T201  # a script's one line


if __name__ == "__main__":
    main()
