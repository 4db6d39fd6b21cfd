"""``bg-beta-v1``: physiological beta bursts (Tinkhauser 2017), DBS still works; v0 unchanged."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.physiology import BurstStats, burst_stats
from bfm_stim.space import Stimulus
from sim_spectra import band, psd
from test_bg_beta import _best_contact, _beta_ratio, _lfp_beta_ratios


def _dbs(p) -> list[int]:
    return [i for i, t in enumerate(p.channel_types) if t == "dbs"]


def _bursts(pid: str, seeds, dur_s: float, band: tuple[float, float] | None = None) -> BurstStats:
    out = []
    for s in seeds:
        p = simulators.make(pid, seed=s)
        out.append(burst_stats(p.reset().advance(int(dur_s * p.fs))[_dbs(p)], p.fs, band=band))
    return BurstStats.pool(out)


def test_v0_output_is_unchanged():
    """bg-beta-v0 (committed figures depend on it) is the same physics, sample for sample."""
    p = simulators.make("bg-beta-v0", seed=6)
    assert p.burst_model == "noise" and p.kernel_params["mod"].tolist() == [0.0, 0.0]
    r = p.simulate(2.0)
    x, h = r.data.numpy(), r.hidden.numpy()
    assert x.shape == (60, 2000)
    np.testing.assert_allclose(x[0, [100, 700, 1500, 1999]], [0.9958395, 24.641647, 27.394913, 17.86886], rtol=1e-5)
    np.testing.assert_allclose(x[-1, [100, 700, 1500, 1999]], [-15.559514, -18.163185, 4.7173386, -15.070456],
                               rtol=1e-5)
    np.testing.assert_allclose(h[[250, 1250, 1999], 0], [-5.2745676, -4.662052, 40.82427], rtol=1e-5)
    assert np.abs(x.astype(np.float64)).sum() == pytest.approx(955510.6659890243, rel=1e-6)
    assert np.abs(h.astype(np.float64)).sum() == pytest.approx(294729.9514654629, rel=1e-6)


def test_v1_same_anatomy_as_v0_and_twin_keeps_the_model():
    p0, p1 = simulators.make("bg-beta-v0", seed=3), simulators.make("bg-beta-v1", seed=3)
    assert p1.burst_model == "slow-gain" and p1.id == "bg-beta-v1"
    assert p0.channel_names == p1.channel_names and p0.contacts == p1.contacts
    np.testing.assert_array_equal(p0.lead, p1.lead)
    tw = p1.healthy_twin()
    assert tw.regime == "healthy" and tw.burst_model == "slow-gain"
    assert simulators.make("bg-beta-healthy-v1", seed=3).kernel_params["mod"][0] > 0


def test_v1_bursts_are_physiological():
    """Tinkhauser 2017 bursts (peak ± 3 Hz, 75th percentile): median 100–300 ms, >= 10 % > 400 ms,
    amplitude growing with duration; v1's are longer than v0's in the 13–30 Hz envelope too."""
    b = _bursts("bg-beta-v1", (0, 1), 60.0)
    assert b.n >= 40
    assert 100.0 <= b.median_ms <= 300.0, b.summary()
    assert b.fraction_longer(0.4) >= 0.10, b.summary()
    assert b.amplitude_duration_slope > 0, b.summary()
    wide = (13.0, 30.0)
    assert _bursts("bg-beta-v1", (0, 1), 60.0, wide).median_ms > 1.5 * _bursts("bg-beta-v0", (0, 1), 60.0, wide).median_ms


def test_v1_healthy_twin_has_little_beta():
    p = simulators.make("bg-beta-v1", seed=1)
    x = p.simulate(8.0).data.numpy()[_dbs(p)]
    h = p.healthy_twin().simulate(8.0).data.numpy()[_dbs(p)]
    f, P = psd(x)
    _, Ph = psd(h)
    assert band(f, P, 13, 30).mean() > 3.0 * band(f, Ph, 13, 30).mean()


def test_v1_hfs_suppresses_beta_lfs_does_not():
    p = simulators.make("bg-beta-v1", seed=6)
    c = _best_contact(p)
    hfs = Stimulus.electrical(contact=c, amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=60.0, duration_s=5.0)
    assert _beta_ratio(p, hfs) < 0.1          # motor STN beta (hidden) collapses under HFS
    r = _lfp_beta_ratios(p, [None, hfs.with_(amplitude_ma=0.25), hfs, hfs.with_(frequency_hz=20.0)], 5.0)
    assert r[0] > 0.9                          # subthreshold: nothing
    assert r[1] < 0.7                          # recorded beta falls above the 1/f floor
    assert r[2] > 0.8                          # 20 Hz does not suppress (it may entrain)


@pytest.mark.slow
def test_v1_eval_cohort_bursts_per_patient():
    """Every one of 8 evaluation patients: median 100–300 ms (±50 ms slack per patient), long bursts present."""
    for s in simulators.cohort("eval", 8):
        b = _bursts("bg-beta-v1", (s,), 60.0)
        assert 50.0 <= b.median_ms <= 350.0, (s, b.summary())
        assert b.fraction_longer(0.4) >= 0.05, (s, b.summary())
        assert b.amplitude_duration_slope > 0, (s, b.summary())
