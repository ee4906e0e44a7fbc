"""The high-volume runner behind ``cascade run``.

- :mod:`cascade.run.job`: the options of a run, one value for every process;
- :mod:`cascade.run.runner`: the coordinator (input into the ledger, results out of it);
- :mod:`cascade.run.worker`: a worker, in this process or another, leasing and running tasks,
  with a worker process's body in :mod:`cascade.run.worker_process`;
- :mod:`cascade.run.guard`: rate limits and circuit breakers shared by the workers, with their
  settings in :mod:`cascade.run.limits`;
- :mod:`cascade.run.ray_pool`, :mod:`cascade.run.ray_hand`, :mod:`cascade.run.ray_guard`: the
  same workers as Ray actors (``--executor ray``);
- the job's budget, shared by the workers (and the audits), is :mod:`cascade.budget`;
- :mod:`cascade.run.progress`: the progress bar or lines;
- :mod:`cascade.run.tasks_file`: the tasks file, streamed;
- :mod:`cascade.run.review`: the human review queue, written and imported;
- :mod:`cascade.run.summary`: what a run did, from its store.
"""
