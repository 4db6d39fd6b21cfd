"""Is the forecast over- or under-dispersed? Per lead, the least-squares slope of the truth on the
forecast (1: calibrated; < 1: the forecast swings too much), the R² of the forecast shrunk by 0.8,
and R² after re-centring on the test windows' own mean (an in-sample fit: with 16 independent
trials it gains about (1 - R²)/16 by chance alone). The 8 ``bench adapt-tuning`` validation
patients, zero-shot (``zs``) or fine-tuned on 2 min of probes as ``bench surrogate`` does (``ft``).

usage (one patient per process):
    for m in zs ft; do for k in 0 1 2 3 4 5 6 7; do python notes/diag_calibration.py $k $m > /tmp/cal_${m}_$k.json; done; done
notes/diag_calibration.json holds the 16 outputs and their medians.
"""
import json, sys, numpy as np, torch
from loops.bench.adapt_tuning import validation_seeds, FULL as TC
from loops.bench.data import make_eval_patient, r2
from loops.bench.surrogate import bfm_predict, _norm, _forecaster, FEATURES_OFF, FAMILIES
from bfm_stim.model.adapt import adapt, infer_embedding
from bfm_stim.model.checkpoint import load_checkpoint
torch.set_num_threads(1)
k = int(sys.argv[1]); mode = sys.argv[2]
model, _ = load_checkpoint("bfm_stim/checkpoints/default/model.pt")
cfg = model.config
seeds = validation_seeds(8); first = 21
s = seeds[k]; fam = FAMILIES[(first + k) % len(FAMILIES)]
ep = make_eval_patient(fam, s, fs=cfg.fs, patch_len=cfg.patch_len, ctx_patches=cfg.max_patches - cfg.horizon_patches,
                       hor_patches=cfg.horizon_patches, rest_s=30.0, probe_s=120.0, cal_s=40.0, n_test=16, hidden_s=20.0)
torch.manual_seed(1000 + k)
e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
m, emb, fc = model, e0, _forecaster(cfg, ep.series(0))
if mode == "ft":
    res = adapt(model, ep.series(120.0), mode="full", steps=300, lr=1e-4, seed=k, patient_init=e0, batch_size=8, max_channels=8)
    m, emb, fc = res.model, res.embedding, res.forecaster
off = torch.as_tensor(FEATURES_OFF)[None, None].expand(len(ep.ctx), cfg.horizon_patches, -1)
on, _, _ = bfm_predict(m, emb, ep.session.positions, ep.ctx, ep.stim, fc)
of, _, _ = bfm_predict(m, emb, ep.session.positions, ep.ctx, off, fc)
fut = np.concatenate([_norm(ep.ctx, ep.fut), _norm(ep.ctx, ep.cf_fut)]); pred = np.concatenate([on, of])
out = {"family": fam, "seed": s}
for ms in (20, 40, 80, 120, 160, 240, 400):
    l = int(round(ms / 1000 * cfg.fs)) - 1
    y, yh = fut[..., l], pred[..., l]
    yc, yhc = y - y.mean(0), yh - yh.mean(0)
    slope = float((yc * yhc).sum() / (yhc ** 2).sum())
    out[ms] = {"r2": r2(y, yh), "slope": slope, "r2_opt": r2(y, y.mean(0) + slope * yhc),
               "r2_slope_only": r2(y, yh.mean(0) + slope * yhc), "r2_center_only": r2(y, y.mean(0) + yhc),
               "r2_shrink08": r2(y, 0.8 * yh),
               "var_ratio": float((yhc ** 2).sum() / (yc ** 2).sum())}
print(json.dumps(out))
