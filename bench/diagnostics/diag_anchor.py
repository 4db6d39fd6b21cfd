"""Which part of adaptation loses what zero-shot had when there are few probes.

Backs the "few probes need the anchor" figure (``bench/diagnostics/diag_anchor_10s.json``): on
10 s of probes, tuning the read-in/read-out layers alone scored 0.53 and the patient embedding
alone 1.00 (median R² 160 ms + stim-effect R² over the 8 validation patients), against zero-shot's
0.99, which is why :func:`bfm_stim.model.adapt.adapt` has an ``anchor``.

Each variant is one call of ``adapt`` on the validation patients of ``bfm-stim bench adapt-tuning``,
with the same data, evaluation and score. Rerun the committed figure from the repository root::

    python bench/diagnostics/diag_anchor.py 10 diag_anchor_10s.json \\
        emb=embedding:30:0.003 emb_embonly=embedding:30:0.003:tune_weights=0 \\
        emb_a30=embedding:30:0.003:anchor=30 emb_a100=embedding:30:0.003:anchor=100 \\
        ft=full:30:0.0005 ft_a100=full:30:0.0005:anchor=100

The committed file also holds ``emb_ioonly`` (embedding kept at its zero-shot value, read-in/out
tuned), made with an ``adapt`` switch that no longer exists. A variant's dropout draws depend on
the variants run before it in the same process, so its figures move by about 0.01 with the order.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

VARIANT_HELP = ("NAME=MODE:STEPS:LR[:KEY=VALUE,...], MODE as `bfm-stim adapt --mode` (embedding, full), "
                "keys anchor (float) and tune_weights (true/false)")


def parse_variant(text: str) -> tuple[str, str, int, float, dict[str, Any]]:
    """``"name=mode:steps:lr[:key=value,...]"`` as ``(name, mode, steps, lr, adapt_kwargs)``."""
    try:
        name, spec = text.split("=", 1)
        parts = spec.split(":")
        kw: dict[str, Any] = {}
        if len(parts) > 3:
            for item in parts[3].split(","):
                k, val = item.split("=")
                if k not in ("anchor", "tune_weights"):
                    raise ValueError(f"unknown key {k!r}")
                kw[k] = float(val) if k == "anchor" else val.lower() in ("1", "true", "yes")
        return name, parts[0], int(parts[1]), float(parts[2]), kw
    except (ValueError, IndexError) as e:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {VARIANT_HELP} ({e})") from None


def one(job: dict[str, Any]) -> dict[str, Any]:
    """Zero-shot and every variant on one validation patient."""
    import torch

    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.adapt_tuning import FULL, REPORT_METRICS
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
        rows[name] = {**{k: met[k] for k in REPORT_METRICS}, "emb_rel_change": d_emb,
                      "seconds": time.perf_counter() - t}
    return {"i": i, "seed": job["seed"], "family": job["family"], "rows": rows}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="adapt() variants on the adapt-tuning validation patients")
    ap.add_argument("amount_s", type=float, help="seconds of probes to adapt on (10 for the committed figure)")
    ap.add_argument("out", help="JSON file to write")
    ap.add_argument("variants", nargs="+", metavar="VARIANT", help=VARIANT_HELP)
    ap.add_argument("--workers", type=int, default=2, help="processes, one patient each at a time (default 2)")
    a = ap.parse_args(argv)
    try:
        variants = [parse_variant(v) for v in a.variants]
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))

    from loops._pool import map_jobs
    from loops.bench.adapt_tuning import FULL, REPORT_METRICS, SCORE_METRICS, validation_seeds
    from loops.bench.surrogate import FAMILIES, FULL as BENCH

    first = BENCH.n_patients + 1
    jobs = [dict(i=first + k, family=FAMILIES[(first + k) % len(FAMILIES)], seed=s, amount=a.amount_s,
                 variants=variants) for k, s in enumerate(validation_seeds(FULL.n_val))]
    parts = map_jobs(one, jobs, a.workers, desc="patients", progress=False)
    med: dict[str, dict[str, float]] = {}
    for name in parts[0]["rows"]:
        med[name] = {k: float(np.median([p["rows"][name][k] for p in parts])) for k in REPORT_METRICS}
        med[name]["score"] = float(np.median([sum(p["rows"][name][k] for k in SCORE_METRICS) for p in parts]))
        if name != "zero_shot":
            med[name]["emb_rel_change"] = float(np.median([p["rows"][name]["emb_rel_change"] for p in parts]))
    with open(a.out, "w") as f:
        json.dump({"amount_s": a.amount_s, "variants": a.variants, "medians": med, "per_patient": parts}, f, indent=1)
    for name, m in med.items():
        print(f"{name:24s} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()))


if __name__ == "__main__":
    main()
