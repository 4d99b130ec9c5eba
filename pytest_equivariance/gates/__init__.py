"""CI gates: robustness baselines (save, compare, merge across xdist workers) and results files.

``baseline`` records each check's worst error and compares a run against it; ``runs`` reads and
merges the ``--equiv-json`` files of several runs. Both are plain data and numbers: the renderers in
:mod:`pytest_equivariance.report` draw them, the pytest and CLI shells drive them.
"""
