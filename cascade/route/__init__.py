"""The start-tier router: skip a cheap tier a task will likely fail (``cascade route fit``).

- :mod:`cascade.route.features`: what the router sees of a task;
- :mod:`cascade.route.router`: the :class:`Router`, its file, and fitting it;
- :mod:`cascade.route.learn`: the labels (does each tier pass its gates on a recorded task),
  and the threshold chosen on the training tasks.
"""
