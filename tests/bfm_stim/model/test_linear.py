"""The linear forecaster: Yule–Walker direct multi-horizon fit, off-stretch masking, application."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from bfm_stim.exceptions import ValidationError
from bfm_stim.model.data import sample_batch
from bfm_stim.model.linear import autocovariance, fit_forecaster, linear_forecast, off_segments

AR = [1.0, -1.6, 0.8]  # x_t = 1.6 x_{t-1} - 0.8 x_{t-2} + e_t (poles at modulus sqrt(0.8))


def _ar2(n: int, seed: int, n_chan: int = 1) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(n_chan, n + 2000))
    return lfilter([1.0], AR, e, axis=-1)[:, 2000:]  # burn-in dropped


def _theoretical_r2(horizon: int) -> np.ndarray:
    """R² of the optimal h-step predictor: 1 - Σ_{j<h} ψ_j² / Σ_j ψ_j² (ψ the impulse response)."""
    psi = lfilter([1.0], AR, np.r_[1.0, np.zeros(2000)])
    tot = (psi**2).sum()
    return np.array([1.0 - (psi[:h + 1] ** 2).sum() / tot for h in range(horizon)])


def _held_out_r2(y: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """R² per horizon step of coef (lags, H) on the series y (T,)."""
    lags, hor = coef.shape
    w = sliding_window_view(y, lags + hor)
    hist, fut = w[:, :lags][:, ::-1], w[:, lags:]
    pred = hist @ coef.astype(np.float64)
    return 1.0 - ((fut - pred) ** 2).mean(0) / fut.var(0)


# ------------------------------------------------------------------------------- helpers
def test_off_segments_and_autocovariance():
    off = np.zeros(30, bool)
    off[2:5] = off[10:20] = off[25:] = True
    assert off_segments(off, 3) == [(2, 5), (10, 20), (25, 30)]
    assert off_segments(off, 5) == [(10, 20), (25, 30)]
    assert off_segments(np.zeros(5, bool), 1) == []
    x = _ar2(5000, seed=3, n_chan=2)
    r = autocovariance(x, 4)
    assert r.shape == (2, 5)
    np.testing.assert_allclose(r[:, 0], 1.0, atol=1e-12)  # an autocorrelation
    # AR(2) autocorrelation: rho1 = a1 / (1 - a2) = 1.6 / 1.8
    np.testing.assert_allclose(r[:, 1], 1.6 / 1.8, atol=0.03)


# ------------------------------------------------------------------------------- (a) AR(2)
def test_ar2_coefficients_approach_the_true_process():
    x = _ar2(20000, seed=0)
    coef = fit_forecaster(x, lags=10, horizon=3, ridge=1e-6)
    assert coef.shape == (1, 10, 3) and coef.dtype == np.float32
    c = coef[0].astype(np.float64)
    # one step: (1.6, -0.8, 0, ...)
    np.testing.assert_allclose(c[:2, 0], [1.6, -0.8], atol=0.05)
    assert np.abs(c[2:, 0]).max() < 0.05
    # two steps, iterating the recursion: x_{t+2} ≈ 1.76 x_t - 1.28 x_{t-1}
    np.testing.assert_allclose(c[:2, 1], [1.6 * 1.6 - 0.8, -1.6 * 0.8], atol=0.08)
    assert np.abs(c[2:, 1]).max() < 0.08


def test_ar2_held_out_r2_matches_theory():
    horizon = 10
    x, y = _ar2(20000, seed=1), _ar2(20000, seed=2)
    coef = fit_forecaster(x, lags=20, horizon=horizon)  # default ridge
    r2 = _held_out_r2(y[0], coef[0])
    th = _theoretical_r2(horizon)
    assert th[0] > 0.9 and th[-1] < 0.2  # the test spans easy and hard horizons
    np.testing.assert_allclose(r2, th, atol=0.03)
    # R² falls with the horizon at first, as the theory says
    assert r2[0] > r2[1] > r2[2] > r2[3]


# ------------------------------------------------------------------------------- (b) off mask
def test_masked_artifact_stretch_is_ignored():
    t, lags, hor = 20000, 20, 5
    clean = _ar2(t, seed=4, n_chan=2)
    art = clean.copy()
    a, b = 8000, 10000
    art[:, a:b] += 1e4 * np.sin(2 * np.pi * 0.05 * np.arange(b - a))
    off = np.ones(t, bool)
    off[a:b] = False

    masked = fit_forecaster(art, lags=lags, horizon=hor, off=off)
    # exactly the fit that never sees the stretch: replace it by anything, same mask
    other = clean.copy()
    other[:, a:b] = np.random.default_rng(9).normal(size=(2, b - a)) * 1e3
    np.testing.assert_allclose(masked, fit_forecaster(other, lags=lags, horizon=hor, off=off), atol=1e-6)
    # the two clean halves fitted on their own (pooled the same way) give the same answer
    pooled_ref = fit_forecaster(np.concatenate([clean[:, :a], clean[:, b:]], 1), lags=lags, horizon=hor)
    np.testing.assert_allclose(masked, pooled_ref, atol=0.05)
    # and it is close to the fit on clean data everywhere
    np.testing.assert_allclose(masked, fit_forecaster(clean, lags=lags, horizon=hor), atol=0.05)

    unmasked = fit_forecaster(art, lags=lags, horizon=hor)
    assert np.abs(unmasked - masked).max() > 0.3
    # the unmasked fit predicts held-out clean data much worse
    y = _ar2(10000, seed=5)[0]
    assert _held_out_r2(y, masked[0])[0] > 0.9
    assert _held_out_r2(y, unmasked[0])[0] < _held_out_r2(y, masked[0])[0] - 0.1


def test_short_off_stretches_are_skipped_when_long_ones_exist():
    t, lags, hor = 6000, 10, 5
    x = _ar2(t, seed=6)
    off = np.zeros(t, bool)
    off[:4000] = True
    off[4100:4110] = True  # shorter than lags + horizon: not used
    y = x.copy()
    y[:, 4100:4110] = 1e5
    np.testing.assert_allclose(fit_forecaster(y, lags=lags, horizon=hor, off=off),
                               fit_forecaster(x[:, :4000], lags=lags, horizon=hor), atol=1e-6)


# ------------------------------------------------------------------------------- (c) too little data
@pytest.mark.parametrize("n_off", [0, 30, 60])
def test_too_little_off_data_raises(n_off):
    lags = 50
    x = _ar2(3000, seed=7)
    off = np.zeros(3000, bool)
    off[1000:1000 + n_off] = True  # 60 >= lags + 1 but < 2 * lags
    with pytest.raises(ValidationError, match=rf"at least {2 * lags} stimulation-off samples"):
        fit_forecaster(x, lags=lags, horizon=10, off=off)


def test_too_short_data_or_wrong_shape_raises():
    with pytest.raises(ValidationError, match="stimulation-off samples"):
        fit_forecaster(np.zeros((2, 30)), lags=20, horizon=5)
    with pytest.raises(ValidationError, match=r"\(C, T\)"):
        fit_forecaster(np.zeros(300), lags=20, horizon=5)


# ------------------------------------------------------------------------------- (d) application
def test_linear_forecast_broadcasts_and_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    b, c, t, lags, h = 3, 4, 40, 7, 5
    ctx = torch.randn(b, c, t, generator=g)
    coef = torch.randn(c, lags, h, generator=g)
    cn, xn = coef.numpy().astype(np.float64), ctx.numpy().astype(np.float64)
    ref = np.zeros((b, c, h))
    for i in range(b):
        for j in range(c):
            for k in range(h):
                ref[i, j, k] = sum(cn[j, l, k] * xn[i, j, t - 1 - l] for l in range(lags))
    ref = torch.from_numpy(ref).float()
    out = linear_forecast(ctx, coef)
    assert out.shape == (b, c, h)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # per-window coefficients (B, C, lags, H), and the leading axis of the coefficients broadcast
    coef_b = torch.randn(b, c, lags, h, generator=g)
    out_b = linear_forecast(ctx, coef_b)
    for i in range(b):
        torch.testing.assert_close(out_b[i], linear_forecast(ctx[i], coef_b[i]))
    torch.testing.assert_close(linear_forecast(ctx, coef[None]), out)
    # only the last `lags` samples matter
    ctx2 = ctx.clone()
    ctx2[..., : t - lags] = 1e3
    torch.testing.assert_close(linear_forecast(ctx2, coef), out)
    # numpy coefficients of a fit (float32) apply to float64 contexts too
    assert linear_forecast(ctx.double(), coef).dtype == torch.float64
    with pytest.raises(ValidationError, match=f"at least {lags} samples"):
        linear_forecast(ctx[..., : lags - 1], coef)


# ------------------------------------------------------------------------------- (e) batches
def _expected_base(batch, coefs: list[np.ndarray], n_ctx: int, L: int) -> torch.Tensor:
    ctx = batch.x[..., : n_ctx * L]
    mean = ctx.mean(-1, keepdim=True)
    std = ctx.std(-1, keepdim=True).clamp_min(1e-3)  # as compute_losses normalises
    xn = (ctx - mean) / std
    out = torch.zeros_like(batch.base)
    for i, coef in enumerate(coefs):
        c = coef.shape[0]
        out[i, :c] = linear_forecast(xn[i, :c], torch.from_numpy(coef))
    return out


def test_sample_batch_fills_the_linear_base(make_series):
    n_ctx, n_hor, L, lags = 12, 4, 25, 50
    series = make_series()
    for s in series:
        s.with_forecaster(lags, n_hor * L + 20, fs=250.0)  # longer than needed: cut to the horizon
        assert s.forecaster.shape == (s.data.shape[0], lags, n_hor * L + 20)
    batch = sample_batch(series, 8, n_ctx=n_ctx, n_hor=n_hor, patch_len=L, rng=np.random.default_rng(0))
    assert batch.base is not None and batch.base.shape == (8, 6, n_hor * L)
    # series i is patient i, with 3 + i channels
    coefs = [series[int(p)].forecaster[:, :, : n_hor * L] for p in batch.patient]
    assert all(c.shape[0] == int(v) for c, v in zip(coefs, batch.valid.sum(1)))
    exp = _expected_base(batch, coefs, n_ctx, L)
    torch.testing.assert_close(batch.base, exp, rtol=1e-4, atol=1e-4)
    assert torch.all(batch.base[~batch.valid] == 0)
    assert batch.base[batch.valid].abs().max() > 0


def test_sample_batch_base_follows_the_channel_subset(make_series):
    n_ctx, n_hor, L, lags = 12, 4, 25, 50
    series = make_series(2, seed=1)
    for s in series:
        s.with_forecaster(lags, n_hor * L, fs=250.0)
        # make each channel's forecaster distinct, so a channel mix-up would show
        s.forecaster = s.forecaster * (1.0 + np.arange(s.data.shape[0], dtype=np.float32))[:, None, None]
    batch = sample_batch(series, 6, n_ctx=n_ctx, n_hor=n_hor, patch_len=L, rng=np.random.default_rng(1),
                         max_channels=2)
    win = (n_ctx + n_hor) * L
    coefs = []
    for i in range(6):
        s = series[int(batch.patient[i])]
        rows = []
        for j in range(2):  # find which channel of the series each batch row is
            x = batch.x[i, j].numpy()
            hits = [ch for ch in range(s.data.shape[0])
                    if (sliding_window_view(s.data[ch], win) == x).all(1).any()]
            assert len(hits) == 1
            rows.append(hits[0])
        assert rows == sorted(rows)
        coefs.append(s.forecaster[rows])
    torch.testing.assert_close(batch.base, _expected_base(batch, coefs, n_ctx, L), rtol=1e-4, atol=1e-4)


def test_sample_batch_without_forecasters_has_no_base_and_short_ones_raise(make_series):
    from bfm_stim.exceptions import ModelError

    series = make_series(2)
    b = sample_batch(series, 2, n_ctx=12, n_hor=4, patch_len=25, rng=np.random.default_rng(0))
    assert b.base is None
    for s in series:
        s.with_forecaster(50, 60, fs=250.0)
    with pytest.raises(ModelError, match="horizon needs 100"):
        sample_batch(series, 2, n_ctx=12, n_hor=4, patch_len=25, rng=np.random.default_rng(0))


def test_off_mask_guards_after_stimulation(make_series):
    s = make_series(1)[0]  # stimuli at 1000:1250 and 2000:2250
    m = s.off_mask(10)
    assert m[:1000].all() and not m[1000:1260].any() and m[1260:2000].all()
    assert not m[2000:2260].any() and m[2260:].all()
    np.testing.assert_array_equal(s.off_mask(0), s.stim_ids == 0)
