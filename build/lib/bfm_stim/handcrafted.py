"""Hand-crafted features of signal windows: the baseline every latent decoder is compared with.

What the DBS and EEG feature-extraction tools compute per channel (py_neuromodulation's band powers
and time-domain features, MNE-features' Hjorth parameters): log band power in the standard bands
(Hann-windowed Welch, µV²/Hz), line length, and the Hjorth activity, mobility and complexity.

Example:
    >>> F = handcrafted_features(X, fs=250.0)                # X: (N, C, T) µV  ->  (N, C * 11)  # doctest: +SKIP
    >>> F = handcrafted_features(X, fs=250.0, channel_mean=True)    # (N, 11): montage-independent
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bfm_stim.exceptions import ValidationError

__all__ = ["FEATURE_NAMES", "handcrafted_features", "feature_names"]

#: Bands, Hz: delta, theta, alpha, low beta, high beta, gamma, high gamma (where fs allows).
BANDS: tuple[tuple[float, float], ...] = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 20.0), (20.0, 30.0),
                                          (30.0, 45.0), (55.0, 95.0))
BAND_LABELS = ("delta", "theta", "alpha", "low_beta", "high_beta", "gamma", "high_gamma")
TIME_FEATURES = ("line_length", "hjorth_activity", "hjorth_mobility", "hjorth_complexity")
FEATURE_NAMES = BAND_LABELS + TIME_FEATURES


def _bands(fs: float, bands: Sequence[tuple[float, float]]) -> list[int]:
    return [i for i, (_, hi) in enumerate(bands) if hi <= fs / 2]


def feature_names(ch_names: Sequence[str], fs: float, *, channel_mean: bool = False) -> list[str]:
    """Column names of :func:`handcrafted_features` (``"<channel>:<feature>"``)."""
    names = [BAND_LABELS[i] for i in _bands(fs, BANDS)] + list(TIME_FEATURES)
    return names if channel_mean else [f"{c}:{n}" for c in ch_names for n in names]


def handcrafted_features(X: np.ndarray, fs: float, *, channel_mean: bool = False,
                         nperseg_s: float = 0.5) -> np.ndarray:
    """Band powers and time-domain features per channel of each window.

    Args:
        X: (N, C, T) windows, µV.
        fs: sampling rate, Hz.
        channel_mean: average each feature over channels (montage-independent: for cross-patient use).
        nperseg_s: Welch segment length, s (capped at the window).

    Returns: (N, C * F) or (N, F) with F = bands below fs/2 + 4, in :func:`feature_names` order;
    powers and the Hjorth activity as log10 (µV²/Hz and µV²), line length in µV per sample.
    """
    from scipy.signal import welch

    x = np.asarray(X, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] < 8:
        raise ValidationError("X", x.shape, "windows (N, C, T >= 8 samples) µV")
    if not np.isfinite(x).all():
        raise ValidationError("X", "non-finite samples", "finite µV values")
    keep = _bands(fs, BANDS)
    f, p = welch(x, fs=fs, nperseg=min(x.shape[-1], max(8, int(nperseg_s * fs))), axis=-1)
    cols = []
    for i in keep:
        lo, hi = BANDS[i]
        sel = (f >= lo) & (f <= hi)
        if not sel.any():
            sel = np.abs(f - (lo + hi) / 2) == np.abs(f - (lo + hi) / 2).min()
        cols.append(np.log10(p[..., sel].mean(-1) + 1e-12))
    d1 = np.diff(x, axis=-1)
    d2 = np.diff(d1, axis=-1)
    v0, v1, v2 = x.var(-1) + 1e-12, d1.var(-1) + 1e-12, d2.var(-1) + 1e-12
    mob = np.sqrt(v1 / v0)
    comp = np.sqrt(v2 / v1) / mob
    cols += [np.abs(d1).mean(-1), np.log10(v0), mob, comp]
    F = np.stack(cols, axis=-1)  # (N, C, F)
    return F.mean(1) if channel_mean else F.reshape(F.shape[0], -1)
