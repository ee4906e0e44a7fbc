"""``cascade serve``: an OpenAI-compatible endpoint whose every answer went up a ladder.

An existing job that calls OpenAI's Chat Completions API switches by changing its base URL.
:mod:`~cascade.serve.chat` reads a request, :mod:`~cascade.serve.ladders` picks its cascade,
:mod:`~cascade.serve.service` runs it with the same engine and records as ``cascade run``,
:mod:`~cascade.serve.replies` answers, :mod:`~cascade.serve.app` speaks HTTP (Starlette) and
:mod:`~cascade.serve.server` binds and runs the worker processes (uvicorn).
"""
