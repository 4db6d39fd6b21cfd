"""The fidelity bench: its statistics on signals with known properties, and a quick run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bfm_stim.physiology import burst_stats, fit_spectrum, interchannel_correlation, line_length, welch_psd
from loops.bench.fidelity import PHYSIOLOGY, range_for, run_fidelity_bench

FS = 1000.0


def _power_law_noise(chi: float, n: int, seed: int = 0) -> np.ndarray:
    """Gaussian noise with PSD ∝ 1/f^chi (spectral synthesis)."""
    rng = np.random.default_rng(seed)
    f = np.fft.rfftfreq(n, 1 / FS)
    amp = np.zeros_like(f)
    amp[1:] = f[1:] ** (-chi / 2)
    spec = amp * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    return np.fft.irfft(spec, n)


@pytest.mark.parametrize("method", ["fooof", "robust"])
@pytest.mark.parametrize("chi", [1.0, 2.0])
def test_aperiodic_exponent_of_power_law_noise(method, chi):
    if method == "fooof":
        pytest.importorskip("fooof")
    x = _power_law_noise(chi, 60_000)
    f, P = welch_psd(x, FS)
    fit = fit_spectrum(f, P, (2.0, 40.0), method=method)
    assert fit.exponent == pytest.approx(chi, abs=0.15)


@pytest.mark.parametrize("method", ["fooof", "robust"])
def test_peak_on_top_of_1_over_f(method):
    if method == "fooof":
        pytest.importorskip("fooof")
    t = np.arange(60_000) / FS
    x = _power_law_noise(2.0, t.size, 1)
    x = x / x.std() + 0.6 * np.sin(2 * np.pi * 20.0 * t)
    f, P = welch_psd(x, FS)
    fit = fit_spectrum(f, P, (3.0, 45.0), method=method)
    assert fit.dominant_peak_hz == pytest.approx(20.0, abs=1.0)
    assert fit.exponent == pytest.approx(2.0, abs=0.3)


def _burst_train(durations_s, amps, gap_s=1.2, ramp_s=0.1, f0=20.0, noise=0.005, seed=0):
    """A 20 Hz oscillation in bursts with trapezoid envelopes (linear ramps of ``ramp_s``)."""
    env = [np.zeros(int(gap_s * FS))]
    for d, a in zip(durations_s, amps):
        r = int(ramp_s * FS)
        env += [a * np.linspace(0, 1, r, endpoint=False), np.full(int(d * FS) - 2 * r, a),
                a * np.linspace(1, 0, r, endpoint=False), np.zeros(int(gap_s * FS))]
    e = np.concatenate(env)
    t = np.arange(e.size) / FS
    return e * np.sin(2 * np.pi * f0 * t) + noise * np.random.default_rng(seed).standard_normal(e.size)


def test_bursts_of_known_durations_and_amplitude_growth():
    durs = [0.25, 0.35, 0.6, 0.9] * 6
    amps = [1.0 + d for d in durs]                   # amplitude grows with duration
    x = _burst_train(durs, amps)
    b = burst_stats(x, FS, band=(12.0, 28.0), edge_s=0.5)
    thr = b.extra["threshold"]
    assert 0.2 < thr < 1.0    # the 75th percentile falls on the ramps (bursts fill < 25 % at their plateau)
    # above a threshold θ, a trapezoid of amplitude A and length d lasts d - 2 ramp θ/A
    expect = np.array([d - 2 * 0.1 * thr / a for d, a in zip(durs, amps)])
    assert b.n == len(durs)
    np.testing.assert_allclose(np.sort(b.durations_s), np.sort(expect), atol=0.03)
    assert b.median_ms == pytest.approx(np.median(expect) * 1e3, abs=30)
    assert b.fraction_longer(0.4) == pytest.approx(0.5)
    assert b.amplitude_duration_slope > 0


def test_bursts_use_the_individual_peak_and_drop_sub_cycle_blips():
    x = _burst_train([0.3, 0.5] * 8, [1.0, 1.0], f0=17.0)
    b = burst_stats(x, FS)                            # peak ± 3 Hz found in 13–30 Hz
    assert b.band_hz[0] == pytest.approx(14.0, abs=1.0) and b.band_hz[1] == pytest.approx(20.0, abs=1.0)
    assert b.durations_s.min() >= 1 / 17.0


def test_line_length_and_correlation():
    t = np.arange(10_000) / FS
    s = np.sin(2 * np.pi * 10 * t)
    assert line_length(s, FS)[0] == pytest.approx(4 * 10 * 1.0, rel=0.02)  # 4 A f for a sine
    x = np.stack([s, s, -s])
    assert interchannel_correlation(x) == pytest.approx(1.0)
    assert np.isnan(interchannel_correlation(s))


def test_table_covers_the_new_families_and_cites():
    for key in ("bg-beta", "epileptor", "wendling", "hopf-net", "wilson-cowan", "cortex-jr"):
        e = PHYSIOLOGY[key]
        lo, hi, src = e["aperiodic_exponent"]
        assert lo < hi and src
        assert "peak_hz" in e and e["peak_hz"][2]
    assert range_for("wendling-healthy-v0")[0] == "wendling-healthy"


def test_quick_run_on_bg_beta_v1(tmp_path):
    res = run_fidelity_bench(quick=True, ids=["bg-beta-v1", "not-a-family-v0"], speed=False, recordings=tmp_path,
                             plots_to=tmp_path)
    json.dumps(res)
    assert res["skipped"] == {"not-a-family-v0": "not registered (yet)"}
    fam = res["families"]["bg-beta-v1"]
    assert fam["bursts"]["n_bursts"] > 10 and fam["aperiodic_exponent"] > 0
    t = res["targets"]
    assert {"bg-beta-v1 burst median (ms)", "bg-beta-v1 aperiodic exponent", "bg-beta-v1 dominant peak (Hz)"} <= set(t)
    assert all({"measured", "target", "met"} <= set(v) for v in t.values())
    assert (tmp_path / "fidelity_psd.png").exists() and (tmp_path / "fidelity_bursts.png").exists()
