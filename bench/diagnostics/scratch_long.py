"""From-scratch baseline at 10 min of probes with 3000 steps, on the adapt-tuning validation patients.

    .venv/bin/python notes/scratch_long.py notes/scratch_long_600s.json

At 10 min the sweep (bench/adapt_tuning_600s.json) picked its largest scratch setting, 1000 steps
at 1e-3 (score 0.543; 0.480 at 300 steps), so the baseline might gain from more: this runs the same
patients, data and score with 3000 steps at 1e-3 and 3e-4 (the pretrained picks there score 1.14).

Superseded: the 10-min sweep's own grid now has these settings and 6000 steps
(loops.bench.adapt_tuning.LONG_SETTINGS); bench/adapt_tuning_600s.json took this file's rows over
with --reuse, and the benchmark uses the pick, 3000 steps at 1e-3.
"""
import dataclasses, json, sys

from loops.bench.adapt_tuning import FULL, run_adapt_tuning

if __name__ == "__main__":
    tc = dataclasses.replace(FULL, amount_s=600.0, grids=(("scratch", ((3000, 1e-3), (3000, 3e-4))),))
    res = run_adapt_tuning(config=tc, progress=False)
    json.dump(res, open(sys.argv[1], "w"), indent=1)
    for m, d in res["medians"].items():
        for k, v in d.items():
            print(m, k, {kk: round(vv, 3) for kk, vv in v.items()})
    print("seconds", res["timing_s"])
