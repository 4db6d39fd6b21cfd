"""Where does adapting on little probe data lose what zero-shot had? Variants of ``adapt`` on the
adapt-tuning validation patients (same data, evaluation and score as ``bench adapt-tuning``).

usage: python notes/diag_anchor.py AMOUNT_S OUT.json VARIANT [VARIANT ...]
VARIANT: name=mode:steps:lr[:key=value,...] with keys anchor, tune_weights.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from loops.bench.adapt_tuning import FULL, REPORT_METRICS, SCORE_METRICS, validation_seeds


def parse(v: str):
    name, spec = v.split("=", 1)
    parts = spec.split(":")
    kw = {}
    if len(parts) > 3:
        for item in parts[3].split(","):
            k, val = item.split("=")
            kw[k] = float(val) if k == "anchor" else val.lower() in ("1", "true", "yes")
    return name, parts[0], int(parts[1]), float(parts[2]), kw


def one(job):
    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import _eval_bfm, _forecaster

    tc, i = FULL, job["i"]
    torch.set_num_threads(1)
    model, _ = load_checkpoint(default_checkpoint())
    cfg = model.config
    ep = make_eval_patient(job["family"], job["seed"], fs=cfg.fs, patch_len=cfg.patch_len,
                           ctx_patches=cfg.max_patches - cfg.horizon_patches, hor_patches=cfg.horizon_patches,
                           rest_s=tc.rest_s, probe_s=job["amount"], cal_s=tc.cal_s, n_test=tc.n_test,
                           hidden_s=tc.hidden_s)
    torch.manual_seed(1000 + i)
    e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
    zs, _ = _eval_bfm(model, e0, ep, cfg.fs, tc.n_cal_windows, _forecaster(cfg, ep.series(0)))
    rows = {"zero_shot": {k: zs[k] for k in REPORT_METRICS}}
    ser = ep.series(job["amount"])
    for name, mode, steps, lr, kw in job["variants"]:
        t = time.perf_counter()
        res = adapt(model, ser, mode=mode, steps=steps, lr=lr, seed=i, patient_init=e0,
                    batch_size=tc.batch_size, max_channels=tc.max_channels, **kw)
        met, _ = _eval_bfm(res.model, res.embedding, ep, cfg.fs, tc.n_cal_windows, res.forecaster)
        d_emb = float((res.embedding - e0).norm() / e0.norm())
        rows[name] = {**{k: met[k] for k in REPORT_METRICS}, "emb_rel_change": d_emb, "seconds": time.perf_counter() - t}
    return {"i": i, "seed": job["seed"], "family": job["family"], "rows": rows}


def main() -> None:
    from loops._pool import map_jobs
    from loops.bench.surrogate import FAMILIES, FULL as BENCH

    amount, out = float(sys.argv[1]), sys.argv[2]
    variants = [parse(v) for v in sys.argv[3:]]
    first = BENCH.n_patients + 1
    jobs = [dict(i=first + k, family=FAMILIES[(first + k) % len(FAMILIES)], seed=s, amount=amount, variants=variants)
            for k, s in enumerate(validation_seeds(FULL.n_val))]
    parts = map_jobs(one, jobs, 2, desc="patients", progress=False)
    med = {}
    for name in parts[0]["rows"]:
        med[name] = {k: float(np.median([p["rows"][name][k] for p in parts])) for k in REPORT_METRICS}
        med[name]["score"] = float(np.median([sum(p["rows"][name][k] for k in SCORE_METRICS) for p in parts]))
        if name != "zero_shot":
            med[name]["emb_rel_change"] = float(np.median([p["rows"][name]["emb_rel_change"] for p in parts]))
    json.dump({"amount_s": amount, "variants": sys.argv[3:], "medians": med, "per_patient": parts}, open(out, "w"), indent=1)
    for name, m in med.items():
        print(f"{name:24s} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
