"""Shared fixtures for the BFM tests: a tiny architecture and random patient series."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.model.data import PatientSeries
from bfm_stim.stim_features import N_FEATURES

TINY = dict(d_model=32, d_latent=16, d_channel=16, n_virtual=4, d_patient=8, n_layers=1, n_heads=2,
            n_fourier=8, dyn_hidden=32, n_ensemble=2, max_patches=16, horizon_patches=4, dropout=0.0,
            n_stim_features=N_FEATURES, n_train_patients=4)


def random_series(n: int = 4, seed: int = 0) -> list[PatientSeries]:
    """n patients of white noise (3, 4, … channels) with two probe stimuli each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c, t = 3 + i, 3000
        ids = np.zeros(t, np.int32)
        ids[1000:1250], ids[2000:2250] = 1, 2
        table = np.vstack([np.zeros(N_FEATURES), rng.random((2, N_FEATURES))]).astype(np.float32)
        out.append(PatientSeries(rng.normal(size=(c, t)).astype(np.float32) * 10,
                                 rng.normal(0, 0.02, (c, 3)).astype(np.float32), ids, table, 900, i, i % 2))
    return out


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


@pytest.fixture
def series() -> list[PatientSeries]:
    return random_series()


@pytest.fixture
def make_series():
    return random_series
