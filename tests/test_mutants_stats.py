"""A pytest plugin for mutmut's first pass (``[tool.mutmut] pytest_add_cli_args``), and its test.

mutmut first runs the tests once with ``MUTANT_UNDER_TEST=stats``, recording which test reaches
which function. A test that runs ``cascade`` in a subprocess, from a job folder of its own,
hands that variable on, and the child then looks for mutmut's configuration in that folder and
crashes. The child's calls cannot be recorded anyway, so the plugin takes the variable out of
the environment for that pass only: mutmut keeps its own copy in the process, and the
subprocesses run the unmutated code. While a mutant is tested, the variable stays, and
``PYTHONPATH`` leads to mutmut's copy (not to the checkout the editable install names), so a
subprocess runs the mutant too. (Set for mutmut itself, ``PYTHONPATH`` would have it import the
copy before it is mutated, and record nothing.)
"""

from __future__ import annotations

import os

import pytest

_STATS = "stats"


def pytest_configure(config: pytest.Config) -> None:
    """Take mutmut's stats marker out of what subprocesses inherit; lead them to its copy."""
    if os.environ.get("MUTANT_UNDER_TEST") == _STATS:
        del os.environ["MUTANT_UNDER_TEST"]
    copy = str(config.rootpath)
    if copy not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (copy, os.environ.get("PYTHONPATH")) if p
        )


@pytest.mark.parametrize(
    ("before", "after"),
    [("stats", None), ("cascade.retry.x_f__mutmut_1", "cascade.retry.x_f__mutmut_1")],
)
def test_only_the_stats_pass_is_hidden_from_subprocesses(
    monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config, before: str, after: str | None
) -> None:
    """The stats marker is removed; a mutant's name is kept for the subprocesses to run it."""
    monkeypatch.setenv("MUTANT_UNDER_TEST", before)
    monkeypatch.setenv("PYTHONPATH", "")
    pytest_configure(pytestconfig)
    assert os.environ.get("MUTANT_UNDER_TEST") == after
    assert os.environ["PYTHONPATH"] == str(pytestconfig.rootpath)
