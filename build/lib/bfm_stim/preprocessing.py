"""Array-level preprocessing with scipy, usable on whole recordings and in streaming code.

Every function takes ``data`` of shape ``(n_channels, n_samples)`` (or ``(n_samples,)``) and the
sampling rate ``fs`` in Hz, returns a new float array of the same layout and never modifies its
input. :class:`bfm_stim.recording.Recording` wraps these functions; streaming code can call them
directly on a buffered window.

Filters are zero-phase (forward-backward second-order sections, ``scipy.signal.sosfiltfilt``), so a
sinusoid in the pass band keeps its phase; the effective order is twice the design ``order``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from scipy import signal

from bfm_stim.exceptions import ValidationError

__all__ = [
    "design_filter",
    "filter_data",
    "notch_data",
    "resample_ratio",
    "resample_data",
    "resample_hold",
    "blank_windows",
    "free_segments",
]


def _check_fs(fs: float) -> float:
    if not isinstance(fs, (int, float)) or isinstance(fs, bool) or not math.isfinite(fs) or fs <= 0:
        raise ValidationError("fs", fs, "a finite sampling rate > 0 Hz")
    return float(fs)


def _check_freq(field: str, value: float | None, fs: float) -> float | None:
    if value is None:
        return None
    nyq = fs / 2.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 < value < nyq):
        raise ValidationError(field, value, f"a frequency in (0, {nyq:g}) Hz (below Nyquist for fs={fs:g} Hz) or None")
    return float(value)


def design_filter(fs: float, l_freq: float | None, h_freq: float | None, *, order: int = 4) -> np.ndarray:
    """Design a Butterworth filter as second-order sections.

    Args:
        fs: Sampling rate, Hz.
        l_freq: Low cut-off, Hz (high-pass edge); ``None`` for a low-pass filter.
        h_freq: High cut-off, Hz (low-pass edge); ``None`` for a high-pass filter.
        order: Butterworth design order (1–12); zero-phase application doubles it.

    Returns:
        Second-order sections, shape ``(n_sections, 6)``.

    Raises:
        ValidationError: Both edges ``None``, an edge outside ``(0, fs/2)``, ``l_freq >= h_freq``,
            or a bad ``order``.
    """
    fs = _check_fs(fs)
    lo = _check_freq("l_freq", l_freq, fs)
    hi = _check_freq("h_freq", h_freq, fs)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 12:
        raise ValidationError("order", order, "an integer in [1, 12]")
    if lo is None and hi is None:
        raise ValidationError("l_freq/h_freq", (l_freq, h_freq), "at least one cut-off frequency in Hz")
    if lo is not None and hi is not None:
        if lo >= hi:
            raise ValidationError("l_freq", l_freq, f"a low cut-off below h_freq={h_freq:g} Hz")
        return signal.butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")
    if lo is not None:
        return signal.butter(order, lo, btype="highpass", fs=fs, output="sos")
    return signal.butter(order, hi, btype="lowpass", fs=fs, output="sos")


def _apply_sos(sos: np.ndarray, data: np.ndarray) -> np.ndarray:
    x = np.asarray(data, dtype=np.float64)
    n = x.shape[-1]
    if n < 2:
        raise ValidationError("n_samples", n, "at least 2 samples to filter")
    padlen = min(3 * (2 * len(sos) + 1), n - 1)
    return signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def filter_data(
    data: np.ndarray, fs: float, l_freq: float | None, h_freq: float | None, *, order: int = 4
) -> np.ndarray:
    """Zero-phase band-pass, high-pass or low-pass filter along the last axis.

    Args:
        data: Samples, shape ``(..., n_samples)``.
        fs: Sampling rate, Hz.
        l_freq: High-pass edge, Hz, or ``None``.
        h_freq: Low-pass edge, Hz, or ``None``.
        order: Butterworth design order.

    Returns:
        Filtered samples, float64, same shape as ``data``.
    """
    return _apply_sos(design_filter(fs, l_freq, h_freq, order=order), data)


def notch_data(data: np.ndarray, fs: float, freqs: float | Sequence[float], *, quality: float = 30.0) -> np.ndarray:
    """Remove narrow-band lines (e.g. 50/60 Hz mains and harmonics) with zero-phase IIR notches.

    Args:
        data: Samples, shape ``(..., n_samples)``.
        fs: Sampling rate, Hz.
        freqs: One or more line frequencies, Hz, each in ``(0, fs/2)``.
        quality: Quality factor Q (centre frequency / -3 dB bandwidth), > 0.

    Returns:
        Filtered samples, float64, same shape as ``data``.
    """
    fs = _check_fs(fs)
    freq_list = [freqs] if isinstance(freqs, (int, float)) else list(freqs)
    if not freq_list:
        raise ValidationError("freqs", freqs, "one or more line frequencies in Hz")
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not quality > 0:
        raise ValidationError("quality", quality, "a quality factor > 0")
    out = np.asarray(data, dtype=np.float64)
    for f in freq_list:
        f0 = _check_freq("freqs", f, fs)
        b, a = signal.iirnotch(f0, quality, fs=fs)
        out = _apply_sos(signal.tf2sos(b, a), out)
    return out


def resample_ratio(fs: float, new_fs: float, *, max_factor: int = 10_000) -> tuple[int, int]:
    """Return the ``(up, down)`` integers with ``fs * up / down == new_fs``.

    Raises:
        ValidationError: ``new_fs`` is not positive or its ratio to ``fs`` needs factors above
            ``max_factor``.
    """
    fs = _check_fs(fs)
    if isinstance(new_fs, bool) or not isinstance(new_fs, (int, float)) or not math.isfinite(new_fs) or new_fs <= 0:
        raise ValidationError("fs", new_fs, "a finite target sampling rate > 0 Hz")
    ratio = Fraction(new_fs).limit_denominator(100_000) / Fraction(fs).limit_denominator(100_000)
    up, down = ratio.numerator, ratio.denominator
    if up > max_factor or down > max_factor:
        raise ValidationError(
            "fs", new_fs, f"a rate whose ratio to {fs:g} Hz reduces to factors <= {max_factor} (got {up}/{down})"
        )
    return up, down


def resample_data(data: np.ndarray, fs: float, new_fs: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) along the last axis.

    Args:
        data: Samples, shape ``(..., n_samples)``.
        fs: Current sampling rate, Hz.
        new_fs: Target sampling rate, Hz; ``fs * up / down`` for small integers ``up``, ``down``.

    Returns:
        Samples at ``new_fs``, float64, shape ``(..., ceil(n_samples * up / down))``.
    """
    up, down = resample_ratio(fs, new_fs)
    x = np.asarray(data, dtype=np.float64)
    if up == down:
        return x.copy()
    return signal.resample_poly(x, up, down, axis=-1)


