"""Array-level preprocessing used by Recording and by streaming code."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim import preprocessing as pp
from bfm_stim.exceptions import ValidationError


def test_filter_data_shapes_and_response() -> None:
    fs = 500.0
    t = np.arange(2000) / fs
    x = np.sin(2 * np.pi * 5 * t) + np.sin(2 * np.pi * 80 * t)
    y = pp.filter_data(x, fs, None, 20.0)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[200:-200], np.sin(2 * np.pi * 5 * t)[200:-200], atol=0.02)
    assert pp.filter_data(np.vstack([x, x]), fs, 1.0, 20.0).shape == (2, 2000)
    with pytest.raises(ValidationError):
        pp.filter_data(x, fs, None, None)
    with pytest.raises(ValidationError):
        pp.filter_data(x[:1], fs, 1.0, None)
    short = pp.filter_data(x[:10], fs, 1.0, None)  # short windows (streaming) still work
    assert short.shape == (10,)


def test_resample_ratio_and_hold() -> None:
    assert pp.resample_ratio(1000.0, 250.0) == (1, 4)
    assert pp.resample_ratio(128.0, 100.0) == (25, 32)
    trig = np.zeros(100)
    trig[37] = 3.0
    trig[80] = -2.0
    held = pp.resample_hold(trig, 100.0, 10.0)
    assert held.tolist() == [0, 0, 0, 3, 0, 0, 0, 0, -2, 0]
    assert pp.resample_hold(np.array([1.0, 2.0]), 10.0, 20.0).tolist() == [1, 1, 2, 2]


def test_blank_windows_edges_and_free_segments() -> None:
    x = np.arange(10, dtype=float)
    x[3:6] = 100
    np.testing.assert_allclose(pp.blank_windows(x, 1.0, [(3, 5)]), np.arange(10))
    assert pp.blank_windows(x, 1.0, [(-5, 1)]).tolist()[:3] == [2, 2, 2]  # clipped at the start
    assert pp.free_segments(10.0, [(2, 3), (2.5, 4), (9, 12)]) == [(0.0, 2), (4, 9)]
    assert pp.free_segments(10.0, [], min_duration_s=11) == []
