"""Fast biomarkers of the newest window of a stream, for the continuous (adaptive) mode.

The session loop calls a biomarker every control period (100 ms) on the newest window of the
received stream; the controller (:mod:`loops.session.controller`) turns the value into an
amplitude. :class:`BandPowerBiomarker` is the classic adaptive-DBS biomarker: log10 of the
beta-band (13–30 Hz) power of the DBS-lead LFP. It evaluates a Hann-windowed periodogram at the
band's frequencies only, as one matrix product with a precomputed (window × DFT) matrix, so a
16-channel × 500-sample window costs a few tens of µs (the tests require under 0.5 ms). Its value
equals ``log10`` of the mean over the chosen channels of the mean of
``scipy.signal.welch(x, fs, window="hann", nperseg=n_samples)`` over the band's bins.

Example:
    >>> bio = BandPowerBiomarker(1000.0, band=(13.0, 30.0), channels=[0, 1, 2, 3])
    >>> value = bio(window)          # window: (n_channels, >= 500) µV  ->  log10(µV²/Hz)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
from scipy.signal import get_window

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError

__all__ = ["BandPowerBiomarker", "ExpSmoother", "from_spec", "parse_band_spec"]

log = get_logger("session.biomarker")

_SPEC = re.compile(r"^\s*bandpower\s*:\s*([0-9.]+)\s*-\s*([0-9.]+)\s*(?::\s*(.+))?$", re.IGNORECASE)


class ExpSmoother:
    """Exponential smoothing of a sampled value with a time constant.

    ``y_k = y_{k-1} + a (x_k - y_{k-1})`` with ``a = 1 - exp(-period_s / tau_s)``; ``tau_s = 0``
    passes values through. Non-finite inputs are returned as they are and leave the state alone.

    Args:
        tau_s: Time constant, s (>= 0).
        period_s: Time between updates, s (> 0).
    """

    def __init__(self, tau_s: float, period_s: float) -> None:
        if isinstance(tau_s, bool) or not isinstance(tau_s, (int, float)) or not math.isfinite(tau_s) or tau_s < 0:
            raise ValidationError("smoothing_s", tau_s, "a finite time constant >= 0 s (0: no smoothing)")
        if isinstance(period_s, bool) or not isinstance(period_s, (int, float)) or not (math.isfinite(period_s)
                                                                                        and period_s > 0):
            raise ValidationError("period_s", period_s, "a finite period > 0 s")
        self.tau_s, self.period_s = float(tau_s), float(period_s)
        self.alpha = 1.0 if tau_s == 0 else 1.0 - math.exp(-period_s / tau_s)
        self.value: float | None = None

    def __call__(self, x: float) -> float:
        if not math.isfinite(x):
            return x
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        return self.value

    def reset(self) -> None:
        self.value = None


class BandPowerBiomarker:
    """log10 band power (µV²/Hz) of the newest window, mean over chosen channels.

    Args:
        fs: Sampling rate, Hz.
        band: (low, high) band edges, Hz (inclusive), default beta 13–30 Hz.
        channels: Row indices of the window to use (``None``: all rows).
        window_s: Length of the analysed window, s; the last ``round(window_s * fs)`` samples of
            each call's window are used (0.5 s gives 2 Hz resolution).
        smoothing_s: Exponential smoothing time constant, s (0: none); the smoother advances by
            ``period_s`` per call.
        period_s: Time between calls, s (only used by the smoothing).

    Calling it with ``window`` (n_channels, n_samples) µV, ``n_samples >= window_s * fs``,
    returns a float: ``log10(mean_c mean_{f in band} PSD_c(f))``; ``nan`` when the window holds
    non-finite samples (the caller's health check decides what to do).
    """

    def __init__(self, fs: float, band: tuple[float, float] = (13.0, 30.0), channels: Sequence[int] | None = None,
                 window_s: float = 0.5, *, smoothing_s: float = 0.0, period_s: float = 0.1) -> None:
        if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not (math.isfinite(fs) and fs > 0):
            raise ValidationError("fs", fs, "a finite sampling rate > 0 Hz")
        lo, hi = (float(band[0]), float(band[1])) if len(band) == 2 else (math.nan, math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= fs / 2):
            raise ValidationError("band", band, f"(low, high) Hz with 0 <= low < high <= fs/2 = {fs / 2:g}")
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not math.isfinite(window_s):
            raise ValidationError("window_s", window_s, "a finite window length, s")
        n = int(round(window_s * fs))
        df = fs / max(n, 1)
        if n < 8 or df > (hi - lo):
            raise ValidationError("window_s", window_s,
                                  f"a window of >= 8 samples whose resolution fs/n <= band width {hi - lo:g} Hz")
        if channels is not None:
            channels = [int(c) for c in channels]
            if not channels or any(c < 0 for c in channels):
                raise ValidationError("channels", channels, "a non-empty list of row indices >= 0 (None: all rows)")
        self.fs, self.band, self.window_s, self.n = float(fs), (lo, hi), float(window_s), n
        self.channels = channels
        self._idx = None if channels is None else np.asarray(channels)
        f = np.fft.rfftfreq(n, 1.0 / fs)
        keep = (f >= lo) & (f <= hi)
        self.freqs = f[keep]
        # one-sided density scaling as scipy.signal.welch (Hann, periodic, density, constant detrend)
        w = get_window("hann", n)
        scale = 2.0 / (fs * float((w**2).sum()))
        scale_k = np.full(self.freqs.size, scale)
        scale_k[(self.freqs == 0) | (np.isclose(self.freqs, fs / 2) & (n % 2 == 0))] /= 2.0
        t = np.arange(n)
        ang = 2 * np.pi * np.outer(t, self.freqs) / fs          # (n, k)
        sq = np.sqrt(scale_k)[None, :]
        self._basis = np.concatenate([w[:, None] * np.cos(ang) * sq, w[:, None] * np.sin(ang) * sq], axis=1)  # (n, 2k)
        self._k = self.freqs.size
        self.smoother = ExpSmoother(smoothing_s, period_s)

    @property
    def n_samples(self) -> int:
        """Samples each call needs (its receptive field)."""
        return self.n

    def power(self, window: np.ndarray) -> np.ndarray:
        """Per-channel mean band PSD, µV²/Hz: (n_chosen,) from ``window`` (n_channels, n_samples) µV."""
        x = np.asarray(window)
        if x.ndim != 2:
            raise ValidationError("window.shape", getattr(x, "shape", None), "(n_channels, n_samples)")
        if x.shape[1] < self.n:
            raise ValidationError("window.shape[1]", x.shape[1], f">= {self.n} samples (window_s * fs)")
        x = x[:, -self.n:] if self._idx is None else x[self._idx, -self.n:]
        x = x.astype(np.float64, copy=False)
        x = x - x.mean(axis=1, keepdims=True)
        y = x @ self._basis                                       # (c, 2k)
        return (y[:, :self._k] ** 2 + y[:, self._k:] ** 2).mean(axis=1)

    def __call__(self, window: np.ndarray) -> float:
        """log10 of the mean band power over the chosen channels (smoothed if configured)."""
        p = float(self.power(window).mean())
        v = math.log10(p) if p > 0 and math.isfinite(p) else (-math.inf if p == 0 else math.nan)
        return self.smoother(v)

    def reset(self) -> None:
        """Forget the smoothing state."""
        self.smoother.reset()

    def __repr__(self) -> str:
        return (f"BandPowerBiomarker(fs={self.fs:g}, band={self.band}, channels={self.channels}, "
                f"window_s={self.window_s:g}, smoothing_s={self.smoother.tau_s:g})")


def parse_band_spec(spec: str) -> tuple[tuple[float, float], list[str] | None]:
    """``"bandpower:13-30"`` or ``"bandpower:13-30:DBS0,DBS1"`` -> ((13.0, 30.0), channel names or None)."""
    m = _SPEC.match(spec) if isinstance(spec, str) else None
    if not m:
        raise ValidationError("biomarker", spec, "'bandpower:LOW-HIGH' (Hz), optionally ':NAME,NAME,...'")
    names = [s.strip() for s in m.group(3).split(",") if s.strip()] if m.group(3) else None
    return (float(m.group(1)), float(m.group(2))), names


def from_spec(spec: str, fs: float, channel_names: Sequence[str], channel_types: Sequence[str] | None = None,
              **options: float) -> BandPowerBiomarker:
    """A :class:`BandPowerBiomarker` from a spec string and the stream's channels.

    Channels: the names given in the spec; else the DBS-lead LFP channels (type ``"dbs"``,
    case-insensitive) when the stream has any; else every channel.

    Args:
        spec: ``"bandpower:13-30"`` (Hz), optionally ``":NAME,NAME"``.
        fs: Sampling rate, Hz.
        channel_names: The stream's channel names.
        channel_types: The stream's channel types (same length), or None.
        **options: ``window_s``, ``smoothing_s``, ``period_s`` of :class:`BandPowerBiomarker`.
    """
    band, names = parse_band_spec(spec)
    channel_names = list(channel_names)
    if names is not None:
        missing = [n for n in names if n not in channel_names]
        if missing:
            raise ValidationError("biomarker channels", missing, f"names among {channel_names}")
        idx = [channel_names.index(n) for n in names]
    else:
        types = [str(t).lower() for t in (channel_types or [])]
        if types and len(types) != len(channel_names):
            raise ValidationError("channel_types", len(types), f"{len(channel_names)} types (one per channel)")
        idx = [i for i, t in enumerate(types) if t == "dbs"] or list(range(len(channel_names)))
    log.debug("biomarker %s on %s", spec, [channel_names[i] for i in idx])
    return BandPowerBiomarker(fs, band, idx, **options)
