"""The band-power biomarker: agreement with scipy's Welch, channel choice, smoothing, speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.signal import welch

from bfm_stim.exceptions import ValidationError
from loops.session.biomarker import BandPowerBiomarker, ExpSmoother, from_spec, parse_band_spec

FS = 1000.0


def _sine(n_ch: int = 16, n: int = 500, f: float = 20.0, amp: float = 5.0, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / FS
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (n_ch, n)) + amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (n_ch, 1)))


def _welch_band(x: np.ndarray, band=(13.0, 30.0)) -> float:
    f, p = welch(x, fs=FS, window="hann", nperseg=x.shape[-1])
    m = (f >= band[0]) & (f <= band[1])
    return float(np.log10(p[:, m].mean()))


@pytest.mark.parametrize("f", [20.0, 7.0, 45.0])
def test_agrees_with_scipy_welch_on_a_sinusoid(f):
    x = _sine(f=f)
    assert BandPowerBiomarker(FS)(x) == pytest.approx(_welch_band(x), abs=1e-9)


def test_beta_sinusoid_scores_higher_than_off_band_one():
    bio = BandPowerBiomarker(FS)
    assert bio(_sine(f=20.0)) > bio(_sine(f=60.0)) + 1.0


def test_uses_the_newest_window_and_chosen_channels():
    x = _sine(n=1500)
    bio = BandPowerBiomarker(FS, channels=[1, 3], window_s=0.5)
    assert bio.n_samples == 500
    assert bio(x) == pytest.approx(_welch_band(x[[1, 3], -500:]), abs=1e-9)


def test_odd_length_window_and_other_band():
    x = _sine(n=333, f=10.0)
    bio = BandPowerBiomarker(FS, band=(8.0, 13.0), window_s=0.333)
    assert bio(x) == pytest.approx(_welch_band(x, (8.0, 13.0)), abs=1e-9)


def test_smoothing_is_exponential_with_the_time_constant():
    s = ExpSmoother(0.5, 0.1)
    a = 1 - math.exp(-0.1 / 0.5)
    assert s(1.0) == 1.0
    assert s(2.0) == pytest.approx(1.0 + a)
    assert s(math.nan) != s(math.nan)  # non-finite passes through, state kept
    assert s.value == pytest.approx(1.0 + a)
    bio = BandPowerBiomarker(FS, smoothing_s=0.3)
    lo, hi = bio(_sine(amp=0.0)), bio(_sine(amp=10.0))
    assert lo < hi < BandPowerBiomarker(FS)(_sine(amp=10.0))


def test_non_finite_window_gives_nan():
    x = _sine()
    x[2, 10] = np.nan
    assert math.isnan(BandPowerBiomarker(FS)(x))


@pytest.mark.parametrize("kw, field", [(dict(fs=0.0), "fs"), (dict(band=(30.0, 13.0)), "band"),
                                       (dict(band=(13.0, 600.0)), "band"), (dict(window_s=0.005), "window_s"),
                                       (dict(channels=[]), "channels"), (dict(smoothing_s=-1.0), "smoothing_s")])
def test_bad_settings_name_the_field(kw, field):
    args = dict(fs=FS) | kw
    with pytest.raises(ValidationError) as e:
        BandPowerBiomarker(**args)
    assert e.value.field == field


def test_short_or_flat_windows_are_refused():
    bio = BandPowerBiomarker(FS)
    with pytest.raises(ValidationError, match="500 samples"):
        bio(np.zeros((4, 400)))
    with pytest.raises(ValidationError, match="n_channels, n_samples"):
        bio(np.zeros(500))


def test_from_spec_picks_dbs_channels_then_names_then_all():
    names = ["DBS0", "DBS1", "G0", "G1"]
    types = ["dbs", "DBS", "ecog", "ecog"]
    assert from_spec("bandpower:13-30", FS, names, types).channels == [0, 1]
    assert from_spec("bandpower:13-30", FS, names, ["ecog"] * 4).channels == [0, 1, 2, 3]
    bio = from_spec("bandpower:8-12:G1,DBS0", FS, names, types, window_s=1.0)
    assert bio.channels == [3, 0] and bio.band == (8.0, 12.0) and bio.n_samples == 1000
    assert parse_band_spec("bandpower: 13 - 30") == ((13.0, 30.0), None)
    with pytest.raises(ValidationError):
        from_spec("beta", FS, names, types)
    with pytest.raises(ValidationError, match="G9"):
        from_spec("bandpower:13-30:G9", FS, names, types)


def test_well_under_a_millisecond_for_16_channels_by_500_samples():
    bio = BandPowerBiomarker(FS)
    x = _sine().astype(np.float32)
    for _ in range(50):
        bio(x)
    n = 500
    t0 = time.perf_counter()
    for _ in range(n):
        bio(x)
    per_call = (time.perf_counter() - t0) / n
    assert per_call < 0.5e-3, f"{per_call * 1e6:.0f} µs per call"
