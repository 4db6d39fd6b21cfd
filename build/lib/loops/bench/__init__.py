"""The project's measurement suite behind ``bfm-stim bench …``: one module per benchmark.

Each module measures one capability and returns a JSON-ready dict with a ``targets`` block
(measured, target, met); :mod:`loops.stats` holds the summary statistics they share with the benchmark report. Nothing
in :mod:`bfm_stim` or :mod:`simulators` imports from here.
"""
