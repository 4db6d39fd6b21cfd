"""Data and baselines of the surrogate benchmark: evaluation-cohort sessions with held-out test
trials (and their counterfactuals), a per-patient ridge ARX model, persistence, and the metrics.

Everything is at the model rate (250 Hz) and normalised per window by its context statistics, as
the BFM sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bfm_stim.model.data import PatientSeries, patch_stimulus
from bfm_stim.model.evaluate import forecast_r2, r2  # noqa: F401  (re-exported: the benchmarks import them from here)
from bfm_stim.space import Stimulus
from bfm_stim.stim_features import features_of
from loops.pretrain_corpus import FEATURES_OFF, resample_to

__all__ = ["EvalPatient", "make_eval_patient", "state_oracle", "TEST_KINDS", "ArxModel", "r2", "forecast_r2"]

TEST_KINDS = ("in_dist", "amplitude", "frequency", "contact")
TRAIN_AMP_U, TRAIN_FREQ_U = 0.6, 0.75  # adaptation probes stay below these unit coordinates


@dataclass
class EvalPatient:
    """One evaluation patient: a session (rest, then probes) and held-out test windows.

    Attributes:
        session: rest_s of rest, then probe trials, then a calibration stretch, at ``fs``.
        probe_start: first sample of the probe part (= rest samples).
        cal_start: first sample of the calibration stretch (never used for adaptation).
        ctx, stim, fut: test windows: contexts (M, C, Tc) µV, per-patch stimulus (M, H, F), futures (M, C, Th) µV.
        cf_fut: counterfactual futures of the stimulated windows (same noise, no stimulus) (M, C, Th) µV.
        kinds: (M,) test category per window (one of TEST_KINDS).
        rest_data, rest_hidden: a stimulation-off run (C, T) µV and its hidden sources at the patch ends (P, S).
        meta: id, family, seed, regime, n_channels.
        oracle_fut, oracle_cf: the state oracle's forecasts of ``fut`` and ``cf_fut`` (M, C, Th) µV, or None:
            the mean of independent noise continuations of each test trial from its true state at onset
            (:func:`state_oracle`): the metrics' ceiling, the best forecast a model of the observations can make.
    """

    session: PatientSeries
    probe_start: int
    cal_start: int
    ctx: torch.Tensor
    stim: torch.Tensor
    fut: torch.Tensor
    cf_fut: torch.Tensor
    kinds: list[str]
    rest_data: np.ndarray
    rest_hidden: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    oracle_fut: torch.Tensor | None = None
    oracle_cf: torch.Tensor | None = None

    def series(self, amount_s: float) -> PatientSeries:
        """Adaptation data: the rest plus the first ``amount_s`` seconds of probes."""
        s = self.session
        end = self.probe_start + int(round(amount_s * self._fs))
        return PatientSeries(s.data[:, :end], s.positions, s.stim_ids[:end], s.stim_table, self.probe_start,
                             -1, -1, s.meta)

    @property
    def _fs(self) -> float:
        return float(self.meta["fs"])


def _probe(space: Any, rng: np.random.Generator, kind: str, sensory_ok: bool) -> Stimulus:
    n_c = len(space.contacts)
    if kind == "in_dist" and sensory_ok and rng.random() < 0.2:
        return Stimulus.sensory(modality=str(rng.choice(["visual_flicker", "auditory_clicks"])),
                                frequency_hz=float(rng.uniform(2.0, 60.0)), level=float(rng.uniform(0.2, 1.0)),
                                duration_s=1.0)
    contact = int(rng.integers(max(n_c - 1, 1)))
    amp, freq = rng.uniform(0.1, TRAIN_AMP_U), rng.uniform(0.0, TRAIN_FREQ_U)
    if kind == "amplitude":
        amp = rng.uniform(0.75, 1.0)
    elif kind == "frequency":
        freq = rng.uniform(0.85, 1.0)
    elif kind == "contact":
        contact = n_c - 1
    u = np.array([[contact / max(n_c - 1, 1), amp, freq, rng.uniform(0.1, 0.9)]])
    return space.project_safe(space.from_unit(torch.as_tensor(u, dtype=torch.float64))[0])


def make_eval_patient(family: str, seed: int, *, fs: float, patch_len: int, ctx_patches: int, hor_patches: int,
                      rest_s: float, probe_s: float, cal_s: float, n_test: int, hidden_s: float = 30.0,
                      rng_seed: int = 0, oracle_branches: int = 0) -> EvalPatient:
    """Simulate one evaluation patient: session, test trials with counterfactuals, a hidden-state run,
    and with ``oracle_branches`` > 0 the state oracle's forecasts of the test trials (:func:`state_oracle`)."""
    import simulators

    p = simulators.make(family, seed=seed, cohort="eval")
    space = p.stimulus_space()
    contacts = {c.name: c for c in space.contacts}
    rng = np.random.default_rng([rng_seed, seed])
    fs_in = float(p.fs)
    table, chunks, ids = [FEATURES_OFF], [], []
    p.reset()
    n_rest = int(round(rest_s * fs_in))
    chunks.append(p.advance(n_rest))
    ids.append(np.zeros(n_rest, np.int32))
    t_probe = 0.0
    while t_probe < probe_s + cal_s:
        stim = _probe(space, rng, "in_dist", True)
        try:
            p.start_stimulation(stim)
        except Exception:  # noqa: BLE001 - a sensory probe the family refuses: use an electrical one
            stim = _probe(space, rng, "in_dist", False)
            p.start_stimulation(stim)
        table.append(features_of([stim], contacts)[0].numpy())
        for n, k in ((int(fs_in), len(table) - 1), (int(3 * fs_in), 0)):
            chunks.append(p.advance(n))
            ids.append(np.full(n, k, np.int32))
        p.stop_stimulation()
        t_probe += 4.0
    data = resample_to(np.concatenate(chunks, 1), fs_in, fs)
    sid = np.concatenate(ids)[np.minimum((np.arange(data.shape[1]) * fs_in / fs).astype(int), len(np.concatenate(ids)) - 1)]
    pos = np.asarray(p.channel_positions, np.float32)
    meta = {"id": p.id, "family": family, "seed": int(seed), "regime": p.regime, "n_channels": p.n_channels, "fs": fs}
    session = PatientSeries(data, pos, sid.astype(np.int32), np.stack(table).astype(np.float32),
                            int(rest_s * fs), -1, -1, meta)
    probe_start = int(rest_s * fs)
    # test trials: context ending at onset, 1 s train, counterfactual with the same noise
    from simulators import simulate_batch

    kinds = [TEST_KINDS[i % len(TEST_KINDS)] for i in range(n_test)]
    stims = [_probe(space, rng, k, True) for k in kinds]
    for i, s in enumerate(stims):
        try:
            p.check(s)
        except Exception:  # noqa: BLE001
            stims[i] = _probe(space, rng, kinds[i], False)
    ctx_s, hor_s, lead_s = ctx_patches * patch_len / fs, hor_patches * patch_len / fs, 2.0
    dur = lead_s + ctx_s + hor_s
    trials = list(range(10_000, 10_000 + n_test))
    on = simulate_batch([p] * n_test, stims, dur, onset_s=lead_s + ctx_s, trials=trials)
    off = simulate_batch([p] * n_test, [None] * n_test, dur, onset_s=lead_s + ctx_s, trials=trials)
    c = p.n_channels
    x_on = resample_to(on.data[:, :c].numpy().reshape(-1, on.data.shape[-1]), fs_in, fs).reshape(n_test, c, -1)
    x_off = resample_to(off.data[:, :c].numpy().reshape(-1, off.data.shape[-1]), fs_in, fs).reshape(n_test, c, -1)
    a = int(round(lead_s * fs))
    b = a + ctx_patches * patch_len
    e = b + hor_patches * patch_len
    feats = features_of(stims, contacts).numpy()
    stim_t = np.repeat(feats[:, None, :], hor_patches, 1)
    # hidden-state run (stimulation off), hidden sources sampled at the end of every patch
    hid = simulate_batch([p], [None], hidden_s, trials=[20_000], hidden=True)
    rest_data = resample_to(hid.data[0, :c].numpy(), fs_in, fs)
    n_p = rest_data.shape[1] // patch_len
    step = int(round(patch_len * fs_in / fs))
    h = hid.hidden[0].numpy()[:, : len(p.source_names)]
    rest_hidden = h[np.arange(1, n_p + 1) * step - 1]
    ep = EvalPatient(session, probe_start, probe_start + int(probe_s * fs),
                     torch.from_numpy(x_on[..., a:b]).float(), torch.from_numpy(stim_t).float(),
                     torch.from_numpy(x_on[..., b:e]).float(), torch.from_numpy(x_off[..., b:e]).float(),
                     kinds, rest_data, rest_hidden, meta)
    if oracle_branches > 0:
        o_on, o_off = state_oracle(p, stims, trials, dur, lead_s + ctx_s, oracle_branches, fs)
        ep.oracle_fut = torch.from_numpy(o_on[..., b:e]).float()
        ep.oracle_cf = torch.from_numpy(o_off[..., b:e]).float()
    return ep


