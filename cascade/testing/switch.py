"""Forbid real model requests in a test suite, as pydantic-ai's ``ALLOW_MODEL_REQUESTS`` does.

Put this in your ``conftest.py``, and a test that forgot to pass ``backend=`` fails with
:class:`~cascade.errors.ModelRequestsForbidden` instead of paying for a live call (fake
providers on 127.0.0.1 still answer)::

    @pytest.fixture(autouse=True)
    def _no_model_requests() -> Iterator[None]:
        with no_model_requests():
            yield
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from cascade.backends.allowed import SWITCH

__all__ = ["no_model_requests"]


@contextlib.contextmanager
def no_model_requests() -> Iterator[None]:
    """Switch real model requests off for the block (worker processes it starts included).

    >>> from cascade.backends.allowed import check_allowed
    >>> with no_model_requests():
    ...     check_allowed("openai/gpt-4o-mini", {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    cascade.errors.ModelRequestsForbidden: openai/gpt-4o-mini: real model requests are ...
    >>> check_allowed("openai/gpt-4o-mini", {})  # back on after the block
    """
    before = os.environ.get(SWITCH)
    os.environ[SWITCH] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SWITCH, None)
        else:
            os.environ[SWITCH] = before
