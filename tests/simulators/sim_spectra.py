"""Spectral helpers for the simulator tests."""

from __future__ import annotations

import numpy as np
from scipy.signal import welch


def psd(x: np.ndarray, fs: float = 1000.0, nperseg: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD along the last axis."""
    return welch(np.asarray(x, dtype=np.float64), fs=fs, nperseg=min(nperseg, np.asarray(x).shape[-1]), axis=-1)


def band(f: np.ndarray, p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    m = (f >= lo) & (f <= hi)
    return p[..., m].mean(axis=-1)


