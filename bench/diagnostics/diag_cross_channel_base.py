"""Would a cross-channel linear base help the forecast?

Backs the cross-channel ridge figure (``bench/diagnostics/diag_cross_channel_base.json``): a ridge
on a channel's own lags plus 4 spatial components, in place of the model's per-channel linear path,
changed pooled R² by +0.015 at 40 ms (better on 6 of 8 validation patients) and -0.009 at 160 ms
(2 of 8) at ridge weight 0.1; 0.001, 0.01 and 8 components were no better at 160 ms, so it was not
adopted.

On the 8 ``bench adapt-tuning`` validation patients (never the reported ones), fine-tuned on
``AMOUNT_S`` of probes as ``bench surrogate`` does (300 steps, lr 1e-4), the model's per-channel AR
base (:mod:`bfm_stim.model.linear`) is swapped, in the on and the off forecasts alike, for a ridge
predictor fitted on the same adaptation data's stimulation-off windows (normalised per window as
the model sees them): a channel's own 75 lags (``K0``) plus every 3rd of the last 75 samples of the
top-K spatial principal components (``K4``, ``K8``), ridge ``lam`` relative to the mean Gram
diagonal. Reports pooled R² (on + off test windows) and the base alone on the off windows
(``off_base``); the medians add the paired change of pooled R² against the model's own base
(``uni``) and the number of patients it improves. Rerun from the repository root::

    python bench/diagnostics/diag_cross_channel_base.py diag_cross_channel_base.json

``--patients 0 3`` runs a subset (validation patients are numbered 0-7).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

LEADS_MS = (40, 160)
N_VAL = 8


def one(job: tuple[int, float]) -> dict[str, Any]:
    """Pooled and base-only R² of every base on validation patient ``k`` (``job = (k, amount_s)``)."""
    import torch

    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.model.linear import linear_forecast, off_segments
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.adapt_tuning import validation_seeds
    from loops.bench.data import make_eval_patient, r2
    from loops.bench.surrogate import FAMILIES, FEATURES_OFF, _forecaster, _norm, bfm_predict

    k, amount = job
    torch.set_num_threads(1)
    model, _ = load_checkpoint(default_checkpoint())
    cfg = model.config
    s = validation_seeds(N_VAL)[k]
    fam = FAMILIES[(21 + k) % len(FAMILIES)]
    ep = make_eval_patient(fam, s, fs=250.0, patch_len=25, ctx_patches=12, hor_patches=10, rest_s=30.0, probe_s=120.0,
                           cal_s=40.0, n_test=16, hidden_s=20.0)
    torch.manual_seed(1000 + k)
    e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
    ser = ep.series(amount)
    if amount > 0:
        res = adapt(model, ser, mode="full", steps=300, lr=1e-4, seed=k, patient_init=e0, batch_size=8, max_channels=8)
        m, emb, fc = res.model, res.embedding, res.forecaster
    else:
        m, emb, fc = model, e0, _forecaster(cfg, ep.series(0))
    off = torch.as_tensor(FEATURES_OFF)[None, None].expand(len(ep.ctx), 10, -1)
    on_p = bfm_predict(m, emb, ep.session.positions, ep.ctx, ep.stim, fc)[0]
    of_p = bfm_predict(m, emb, ep.session.positions, ep.ctx, off, fc)[0]
    ctx_n = _norm(ep.ctx, ep.ctx).astype(np.float64)
    base_uni = linear_forecast(torch.from_numpy(ctx_n).float(), torch.as_tensor(fc)[None]).numpy()
    y_on, y_off = _norm(ep.ctx, ep.fut), _norm(ep.ctx, ep.cf_fut)
    x = ser.data.astype(np.float64)
    n_ch = x.shape[0]
    segs = off_segments(ser.off_mask(125), 550)
    st = [a2 for a, b in segs for a2 in range(a, b - 550 + 1, 2)]
    w = np.stack([x[:, a:a + 550] for a in st])
    c = w[..., :300]
    mu, sd = c.mean(-1, keepdims=True), np.maximum(c.std(-1, keepdims=True), 1e-3)
    cw, fw = (c - mu) / sd, (w[..., 300:] - mu) / sd
    xs = x[:, ser.off_mask(125)]
    xs = (xs - xs.mean(1, keepdims=True)) / xs.std(1, keepdims=True)
    u = np.linalg.svd(xs @ xs.T / xs.shape[1])[0]
    out: dict[str, Any] = {"family": fam, "seed": s, "n_windows": len(st)}

    def score(bo: np.ndarray, bf: np.ndarray) -> dict[int, dict[str, float]]:
        d = {}
        for ms in LEADS_MS:
            lag = int(ms * 0.25) - 1
            y = np.r_[y_on[..., lag], y_off[..., lag]]
            d[ms] = {"pooled": r2(y, np.r_[on_p[..., lag] - base_uni[..., lag] + bo[..., lag],
                                           of_p[..., lag] - base_uni[..., lag] + bf[..., lag]]),
                     "off_base": r2(y_off[..., lag], bf[..., lag])}
        return d

    out["uni"] = score(base_uni, base_uni)
    for n_pc in (0, 4, 8):
        proj = u[:, :n_pc].T
        pc_tr = (np.einsum("kc,nct->nkt", proj, cw[..., -75:])[..., ::-3].reshape(len(cw), -1) if n_pc
                 else np.zeros((len(cw), 0)))
        pc_te = (np.einsum("kc,nct->nkt", proj, ctx_n[..., -75:])[..., ::-3].reshape(len(ctx_n), -1) if n_pc
                 else np.zeros((len(ctx_n), 0)))

        def feats(win: np.ndarray, ch: int) -> np.ndarray:
            pcs = pc_tr if win is cw else pc_te
            return np.concatenate([win[:, ch, -75:][:, ::-1], pcs, np.ones((len(win), 1))], 1)

        for lam in (1e-3, 1e-2, 1e-1):
            base = np.zeros_like(base_uni)
            for ch in range(n_ch):
                a = feats(cw, ch)
                g = a.T @ a
                g += lam * np.trace(g) / len(g) * np.eye(len(g))
                wt = np.linalg.solve(g, a.T @ fw[:, ch, :])  # (features, 250)
                base[:, ch] = feats(ctx_n, ch) @ wt
            out[f"K{n_pc}_l{lam:g}"] = score(base, base)
    return json.loads(json.dumps(out))  # lead keys as JSON writes them ("40", "160")


def medians(patients: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per lead and base: median pooled and off-base R², median paired change of pooled R² against
    ``uni`` and the number of patients it improves."""
    variants = [k for k in patients[0] if k not in ("family", "seed", "n_windows")]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for ms in map(str, LEADS_MS):
        out[ms] = {}
        for v in variants:
            change = [p[v][ms]["pooled"] - p["uni"][ms]["pooled"] for p in patients]
            out[ms][v] = {"pooled": float(np.median([p[v][ms]["pooled"] for p in patients])),
                          "off_base": float(np.median([p[v][ms]["off_base"] for p in patients])),
                          "pooled_paired_change": float(np.median(change)),
                          "n_better": int(sum(c > 0 for c in change))}
    return out


def main(argv: list[str] | None = None) -> None:
    from loops._pool import map_jobs

    ap = argparse.ArgumentParser(description="a cross-channel ridge base in place of the model's linear path")
    ap.add_argument("out", help="JSON file to write")
    ap.add_argument("--amount", type=float, default=120.0,
                    help="s of probes to fine-tune on (default 120, the committed figure; 0: zero-shot)")
    ap.add_argument("--patients", type=int, nargs="+", default=list(range(N_VAL)), choices=range(N_VAL),
                    metavar="K", help="validation patients to run, 0-7 (default all)")
    ap.add_argument("--workers", type=int, default=2, help="processes, one patient each at a time (default 2)")
    a = ap.parse_args(argv)
    rows = map_jobs(one, [(k, a.amount) for k in a.patients], a.workers, desc="patients", progress=False)
    med = medians(rows)
    with open(a.out, "w") as f:
        json.dump({"script": "bench/diagnostics/diag_cross_channel_base.py", "amount_s": a.amount, "medians": med,
                   "patients": rows}, f, indent=1)
    for ms, per in med.items():
        print(f"{ms} ms:", {v: round(d["pooled"], 3) for v, d in per.items()})


if __name__ == "__main__":
    main()
