"""Write synthetic contact-extraction tasks and their gold answers, for the local demo.

Each task is a short, realistic text (an email signature, a forwarded mail, a voicemail
transcript, a CRM note, a business card read by OCR, ...) that names one contact. The gold
answer is that contact's name, email, company and phone, with ``null`` for what the text does not
state. The people, companies, addresses and numbers are made up (phone numbers use the 555 range),
and the output is the same for the same seed.

    python examples/make_contacts.py OUT_DIR [--tasks 300] [--seed 7]

writes ``OUT_DIR/contacts.jsonl`` (tasks for ``cascade run``) and ``OUT_DIR/contacts.gold.jsonl``
(``{"id": ..., "answer": {...}}`` lines for ``cascade eval``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FIRST = (
    "Maria", "James", "Aiko", "Oluwaseun", "Priya", "Lars", "Fatima", "Diego", "Chen", "Sofia",
    "Tomasz", "Amara", "Hannah", "Mateo", "Ingrid", "Rahul", "Elena", "Kwame", "Yuki", "Noah",
    "Leila", "Sven", "Camille", "Arjun", "Zanele", "Pavel", "Grace", "Omar", "Lucia", "Henrik",
)  # fmt: skip
LAST = (
    "Gonzalez", "Okafor", "Tanaka", "Lindqvist", "Sharma", "Haddad", "Moreau", "Kowalski",
    "Nguyen", "Fischer", "Mensah", "Rossi", "Petrov", "O'Brien", "Castillo", "Johansson", "Ito",
    "Adeyemi", "Novak", "Bauer", "Silva", "Kaur", "Dubois", "Hansen", "Yilmaz", "Park", "Walsh",
)  # fmt: skip
COMPANIES = (
    ("Northwind Traders", "northwind.io"), ("Bluefin Logistics", "bluefin-logistics.com"),
    ("Acme Robotics", "acmerobotics.co"), ("Helios Solar GmbH", "helios-solar.de"),
    ("Cobalt Health", "cobalthealth.org"), ("Quarry & Vine", "quarryvine.com"),
    ("Lumen Analytics", "lumenanalytics.ai"), ("Redwood Dental Group", "redwooddental.com"),
    ("Tidewater Insurance", "tidewater-ins.com"), ("Kestrel Aerospace", "kestrel.aero"),
    ("Maple Street Bakery", "maplestreetbakery.ca"), ("Orbit Payments", "orbitpay.io"),
    ("Granite Legal LLP", "granitelegal.co.uk"), ("Sable Fashion House", "sable.fashion"),
    ("Pinecrest Schools", "pinecrest.edu"), ("Vega Biotech", "vegabio.com"),
)  # fmt: skip
TITLES = (
    "Procurement Manager", "Head of Finance", "Account Executive", "Operations Lead",
    "Office Manager", "CTO", "Partnerships Director", "Senior Buyer", "Practice Manager",
)  # fmt: skip
PHONES = ("+1 415 555 {a:04d}", "(212) 555-{a:04d}", "+44 20 7946 {b:04d}", "+1-646-555-{a:04d}")


@dataclass(frozen=True)
class Person:
    """One made-up contact."""

    name: str
    email: str
    company: str
    phone: str
    title: str
    first: str


def _person(rng: random.Random) -> Person:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company, domain = rng.choice(COMPANIES)
    local = rng.choice(
        (f"{first}.{last}", f"{first[0]}{last}", first, f"{first}_{last[0]}")
    ).lower()
    local = local.replace("'", "")
    phone = rng.choice(PHONES).format(a=rng.randrange(100, 199), b=rng.randrange(0, 999))
    return Person(f"{first} {last}", f"{local}@{domain}", company, phone, rng.choice(TITLES), first)


Template = Callable[[Person, random.Random], tuple[str, dict[str, str | None]]]


def _signature(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    opener = rng.choice(("Thanks for the quick turnaround.", "See attached the signed PO."))
    text = f"{opener}\n\nBest regards,\n{p.name}\n{p.title}, {p.company}\n{p.email} | {p.phone}"
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": p.phone}


def _intro(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    topic = rng.choice(("the Q3 renewal", "the pilot invoice", "next year's volumes"))
    text = f"Please loop in {p.name} from {p.company} ({p.email}) about {topic}."
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": None}


def _voicemail(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    text = (
        f"Voicemail, {rng.randrange(8, 18)}:{rng.randrange(10, 59)}: Hi, this is {p.name} with"
        f" {p.company}. Could you call me back on {p.phone}? Thanks."
    )
    return text, {"name": p.name, "email": None, "company": p.company, "phone": p.phone}


def _forwarded(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    text = (
        f"---------- Forwarded message ----------\nFrom: {p.name} <{p.email}>\n"
        f"Subject: Invoice INV-{rng.randrange(1000, 9999)}\n\n"
        f"Hello, I look after accounts payable at {p.company}. The invoice total does not match"
        f" our PO. You can reach me at {p.phone}."
    )
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": p.phone}


def _crm(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    day = rng.choice(("Monday", "Tuesday", "Thursday"))
    text = f"CRM note: call with {p.name} ({p.company}) on {day}. Follow up by email: {p.email}."
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": None}


def _card(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    del rng
    text = f"[business card, OCR]\n{p.name}\n{p.title}\n{p.company}\nT: {p.phone}\nE: {p.email}"
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": p.phone}


def _shared_inbox(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    domain = p.email.split("@")[1]
    inbox = rng.choice(("info", "sales", "support"))
    text = (
        f"Hi, {p.name} here, from {p.company}. Please reply to me at {p.email}, not to the shared"
        f" {inbox}@{domain} inbox."
    )
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": None}


def _registration(p: Person, rng: random.Random) -> tuple[str, dict[str, str | None]]:
    del rng
    text = f"Event registration: attendee={p.name}; organisation={p.company}; email={p.email}"
    return text, {"name": p.name, "email": p.email, "company": p.company, "phone": None}


TEMPLATES: tuple[Template, ...] = (
    _signature, _intro, _voicemail, _forwarded, _crm, _card, _shared_inbox, _registration,
)  # fmt: skip


def make(count: int, seed: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``count`` tasks and their gold answers, the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311  # made-up data, not secrets
    tasks: list[dict[str, object]] = []
    gold: list[dict[str, object]] = []
    for number in range(1, count + 1):
        template = TEMPLATES[(number - 1) % len(TEMPLATES)]
        text, answer = template(_person(rng), rng)
        task_id = f"contact-{number:04d}"
        tasks.append({"id": task_id, "type": "contact", "input": text,
                      "meta": {"template": template.__name__.strip("_")}})  # fmt: skip
        gold.append({"id": task_id, "answer": answer})
    return tasks, gold


def main() -> None:
    """Write the two files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tasks, gold = make(args.tasks, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("contacts.jsonl", tasks), ("contacts.gold.jsonl", gold)):
        with (args.out_dir / name).open("w", encoding="utf-8") as file:
            file.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"wrote {len(tasks)} tasks to {args.out_dir / 'contacts.jsonl'}")  # noqa: T201


if __name__ == "__main__":
    main()
