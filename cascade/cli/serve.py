"""``cascade serve``: the policies as an OpenAI-compatible endpoint (see :mod:`cascade.serve`)."""

from __future__ import annotations

import argparse
import os
import sys

from cascade.cli.say import say
from cascade.run.limits import limits_from_flags
from cascade.serve.chat import RequestLimits
from cascade.serve.config import ServeConfig
from cascade.serve.prepared import prepare
from cascade.serve.server import serve

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """Check everything, then serve until SIGTERM or Ctrl-C."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    limits = RequestLimits(args.max_body_bytes, args.max_messages, args.max_tokens)
    config = ServeConfig(
        policy=args.policy,
        store=args.store,
        host=args.host,
        port=args.port,
        workers=args.workers,
        keys_file=args.keys,
        keys_env=args.keys_env,
        allow_unauthenticated=args.allow_unauthenticated,
        request_limits=limits,
        budget_usd=args.budget,
        limits=limits_from_flags(args.rpm, args.tpm),
        log=args.log,
        grace_s=args.grace,
        max_outage_s=args.max_outage_s,
        backend=args.backend,
        otel=args.otel,
        otel_content=args.otel_content,
        max_concurrency=args.max_concurrency,
        settle_heap=bool(getattr(args, "own_process", False)),  # not a caller's of main([...])
    )

    def said(text: str) -> None:
        say(text)
        sys.stdout.flush()  # the address line is read by whoever started the server

    return serve(prepare(config), said)