ORACLE_TRIAL0 = 1_000_000  # first noise realization of the oracle's continuations (disjoint from the test trials)


def state_oracle(p: Any, stims: list[Stimulus], trials: list[int], duration_s: float, onset_s: float,
                 n_branches: int, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """The best forecast of each test trial that knows the simulator's full state at onset.

    Trial ``i`` (with ``stims[i]`` from ``onset_s``, and its no-stimulation counterfactual) is run
    ``n_branches`` times with the trial's own noise up to ``onset_s`` and independent noise after it
    (:func:`simulators.simulate_batch` with ``branch_s``); the mean over branches estimates
    E[future | state at onset, stimulus], the minimum-MSE forecast. A model of the observations cannot
    beat it in expectation, so its R² is the ceiling of the forecast metrics — up to one leak: the
    test contexts are cut from the trial resampled whole, and the anti-aliasing filter (±40 ms at
    1 kHz) puts a faint trace of the first 40 ms after onset into their last samples (measured on 5
    eval patients: contexts resampled from the pre-onset samples alone moved zero-shot R² by at most
    0.02, with no consistent sign). Its finite-sample noise lowers its R² by about
    (1 - R²) / n_branches. Paired branches (same noise with and without the stimulus) give the
    stimulation effect's conditional mean.

    Returns:
        (on, off): (M, C, T) µV at ``fs``, the mean continuation with and without the stimulus;
        before ``onset_s`` equal to the trial itself (up to the resampling filter's reach).
    """
    from simulators import simulate_batch

    m, k = len(stims), int(n_branches)
    rows = [(i, j) for i in range(m) for j in range(k)]
    branch = [ORACLE_TRIAL0 + i * k + j for i, j in rows]
    out = []
    for stim_of in (lambda i: stims[i], lambda i: None):
        res = simulate_batch([p] * len(rows), [stim_of(i) for i, _ in rows], duration_s, onset_s=onset_s,
                             trials=[trials[i] for i, _ in rows], branch_s=onset_s, branch_trials=branch)
        c = p.n_channels
        x = res.data[:, :c].numpy()
        x = resample_to(x.reshape(-1, x.shape[-1]), float(p.fs), fs).reshape(m, k, c, -1)
        out.append(x.mean(1))
    return out[0], out[1]


class ArxModel:
    """Per-channel ridge ARX: ``y_t = Σ_l a_l y_{t-l} + b·u_t + c`` with ``n_lags`` lags and the stimulus
    features ``u_t`` as input, fitted in closed form on globally normalised data, rolled out recursively.

    Args:
        n_lags: history, samples (75 = 300 ms at 250 Hz).
        ridge: ridge penalty relative to the mean diagonal of the Gram matrix.
        max_rows: time points used for the fit (random subset).
    """

    def __init__(self, n_lags: int = 75, ridge: float = 1e-3, max_rows: int = 20_000) -> None:
        self.n_lags, self.ridge, self.max_rows = n_lags, ridge, max_rows

    def fit(self, s: PatientSeries, patch_len: int, seed: int = 0) -> "ArxModel":
        x = s.data.astype(np.float64)
        self.mean, self.std = x.mean(1, keepdims=True), np.maximum(x.std(1, keepdims=True), 1e-3)
        x = (x - self.mean) / self.std
        u = s.stim_table[s.stim_ids].astype(np.float64)  # (T, F)
        t = np.arange(self.n_lags, x.shape[1])
        if len(t) > self.max_rows:
            t = np.sort(np.random.default_rng(seed).choice(t, self.max_rows, replace=False))
        lags = np.stack([x[:, t - l] for l in range(1, self.n_lags + 1)], -1)  # (C, N, n_lags)
        reg = np.concatenate([lags, np.broadcast_to(u[t], (x.shape[0],) + u[t].shape),
                              np.ones(lags.shape[:2] + (1,))], -1)
        g = np.matmul(reg.transpose(0, 2, 1), reg)  # (C, K, K), batched BLAS
        lam = self.ridge * np.trace(g, axis1=1, axis2=2)[:, None, None] / g.shape[-1]
        rhs = np.matmul(reg.transpose(0, 2, 1), x[:, t, None])[..., 0]
        self.coef = np.linalg.solve(g + lam * np.eye(g.shape[-1]), rhs[..., None])[..., 0]  # (C, K)
        return self

    def predict(self, ctx: np.ndarray, stim: np.ndarray, patch_len: int) -> np.ndarray:
        """Roll out from contexts (M, C, Tc) µV under per-patch stimulus (M, H, F) → (M, C, H*L),
        normalised by each context's own statistics (as the other methods' forecasts are).

        The model runs in the units it was fitted in (the fit's global normalisation)."""
        ctx = np.asarray(ctx, np.float64)
        ctx_n = (ctx - self.mean[None]) / self.std[None]
        m, c, _ = ctx_n.shape
        u = np.repeat(stim, patch_len, axis=1)  # (M, T, F)
        a, b, k = self.coef[:, : self.n_lags], self.coef[:, self.n_lags:-1], self.coef[:, -1]
        hist = list(ctx_n[..., -self.n_lags:][..., ::-1].transpose(2, 0, 1))  # newest first, each (M, C)
        out = np.empty((m, c, u.shape[1]))
        for i in range(u.shape[1]):
            h = np.stack(hist[: self.n_lags], -1)  # (M, C, n_lags)
            y = np.einsum("mcl,cl->mc", h, a) + u[:, i] @ b.T + k
            out[..., i] = y
            hist.insert(0, y)
        out = out * self.std[None] + self.mean[None]  # back to µV, then the context's normalisation
        mu, sd = ctx.mean(-1, keepdims=True), np.maximum(ctx.std(-1, ddof=1, keepdims=True), 1e-3)
        return (out - mu) / sd
