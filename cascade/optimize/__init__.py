"""``cascade optimize``: find the cheapest ladder that reaches a target pass rate, honestly.

- :mod:`cascade.optimize.table`: what every model answered, judged once by the real validators.
- :mod:`cascade.optimize.search`: every ladder simulated at once on folds of the training split;
  the frontier of each task kind, the cheapest mix that reaches the target, and the margin that
  nested cross-validation says the choice needs.
- :mod:`cascade.optimize.write`: the chosen ladders as policy files.
- :mod:`cascade.optimize.command`: the command, which confirms the choice through the real
  engine on the held-out split.
"""
