"""Hand-crafted window features: band powers, line length, Hjorth parameters."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.exceptions import ValidationError
from bfm_stim.handcrafted import feature_names, handcrafted_features


def test_band_power_finds_the_oscillation_and_hjorth_values():
    fs = 250.0
    t = np.arange(500) / fs
    rng = np.random.default_rng(1)
    beta = np.sin(2 * np.pi * 20 * t) * 10 + rng.normal(0, 0.1, t.size)
    alpha = np.sin(2 * np.pi * 10 * t) * 10 + rng.normal(0, 0.1, t.size)
    X = np.stack([np.stack([beta, alpha])])  # (1, 2, 500)
    F = handcrafted_features(X, fs)
    names = feature_names(["a", "b"], fs)
    assert F.shape == (1, len(names)) and len(names) == 2 * 11
    col = {n: F[0, i] for i, n in enumerate(names)}
    assert col["a:high_beta"] > col["a:alpha"] + 2 and col["b:alpha"] > col["b:high_beta"] + 2
    # Hjorth mobility of a sinusoid is 2 pi f / fs (per sample); activity is log10 of its variance (50 µV²)
    assert col["a:hjorth_mobility"] == pytest.approx(2 * np.pi * 20 / fs, rel=0.05)
    assert col["a:hjorth_activity"] == pytest.approx(np.log10(50.0), abs=0.02)
    assert handcrafted_features(X, fs, channel_mean=True).shape == (1, 11)
    # bands above fs/2 are left out
    assert len(feature_names(["a"], 100.0)) == 6 + 4


def test_refuses_bad_windows():
    with pytest.raises(ValidationError):
        handcrafted_features(np.zeros((2, 3)), 250.0)  # (C, T) with T < 8
    X = np.zeros((1, 2, 100))
    X[0, 0, 5] = np.inf
    with pytest.raises(ValidationError, match="non-finite"):
        handcrafted_features(X, 250.0)
