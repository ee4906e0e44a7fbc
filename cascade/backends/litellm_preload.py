"""litellm, imported once in the worker processes' fork server.

:mod:`cascade.run.spawning` has the fork server import this module, so that every worker forked
from it starts with litellm imported instead of importing it on its own.
"""

from cascade.backends.litellm import load_litellm

load_litellm()
