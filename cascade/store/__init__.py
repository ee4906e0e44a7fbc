"""The store: every SQL statement of cascade lives in this package.

- :mod:`cascade.store.db`: :class:`Store`, a run store in one SQLite file (runs, tasks,
  attempts, results, quarantine), and the one path that records an outcome;
- :mod:`cascade.store.schema`: the schema and its migrations;
- :mod:`cascade.store.rows`: how outcomes, steps and tasks become rows and back;
- :mod:`cascade.store.ledger`: the run ledger (ingest, lease, renew, reclaim);
- :mod:`cascade.store.queries`: the named queries the runner, reports, review and export need;
- :mod:`cascade.store.verdicts`: the kept verdicts of sandboxed tests.
"""

from cascade.store.db import SCHEMA_VERSION, Store

__all__ = ["SCHEMA_VERSION", "Store"]
