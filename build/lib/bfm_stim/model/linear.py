"""The linear forecaster: a per-patient, per-channel direct multi-horizon predictor of ongoing
(stimulation-off) activity, fitted in closed form from the patient's own data.

The BFM's network predicts what the linear part cannot: the response to stimulation and the
nonlinear remainder. The forecaster is the best linear predictor of sample ``t + h`` from the last
``lags`` samples, for every ``h`` in the horizon at once, solved from the channel's autocovariance
(Yule–Walker normal equations, ridge-regularised). Autocovariances come from an FFT, so fitting a
patient is milliseconds, and only stimulation-off stretches enter it.

Units: everything is in per-channel normalised signal (zero mean, unit variance), as the model sees
it; the forecaster is applied to a context normalised by its own statistics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ValidationError

__all__ = ["off_segments", "autocovariance", "fit_forecaster", "linear_forecast"]


def off_segments(off: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Runs of True in ``off`` (T,) at least ``min_len`` samples long, as (start, stop) pairs."""
    off = np.asarray(off, bool)
    if not off.any():
        return []
    d = np.diff(np.r_[0, off.astype(np.int8), 0])
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops) if b - a >= min_len]


def autocovariance(x: np.ndarray, max_lag: int, segments: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Autocovariance of each channel at lags 0..max_lag, pooled over segments.

    Each segment is demeaned and scaled by the pooled standard deviation, so the result is an
    autocorrelation (lag 0 = 1). Lag products are summed over segments and divided by the total
    number of samples (the biased, always positive-definite estimate).

    Args:
        x: (C, T) signal.
        max_lag: largest lag, samples.
        segments: (start, stop) stretches to use (default: all of x).

    Returns: (C, max_lag + 1) float64.
    """
    x = np.asarray(x, np.float64)
    segs = segments if segments is not None else [(0, x.shape[1])]
    if not segs:
        raise ValidationError("segments", segs, "at least one stimulation-off stretch")
    acc = np.zeros((x.shape[0], max_lag + 1))
    n = 0
    var = np.zeros(x.shape[0])
    for a, b in segs:
        s = x[:, a:b] - x[:, a:b].mean(1, keepdims=True)
        nfft = 1 << int(np.ceil(np.log2(2 * s.shape[1] + 1)))
        f = np.fft.rfft(s, nfft)
        ac = np.fft.irfft(f * f.conj(), nfft)[:, : max_lag + 1]
        k = min(max_lag + 1, s.shape[1])
        acc[:, :k] += ac[:, :k]
        var += (s**2).sum(1)
        n += s.shape[1]
    var = np.maximum(var / max(n, 1), 1e-12)
    return acc / max(n, 1) / var[:, None]


def fit_forecaster(data: np.ndarray, *, lags: int, horizon: int, off: np.ndarray | None = None,
                   ridge: float = 1e-2) -> np.ndarray:
    """Direct multi-horizon linear predictor per channel.

    ``pred[c, h] = Σ_l coef[c, l, h] · x[c, t - 1 - l]`` predicts ``x[c, t + h]`` (h = 0..horizon-1)
    from the last ``lags`` samples (``l = 0`` the newest).

    Args:
        data: (C, T) signal (any units; each channel is standardised).
        lags: history length, samples.
        horizon: samples ahead.
        off: optional (T,) bool, True where no stimulation acts; only such stretches of at least
            ``lags + horizon`` samples are used (shorter ones too when no long one exists).
        ridge: Tikhonov weight added to the autocorrelation matrix diagonal (relative to lag 0).

    Returns: (C, lags, horizon) float32.

    Raises:
        ValidationError: no stimulation-off data or too short.
    """
    x = np.asarray(data, np.float64)
    if x.ndim != 2:
        raise ValidationError("data", x.shape, "(C, T)")
    if off is None:
        segs = [(0, x.shape[1])]
    else:
        segs = off_segments(off, lags + horizon) or off_segments(off, lags + 1)
    if not segs or sum(b - a for a, b in segs) < 2 * lags:
        raise ValidationError("data", x.shape, f"at least {2 * lags} stimulation-off samples to fit the forecaster")
    r = autocovariance(x, lags + horizon, segs)  # (C, lags + horizon + 1)
    i = np.arange(lags)
    R = r[:, np.abs(i[:, None] - i[None, :])]  # (C, lags, lags) Toeplitz
    R = R + ridge * np.eye(lags)[None]
    # cross-covariance of x[t-1-l] with x[t+h]: lag h + l + 1
    rhs = r[:, i[:, None] + np.arange(horizon)[None, :] + 1]  # (C, lags, horizon)
    return np.linalg.solve(R, rhs).astype(np.float32)


def linear_forecast(ctx: Tensor, coef: Tensor) -> Tensor:
    """Apply forecasters to normalised contexts.

    Args:
        ctx: (..., C, T_ctx) normalised contexts, T_ctx >= lags.
        coef: (..., C, lags, H) coefficients (broadcast over leading axes).

    Returns: (..., C, H) forecast in the same normalised units.
    """
    lags = coef.shape[-2]
    if ctx.shape[-1] < lags:
        raise ValidationError("context", tuple(ctx.shape), f"at least {lags} samples for the linear forecaster")
    hist = ctx[..., -lags:].flip(-1)  # newest first
    return torch.matmul(hist.unsqueeze(-2), coef.to(ctx.dtype)).squeeze(-2)
