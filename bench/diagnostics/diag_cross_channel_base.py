"""Would a cross-channel linear base help? On the 8 ``bench adapt-tuning`` validation patients (never
the reported ones), fine-tuned on 2 min of probes as ``bench surrogate`` does (300 steps, lr 1e-4),
the model's per-channel AR base (``bfm_stim.model.linear``) is swapped, in the on and the off
forecasts alike, for a ridge predictor fitted on the same adaptation data's stimulation-off windows
(normalised per window as the model sees them): a channel's own 75 lags (K0) plus every 3rd of the
last 75 samples of the top-K spatial principal components (K4, K8), ridge ``lam`` relative to the
mean Gram diagonal. Reports pooled R² (on + off test windows) and the base alone on the off windows.

usage (one patient per process; AMOUNT_S 120):
    for k in 0 1 2 3 4 5 6 7; do python notes/diag_cross_channel_base.py $k 120 > /tmp/mc_$k.json; done
notes/diag_cross_channel_base.json holds the 8 outputs (``patients``) and their medians.
"""
import json, sys, numpy as np, torch
from loops.bench.adapt_tuning import validation_seeds
from loops.bench.data import make_eval_patient, r2
from loops.bench.surrogate import bfm_predict, _norm, FEATURES_OFF, FAMILIES
from bfm_stim.model.adapt import adapt, infer_embedding
from bfm_stim.model.checkpoint import load_checkpoint
from bfm_stim.model.linear import linear_forecast, off_segments
torch.set_num_threads(1)
k = int(sys.argv[1]); amount = float(sys.argv[2])
model, _ = load_checkpoint("bfm_stim/checkpoints/default/model.pt"); cfg = model.config
s = validation_seeds(8)[k]; fam = FAMILIES[(21 + k) % len(FAMILIES)]
ep = make_eval_patient(fam, s, fs=250.0, patch_len=25, ctx_patches=12, hor_patches=10, rest_s=30.0, probe_s=120.0,
                       cal_s=40.0, n_test=16, hidden_s=20.0)
torch.manual_seed(1000 + k)
e0 = infer_embedding(model, ep.series(0).data, ep.session.positions)
ser = ep.series(amount)
if amount > 0:
    res = adapt(model, ser, mode="full", steps=300, lr=1e-4, seed=k, patient_init=e0, batch_size=8, max_channels=8)
    m, emb, fc = res.model, res.embedding, res.forecaster
else:
    from loops.bench.surrogate import _forecaster
    m, emb, fc = model, e0, _forecaster(cfg, ep.series(0))
off = torch.as_tensor(FEATURES_OFF)[None, None].expand(len(ep.ctx), 10, -1)
on_p = bfm_predict(m, emb, ep.session.positions, ep.ctx, ep.stim, fc)[0]
of_p = bfm_predict(m, emb, ep.session.positions, ep.ctx, off, fc)[0]
ctx_n = _norm(ep.ctx, ep.ctx).astype(np.float64)
base_uni = linear_forecast(torch.from_numpy(ctx_n).float(), torch.as_tensor(fc)[None]).numpy()
y_on, y_off = _norm(ep.ctx, ep.fut), _norm(ep.ctx, ep.cf_fut)
x = ser.data.astype(np.float64); C = x.shape[0]
segs = off_segments(ser.off_mask(125), 550)
st = [a2 for a, b in segs for a2 in range(a, b - 550 + 1, 2)]
w = np.stack([x[:, a:a + 550] for a in st]); c = w[..., :300]
mu, sd = c.mean(-1, keepdims=True), np.maximum(c.std(-1, keepdims=True), 1e-3)
cw, fw = (c - mu) / sd, (w[..., 300:] - mu) / sd
xs = x[:, ser.off_mask(125)]; xs = (xs - xs.mean(1, keepdims=True)) / xs.std(1, keepdims=True)
U = np.linalg.svd(xs @ xs.T / xs.shape[1])[0]
out = {"family": fam, "seed": s, "n_windows": len(st)}
def score(bo, bf):
    d = {}
    for ms in (40, 160):
        l = int(ms * 0.25) - 1
        y = np.r_[y_on[..., l], y_off[..., l]]
        d[ms] = {"pooled": r2(y, np.r_[on_p[..., l] - base_uni[..., l] + bo[..., l], of_p[..., l] - base_uni[..., l] + bf[..., l]]),
                 "off_base": r2(y_off[..., l], bf[..., l])}
    return d
out["uni"] = score(base_uni, base_uni)
for K in (0, 4, 8):
    P = U[:, :K].T
    pc_tr = np.einsum("kc,nct->nkt", P, cw[..., -75:])[..., ::-3].reshape(len(cw), -1) if K else np.zeros((len(cw), 0))
    pc_te = np.einsum("kc,nct->nkt", P, ctx_n[..., -75:])[..., ::-3].reshape(len(ctx_n), -1) if K else np.zeros((len(ctx_n), 0))
    def feats(win, ch):
        pcs = pc_tr if win is cw else pc_te
        return np.concatenate([win[:, ch, -75:][:, ::-1], pcs, np.ones((len(win), 1))], 1)
    for lam in (1e-3, 1e-2, 1e-1):
        base = np.zeros_like(base_uni)
        for ch in range(C):
            A = feats(cw, ch); G = A.T @ A; G += lam * np.trace(G) / len(G) * np.eye(len(G))
            Wt = np.linalg.solve(G, A.T @ fw[:, ch, :])  # (F, 250)
            base[:, ch] = feats(ctx_n, ch) @ Wt
        out[f"K{K}_l{lam:g}"] = score(base, base)
print(json.dumps(out))
