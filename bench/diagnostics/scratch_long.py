"""The from-scratch baseline at 10 min of probes with 3000 steps, on the adapt-tuning validation patients.

Backs the 3000-step rows of the from-scratch baseline at 10 min (``bench/adapt_tuning_600s.json``
took them over from ``bench/diagnostics/scratch_long_600s.json`` with ``--reuse``: median R² 160 ms
+ stim-effect R² 0.65 at 3000 steps with lr 1e-3 and 0.57 with lr 3e-4, against 0.54 at 1000 steps),
which is why the surrogate benchmark trains that baseline for 3000 steps at 1e-3 at 10 min. Rerun
from the repository root (about 20 min on 2 CPU cores)::

    python bench/diagnostics/scratch_long.py scratch_long_600s.json

``bfm-stim bench adapt-tuning --amount 600`` now sweeps these settings itself (its grid there adds
:data:`loops.bench.adapt_tuning.LONG_SETTINGS`); this script runs only the two of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="from-scratch baseline, 3000 steps, 10 min of probes")
    ap.add_argument("out", help="JSON file to write (the layout of `bfm-stim bench adapt-tuning`)")
    a = ap.parse_args(argv)

    from loops.bench.adapt_tuning import FULL, run_adapt_tuning

    tc = dataclasses.replace(FULL, amount_s=600.0, grids=(("scratch", ((3000, 1e-3), (3000, 3e-4))),))
    res = run_adapt_tuning(config=tc, progress=False)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    for m, d in res["medians"].items():
        for k, v in d.items():
            print(m, k, {kk: round(vv, 3) for kk, vv in v.items()})
    print("seconds", res["timing_s"])


if __name__ == "__main__":
    main()