def resample_hold(data: np.ndarray, fs: float, new_fs: float) -> np.ndarray:
    """Resample a trigger/stim channel without filtering, keeping every pulse.

    Each output sample takes the input value of largest magnitude within its window, so a one-sample
    trigger survives downsampling and values stay integers. Upsampling repeats samples.

    Args:
        data: Samples, shape ``(..., n_samples)``.
        fs: Current sampling rate, Hz.
        new_fs: Target sampling rate, Hz.

    Returns:
        Samples at ``new_fs``, same dtype, same length as :func:`resample_data` gives.
    """
    up, down = resample_ratio(fs, new_fs)
    x = np.asarray(data)
    n = x.shape[-1]
    n_out = -(-n * up // down)
    starts = (np.arange(n_out) * down) // up
    if n == 0:
        return x.copy()
    hi = np.maximum.reduceat(x, starts, axis=-1)
    lo = np.minimum.reduceat(x, starts, axis=-1)
    return np.where(np.abs(lo) > np.abs(hi), lo, hi)


def blank_windows(
    data: np.ndarray, fs: float, windows: Sequence[tuple[float, float]], *, mode: str = "linear"
) -> np.ndarray:
    """Replace samples inside time windows by a straight line between the edges, or by zeros.

    Args:
        data: Samples, shape ``(n_channels, n_samples)`` or ``(n_samples,)``.
        fs: Sampling rate, Hz.
        windows: ``(start_s, stop_s)`` pairs in s from the first sample; clipped to the data.
        mode: ``"linear"`` (interpolate from the last sample before to the first sample after each
            window) or ``"zero"``.

    Returns:
        Blanked copy of ``data``, float64.
    """
    fs = _check_fs(fs)
    if mode not in ("linear", "zero"):
        raise ValidationError("mode", mode, "'linear' or 'zero'")
    out = np.array(data, dtype=np.float64, copy=True)
    n = out.shape[-1]
    for start_s, stop_s in windows:
        a = max(int(math.floor(start_s * fs)), 0)
        b = min(int(math.ceil(stop_s * fs)), n - 1)  # last blanked sample index
        if b < a or a >= n:
            continue
        if mode == "zero":
            out[..., a : b + 1] = 0.0
            continue
        left = a - 1 if a > 0 else None
        right = b + 1 if b + 1 < n else None
        if left is None and right is None:
            out[..., :] = 0.0
            continue
        y0 = out[..., left] if left is not None else out[..., right]
        y1 = out[..., right] if right is not None else out[..., left]
        i0 = left if left is not None else a - 1
        i1 = right if right is not None else b + 1
        frac = (np.arange(a, b + 1) - i0) / (i1 - i0)
        out[..., a : b + 1] = np.asarray(y0)[..., None] + (np.asarray(y1) - np.asarray(y0))[..., None] * frac
    return out


def free_segments(
    duration_s: float, busy: Sequence[tuple[float, float]], *, min_duration_s: float = 0.0
) -> list[tuple[float, float]]:
    """Complement of ``busy`` windows inside ``[0, duration_s]``.

    Args:
        duration_s: Length of the recording, s.
        busy: ``(start_s, stop_s)`` windows (overlapping allowed, any order).
        min_duration_s: Drop free segments shorter than this, s.

    Returns:
        Sorted, non-overlapping ``(start_s, stop_s)`` pairs, s.
    """
    spans = sorted((max(0.0, a), min(duration_s, b)) for a, b in busy if b > 0 and a < duration_s)
    free: list[tuple[float, float]] = []
    cursor = 0.0
    for a, b in spans:
        if a > cursor:
            free.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < duration_s:
        free.append((cursor, duration_s))
    return [(a, b) for a, b in free if b - a > 0 and b - a >= min_duration_s]
