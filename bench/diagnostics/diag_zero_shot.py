"""Diagnostic: zero-shot metrics on pretraining-cohort patients (fresh simulations) vs validation patients.

    NVAL=16 .venv/bin/python notes/diag_zero_shot.py CHECKPOINT [pretrain|validation|both] [OUT.json]

The pretraining patients are the corpus's first 8 (same family rotation and seeds), simulated
afresh with the benchmark's protocol; the validation patients are the adapt-tuning sweep's
(eval-cohort seeds after the surrogate benchmark's). Figures: notes/continued_pretraining.json.
"""
import json, sys, time
import numpy as np, torch
import simulators
from simulators import registry
from loops.bench.adapt_tuning import validation_seeds, FULL as TC
from loops.bench.surrogate import FAMILIES, _eval_bfm, _forecaster
from loops.bench.data import make_eval_patient
from bfm_stim.model.adapt import infer_embedding
from bfm_stim.model.checkpoint import load_checkpoint
from bfm_stim.surrogate import default_checkpoint

ck = sys.argv[1] if len(sys.argv) > 1 else str(default_checkpoint())
which = sys.argv[2] if len(sys.argv) > 2 else "both"
torch.set_num_threads(2)
model, _ = load_checkpoint(ck)
cfg = model.config
orig = registry.make
def make_any(id, seed=0, *, cohort=None, **kw):
    return orig(id, seed, **kw)
simulators.make = make_any

fams = [pid for pid, _ in simulators.list_patients()]
pre = []
seeds = iter(simulators.cohort("pretrain", 40))
for i in range(8):
    fam = fams[i % len(fams)]
    while True:
        s = next(seeds)
        try:
            orig(fam, seed=int(s)); break
        except Exception:
            pass
    pre.append((fam, int(s)))
val = [(FAMILIES[(21 + k) % 4], s) for k, s in enumerate(validation_seeds(int(__import__("os").environ.get("NVAL", "8"))))]
out = {}
for name, pats in (("pretrain", pre), ("validation", val)):
    if which not in ("both", name):
        continue
    rows = []
    for i, (fam, seed) in enumerate(pats):
        ep = make_eval_patient(fam, seed, fs=cfg.fs, patch_len=cfg.patch_len, ctx_patches=cfg.max_patches - cfg.horizon_patches,
                               hor_patches=cfg.horizon_patches, rest_s=TC.rest_s, probe_s=0.0, cal_s=TC.cal_s,
                               n_test=TC.n_test, hidden_s=TC.hidden_s)
        torch.manual_seed(1000 + i)
        e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
        m, _ = _eval_bfm(model, e0, ep, cfg.fs, TC.n_cal_windows, _forecaster(cfg, ep.series(0)))
        rows.append({k: float(m[k]) for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2")} | {"family": fam, "seed": seed})
        print(name, rows[-1], flush=True)
    out[name] = {"rows": rows, "median": {k: float(np.median([r[k] for r in rows])) for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2")}}
    print(name, "MEDIAN", out[name]["median"], flush=True)
json.dump(out, open(sys.argv[3] if len(sys.argv) > 3 else "diag.json", "w"), indent=1)
