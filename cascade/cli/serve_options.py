"""``cascade serve``'s options (kept apart from the command, so ``--help`` stays light)."""

from __future__ import annotations

from typing import Any

from cascade.cli.job_options import add_rate_limits

__all__ = ["add_serve"]


def add_serve(commands: Any) -> None:
    """Add ``cascade serve`` to the command line."""
    serve = commands.add_parser(
        "serve",
        help="serve the policies as an OpenAI-compatible endpoint that cascades",
        description="Serve OpenAI's Chat Completions API: a request's model (cascade/<task "
        "type>) picks the policy, its messages are the task, and the answer is the first the "
        "ladder accepts. Point an existing OpenAI client's base_url at it. A streamed answer "
        "is streamed after it was accepted: validators judge whole answers.",
    )
    _add_where(serve)
    _add_who(serve)
    _add_limits(serve)
    _add_running(serve)


def _add_where(serve: Any) -> None:
    """What it serves, where it listens, where it keeps its records."""
    serve.add_argument("--policy", required=True, help="a policy file or a folder of them")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="the port (8000; 0 picks one)")
    serve.add_argument("--store", default="served.db", help="the SQLite store (served.db)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (1)")


def _add_who(serve: Any) -> None:
    """Who gets in, and what they may spend."""
    serve.add_argument("--keys", metavar="FILE", help="client keys, a TOML file of [[keys]]")
    serve.add_argument(
        "--keys-env", metavar="VAR", help="client keys, a JSON list in this environment variable"
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve without client keys on an address other machines can reach",
    )
    serve.add_argument(
        "--budget", type=float, metavar="USD", help="what all clients together may spend, ever"
    )
    add_rate_limits(serve)


def _add_limits(serve: Any) -> None:
    """What one request may carry, and how many a worker holds."""
    serve.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, help="largest request body (1000000)"
    )
    serve.add_argument(
        "--max-messages", type=int, default=256, help="most messages in a request (256)"
    )
    serve.add_argument(
        "--max-tokens", type=int, default=16_384, help="largest max_tokens a request may ask"
    )
    serve.add_argument(
        "--max-concurrency",
        type=int,
        default=1000,
        help="requests and connections a worker holds at once; past it, a 503 (1000)",
    )


def _add_running(serve: Any) -> None:
    """The step log, shutdown, provider trouble, the backend and telemetry."""
    serve.add_argument("--log", help="the step log (default: beside the store)")
    serve.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish (30)",
    )
    serve.add_argument(
        "--max-outage-s",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a request waits out a provider that keeps failing before a 502 (60)",
    )
    serve.add_argument(
        "--backend", metavar="MODULE:FACTORY", help="build the backend with this factory"
    )
    serve.add_argument(
        "--otel",
        nargs="?",
        const="",
        metavar="URL",
        help="export traces and metrics over OTLP/HTTP (needs the otel extra)",
    )
    serve.add_argument(
        "--otel-content", action="store_true", help="also export answers and inputs (redacted)"
    )
