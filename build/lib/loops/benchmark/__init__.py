"""The optimizer benchmarking harness: cohorts × optimizers × seeds, a local pool or Ray, reports.

Modules, one idea each: :mod:`~loops.benchmark.config` (the TOML), :mod:`~loops.benchmark.cells` (units
of work, ids, seeds), :mod:`~loops.benchmark.patients` (the patient protocol; simulated patients),
:mod:`~loops.benchmark.tabular` (patients from measured response tables), :mod:`~loops.benchmark.plugins`
(external and users' optimizers), :mod:`~loops.benchmark.runner` (one run), :mod:`~loops.benchmark.executors`
(local pool, Ray, resume), :mod:`~loops.benchmark.metrics`, :mod:`~loops.benchmark.plots`,
:mod:`~loops.benchmark.report`, :mod:`~loops.benchmark.cli`. See ``loops/benchmark/README.md``.
"""

from __future__ import annotations
