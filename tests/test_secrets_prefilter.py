"""The redactor skips strings that cannot hold a secret, and redacts exactly what a full scan would.

``SecretRedactor.text`` scans a string with its pattern only when the string holds a text some
secret's shape needs (``sk-``, ``://``, ``bearer``...). These tests compare it with a full scan
of every string, on strings built from every shape, in every case, next to look-alikes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cascade.secrets import REDACTED, SecretRedactor, _redact_match

ENV = {"SERVICE_TOKEN": "tok-in-the-environment-42", "OTHER_KEY": "plainsecretvalue"}

PIECES = [
    "sk-abcdefghijklmnop", "rk-ABCDEFGHIJKLMN12", "pk-0123456789abcd", "Sk-abcdefghijklmnop",
    "AKIAABCDEFGHIJKLMNOP", "akiaabcdefghijklmnop", "ghp_abcdefghijklmnopqrstuv",
    "gho_ABCDEFGHIJKLMNOPQRST", "ghu_", "ghs_", "ghr_", "xoxb-1234567890ab", "xoxp-",
    "Authorization: ", "AUTHORIZATION=", "proxy-authorization:", "author\u0131zation: ",
    "AUTHORİZATION: ", "x-api-key: ", "X-API-KEY=", "api-\u212aey: ", "Bearer ",
    "BEARER ", "bearer\t", "abcdefgh12345678", "https://", "user:pw@host", "://u:p@",
    "tok-in-the-environment-42", "plainsecretvalue", "plainsecret", " ", "'", '"', ",", "}",
    "{", ":", "=", "@", "/", "\n", "é", "\u0131", "x", "extract the contact", "sk", "-",
]  # fmt: skip


def full_scan(redactor: SecretRedactor, value: str) -> str:
    """What the redactor's pattern does to ``value`` when every string is scanned."""
    return redactor._pattern.sub(_redact_match, value) if len(value) >= 8 else value


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=12).map("".join))
def test_the_redactor_redacts_what_a_full_scan_redacts(value: str) -> None:
    """Skipped or scanned, every string comes out as the full scan leaves it."""
    redactor = SecretRedactor(ENV)
    assert redactor.text(value) == full_scan(redactor, value)


def test_each_shape_is_found_in_text_that_holds_nothing_else() -> None:
    """One string per shape, each alone among harmless words, is redacted (not skipped)."""
    redactor = SecretRedactor(ENV, extra=["given-secret-value"])
    shapes = [
        "sk-abcdefghijklmnop", "rk-abcdefghijklmnop", "pk-abcdefghijklmnop",
        "AKIAABCDEFGHIJKLMNOP", "ghp_abcdefghijklmnopqrstuv", "gho_abcdefghijklmnopqrstuv",
        "ghu_abcdefghijklmnopqrstuv", "ghs_abcdefghijklmnopqrstuv", "ghr_abcdefghijklmnopqrstuv",
        "xoxb-1234567890ab", "Authorization: s3cr3tvalue", "AUTHORIZATION=s3cr3tvalue",
        "x-api-key: s3cr3tvalue", "Api-Key=s3cr3tvalue", "BEARER abcdefghijkl",
        "https://me:s3cr3t@gateway.example/v1", "tok-in-the-environment-42", "plainsecretvalue",
        "given-secret-value", "author\u0131zation: s3cr3tvalue",
    ]  # fmt: skip
    for shape in shapes:
        cleaned = redactor.text(f"the answer was {shape} today")
        assert REDACTED in cleaned, shape
        assert "s3cr3t" not in cleaned, cleaned
        assert "abcdefghijkl" not in cleaned, cleaned


def test_text_with_no_secret_comes_back_as_it_was() -> None:
    """An answer with none of the marks is returned as it is, unscanned."""
    redactor = SecretRedactor(ENV)
    answer = '{"name": "Ada Lovelace", "email": "ada@example.org", "note": "task-1234 keys"}'
    assert redactor.text(answer) is answer
