"""Where the 2-min forecast falls short of the state oracle at 160 ms, and how much of that an
observation-only forecaster could recover.

Backs the 160 ms gap analysis (``bench/diagnostics/diag_gap.json``): on the surrogate benchmark's
20 evaluation patients, fine-tuned on 2 min of probes as in the benchmark, pooled 160 ms R² 0.575
against the oracle's 0.711; on the stimulation-off windows the model forecasts no better than its
own per-channel linear path; swapping in the oracle's stimulation effect lifts pooled R² to 0.623,
swapping in its ongoing-activity forecast to 0.633. Rerun from the repository root (710 s on
2 CPU cores)::

    python bench/diagnostics/diag_gap.py diag_gap.json

Per patient (R² at the lead sample, as ``bench surrogate``'s ``forecast_r2``; normalised by each
window's context statistics):

- the 16 test trials split into the stimulated windows (``on``) and their counterfactuals (``off``,
  ongoing activity only), for the fine-tuned model and the state oracle;
- ``pooled_*_ongoing_*_effect``: the pooled (on + off) R² of a hybrid whose ongoing-activity forecast
  is one source's (its off-window prediction) and whose stimulation effect is the other's
  (its on - off difference): how far a perfect effect, or a perfect ongoing forecast, would take the
  model;
- on the off windows, observation-only linear forecasters of ongoing activity fitted on
  ``--long-rest`` seconds (default 300) of extra stimulation-off data of the same patient (10x the
  benchmark's 30 s rest): per-channel AR (the model's linear path, 75 lags) and per-channel ridge on
  its own 75 lags plus every 3rd of the last 75 samples of the top-4 spatial principal components
  (cross-channel information). They bound what more data for a linear forecaster would buy, not
  what any forecaster could do.

Test trials and probes are drawn as ``bench surrogate`` draws them for a 2-min patient (its own run
draws them after 10 min of probes, so its trials differ); the oracle uses 32 noise continuations.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

LEADS_MS = (40, 160)
FS, PATCH, CTX_P, HOR_P = 250.0, 25, 12, 10


def _lin_bounds(fam: str, seed: int, ep, long_s: float) -> dict[str, dict[int, float]]:
    """Observation-only linear forecasters of the off windows, fitted on ``long_s`` of fresh rest."""
    import torch

    import simulators
    from bfm_stim.model.linear import fit_forecaster, linear_forecast
    from loops.bench.data import r2 as _r2
    from loops.bench.surrogate import _norm
    from loops.pretrain_corpus import resample_to

    p = simulators.make(fam, seed=seed, cohort="eval")
    p.reset()
    x = resample_to(p.advance(int(long_s * p.fs)), float(p.fs), FS)[: p.n_channels].astype(np.float64)
    n_ctx, n_hor = CTX_P * PATCH, HOR_P * PATCH
    fut = _norm(ep.ctx, ep.cf_fut)
    ctx_n = _norm(ep.ctx, ep.ctx).astype(np.float64)
    leads = {ms: int(round(ms * FS / 1000)) - 1 for ms in LEADS_MS}
    out = {}
    for name, data in (("ar_30s_rest", ep.series(0).data[:, : int(30 * FS)]), ("ar_long_rest", x)):
        fc = fit_forecaster(data, lags=75, horizon=n_hor)
        pred = linear_forecast(torch.from_numpy(ctx_n).float(), torch.from_numpy(fc)[None]).numpy()
        out[name] = {ms: _r2(fut[..., l], pred[..., l]) for ms, l in leads.items()}
    # training windows from the long rest, normalised like the test windows
    starts = np.arange(0, x.shape[1] - n_ctx - n_hor, 5)
    w = np.stack([x[:, a:a + n_ctx + n_hor] for a in starts])
    c = w[..., :n_ctx]
    mu, sd = c.mean(-1, keepdims=True), np.maximum(c.std(-1, keepdims=True), 1e-3)
    cw, fw = (c - mu) / sd, (w[..., n_ctx:] - mu) / sd
    xn = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    comps = np.linalg.svd(xn @ xn.T / xn.shape[1])[0][:, :4].T  # (4, C)

    def feats(win: np.ndarray, ch: int) -> np.ndarray:
        pcs = np.einsum("kc,nct->nkt", comps, win)[..., -75:][..., ::-3].reshape(len(win), -1)
        return np.c_[win[:, ch, -75:][:, ::-1], pcs, np.ones(len(win))]

    pred = {ms: np.zeros(fut.shape[:2]) for ms in LEADS_MS}
    for ch in range(x.shape[0]):
        a = feats(cw, ch)
        g = a.T @ a
        g += 1e-3 * np.trace(g) / len(g) * np.eye(len(g))
        b = feats(ctx_n, ch)
        for ms, l in leads.items():
            pred[ms][:, ch] = b @ np.linalg.solve(g, a.T @ fw[:, ch, l])
    out["ridge_own_plus_4pc_long_rest"] = {ms: _r2(fut[..., l], pred[ms]) for ms, l in leads.items()}
    return out


def one(i: int, long_s: float) -> dict:
    """The gap figures of evaluation patient ``i``."""
    import torch

    import simulators
    from bfm_stim.model.adapt import adapt, infer_embedding
    from bfm_stim.exceptions import ModelError
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    from loops.bench.data import make_eval_patient, r2 as _r2
    from loops.bench.surrogate import FAMILIES, FEATURES_OFF, FULL, _norm, bfm_predict

    torch.set_num_threads(1)
    seed = int(simulators.cohort("eval", FULL.n_patients)[i])
    fam = FAMILIES[i % len(FAMILIES)]
    model, _ = load_checkpoint(default_checkpoint())
    cfg = model.config
    got = (cfg.fs, cfg.patch_len, cfg.max_patches - cfg.horizon_patches, cfg.horizon_patches)
    if got != (FS, PATCH, CTX_P, HOR_P):
        raise ModelError(f"the shipped model's (fs, patch_len, context patches, horizon patches) are {got}; "
                         f"this diagnostic is written for {(FS, PATCH, CTX_P, HOR_P)}")
    ep = make_eval_patient(fam, seed, fs=FS, patch_len=PATCH, ctx_patches=CTX_P, hor_patches=HOR_P,
                           rest_s=FULL.rest_s, probe_s=120.0, cal_s=FULL.cal_s, n_test=FULL.n_test,
                           hidden_s=FULL.hidden_s, oracle_branches=FULL.oracle_branches)
    torch.manual_seed(1000 + i)
    e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
    res = adapt(model, ep.series(120.0), mode="full", steps=FULL.steps_full, lr=FULL.lr_full, seed=i,
                patient_init=e0, batch_size=FULL.batch_size, max_channels=FULL.max_channels)
    off = torch.as_tensor(FEATURES_OFF)[None, None].expand(len(ep.ctx), cfg.horizon_patches, -1)
    m_on = bfm_predict(res.model, res.embedding, ep.session.positions, ep.ctx, ep.stim, res.forecaster)[0]
    m_off = bfm_predict(res.model, res.embedding, ep.session.positions, ep.ctx, off, res.forecaster)[0]
    y_on, y_off = _norm(ep.ctx, ep.fut), _norm(ep.ctx, ep.cf_fut)
    o_on, o_off = _norm(ep.ctx, ep.oracle_fut), _norm(ep.ctx, ep.oracle_cf)
    row: dict = {"i": i, "family": fam, "seed": seed}
    for ms in LEADS_MS:
        l = int(round(ms * FS / 1000)) - 1
        y, yo = np.r_[y_on[..., l], y_off[..., l]], y_on[..., l] - y_off[..., l]
        mo, mf, oo, of = m_on[..., l], m_off[..., l], o_on[..., l], o_off[..., l]
        row[f"{ms}ms"] = {
            "pooled_model": _r2(y, np.r_[mo, mf]), "pooled_oracle": _r2(y, np.r_[oo, of]),
            "off_model": _r2(y_off[..., l], mf), "off_oracle": _r2(y_off[..., l], of),
            "on_model": _r2(y_on[..., l], mo), "on_oracle": _r2(y_on[..., l], oo),
            "pooled_model_ongoing_oracle_effect": _r2(y, np.r_[mf + oo - of, mf]),
            "pooled_oracle_ongoing_model_effect": _r2(y, np.r_[of + mo - mf, of]),
            "effect_model": _r2(yo, mo - mf), "effect_oracle": _r2(yo, oo - of),
        }
    for name, d in _lin_bounds(fam, seed, ep, long_s).items():
        for ms, v in d.items():
            row[f"{ms}ms"][f"off_{name}"] = v
    return row


def main(argv: list[str] | None = None) -> None:
    from concurrent.futures import ProcessPoolExecutor

    ap = argparse.ArgumentParser(description="the 2-min forecast's shortfall against the state oracle")
    ap.add_argument("out", help="JSON file to write")
    ap.add_argument("n_patients", nargs="?", type=int, default=20,
                    help="evaluation patients, from the first (default 20, the committed figure)")
    ap.add_argument("long_rest_s", nargs="?", type=float, default=300.0,
                    help="s of extra stimulation-off data for the linear forecasters (default 300)")
    ap.add_argument("--workers", type=int, default=2, help="processes, one patient each (default 2)")
    a = ap.parse_args(argv)
    n, long_s = a.n_patients, a.long_rest_s
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        rows = list(pool.map(one, range(n), [long_s] * n))
    keys = list(rows[0]["160ms"])
    med = {f"{ms}ms": {k: float(np.median([r[f"{ms}ms"][k] for r in rows])) for k in keys} for ms in LEADS_MS}
    fams = sorted({r["family"] for r in rows})
    by_family = {f: {f"{ms}ms": {k: float(np.median([r[f"{ms}ms"][k] for r in rows if r["family"] == f])) for k in keys}
                     for ms in LEADS_MS} for f in fams}
    with open(a.out, "w") as f:
        json.dump({"script": "bench/diagnostics/diag_gap.py", "n_patients": n, "long_rest_s": long_s, "medians": med,
                   "medians_by_family": by_family, "patients": rows, "seconds": time.perf_counter() - t0},
                  f, indent=1)
    for ms in LEADS_MS:
        print(f"{ms} ms:", {k: round(v, 3) for k, v in med[f"{ms}ms"].items()})


if __name__ == "__main__":
    main()
