"""Science of the Wilson–Cowan cortical-sheet family (gamma focus, steady-state responses, ECoG)."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.physiology import fit_spectrum, welch_psd
from bfm_stim.space import Stimulus
from sim_spectra import band, psd
from simulators.registry import is_held_out
from simulators.testing import check_patient
from simulators.wilson_cowan import params as WP
from simulators.wilson_cowan.kernel import P_SUB, _psc_coefficients

GAMMA = (30.0, 80.0)


@pytest.fixture(scope="module")
def pair():
    p = simulators.make("wilson-cowan-v0", seed=1)
    return p, p.healthy_twin()


def _ecog(p) -> np.ndarray:
    return np.array([t == "ecog" for t in p.channel_types])


def _by_focus_distance(p) -> list[str]:
    return sorted((c.name for c in p.contacts), key=lambda n: np.linalg.norm(np.asarray(p._contact(n).position_mm)
                                                                              - p.focus_mm))


def test_registered_and_checked():
    for pid in ("wilson-cowan-v0", "wilson-cowan-healthy-v0"):
        check_patient(simulators.make(pid, seed=11))
        assert not is_held_out(pid)
    assert simulators.make("wilson-cowan-healthy-v0", seed=2).regime == "healthy"


def test_deterministic_given_seed_and_twin_shares_anatomy():
    a, b = simulators.make("wilson-cowan-v0", seed=8), simulators.make("wilson-cowan-v0", seed=8)
    assert np.array_equal(a.advance(300), b.advance(300))
    h = a.healthy_twin()
    assert h.channel_names == a.channel_names and np.array_equal(h.kernel_params["W"], a.kernel_params["W"])
    diff = np.flatnonzero(h.kernel_params["pdrive"] != a.kernel_params["pdrive"])
    assert diff.tolist() == np.flatnonzero(a.focus).tolist() and not h.focus.any()


def test_gamma_focus_present_in_pathological_absent_in_healthy(pair):
    p, h = pair
    foc = np.flatnonzero(p.focus)
    rp, rh = p.simulate(6.0), h.simulate(6.0)
    f, Sp = psd(rp.hidden.numpy()[:, foc].T)
    _, Sh = psd(rh.hidden.numpy()[:, foc].T)
    Sp, Sh = Sp.mean(0), Sh.mean(0)
    m = (f >= 5) & (f <= 100)
    assert 35.0 <= f[m][np.argmax(Sp[m])] <= 55.0                      # sustained PING gamma
    assert band(f, Sp, *GAMMA) > 5.0 * band(f, Sh, *GAMMA)
    f, Cp = psd(rp.data.numpy()[_ecog(p)])
    _, Ch = psd(rh.data.numpy()[_ecog(h)])
    assert band(f, Cp.mean(0), *GAMMA) > 3.0 * band(f, Ch.mean(0), *GAMMA)
    x = rh.data.numpy()[_ecog(h)]
    assert 5.0 < x.std() < 200.0                                       # ECoG amplitudes, µV
    f, S = psd(x)
    k = (f >= 40) & (f <= 150)
    assert -np.polyfit(np.log10(f[k]), np.log10(S.mean(0)[k]), 1)[0] > 1.0   # falling aperiodic spectrum


def test_integration_converged_at_default_substeps():
    ref = simulators.make("wilson-cowan-v0", seed=1)
    ref.kernel_params["p"][P_SUB] = 40                                 # h = 0.025 ms (default 2: 0.5 ms)
    ref.reset()
    p = simulators.make("wilson-cowan-v0", seed=1)
    foc = np.flatnonzero(p.focus)
    peaks = []
    for q in (p, ref):
        f, S = psd(q.simulate(4.0).hidden.numpy()[:, foc].T)
        m = (f >= 20) & (f <= 100)
        peaks.append(f[m][np.argmax(S.mean(0)[m])])
    assert abs(peaks[0] - peaks[1]) <= 0.05 * peaks[1] + 0.5, peaks


def test_flicker_and_clicks_steady_state_responses():
    p = simulators.make("wilson-cowan-healthy-v0", seed=3)
    vis = np.argsort(-p.visual_weight)[:2]
    aud = np.flatnonzero(p.auditory_weight)
    for stim, nodes, rate in ((Stimulus.sensory(modality="visual_flicker", frequency_hz=15.0, level=1.0, duration_s=4.0),
                               vis, 15.0),
                              (Stimulus.sensory(modality="auditory_clicks", frequency_hz=40.0, level=1.0, duration_s=4.0),
                               aud, 40.0)):
        r = p.simulate(4.0, stim, counterfactual=True)
        f, Son = psd(r.hidden.numpy()[:, nodes].T)
        _, Soff = psd(r.counterfactual.hidden.numpy()[:, nodes].T)
        k = np.argmin(np.abs(f - rate))
        assert (Son[:, k] > 5.0 * Soff[:, k]).all(), (rate, Son[:, k], Soff[:, k])


def test_stimulation_frequency_decides_suppression_or_entrainment(pair):
    p, _ = pair
    foc = np.flatnonzero(p.focus)
    near, far = _by_focus_distance(p)[0], _by_focus_distance(p)[-1]
    amp = min(0.9 * p.side_effect_threshold_ma(near, 240.0), 5.0)    # the most the focus tolerates
    base = Stimulus.electrical(contact=near, amplitude_ma=amp, frequency_hz=130.0, pulse_width_us=240.0, duration_s=2.0)
    ratio = {}
    for name, s in (("hfs", base), ("gamma_rate", base.with_(frequency_hz=40.0)), ("far", base.with_(contact=far))):
        r = p.simulate(2.0, s, trial=3, counterfactual=True)
        f, Son = psd(r.hidden.numpy()[200:].T, nperseg=1000)
        _, Soff = psd(r.counterfactual.hidden.numpy()[200:].T, nperseg=1000)
        ratio[name] = band(f, Son[foc].mean(0), *GAMMA) / band(f, Soff[foc].mean(0), *GAMMA)
        ratio[name + "_sheet"] = band(f, Son.mean(0), *GAMMA) / band(f, Soff.mean(0), *GAMMA)
    assert ratio["hfs"] < 0.35, ratio                   # a high-frequency train quenches the focus
    assert ratio["gamma_rate"] > 0.8 and ratio["gamma_rate_sheet"] > 0.9, ratio   # a 40 Hz train does not
    assert ratio["far"] > ratio["hfs"] + 0.2, ratio


def test_afterdischarge_threshold_lowest_over_focus(pair):
    p, _ = pair
    order = _by_focus_distance(p)
    thr = [p.side_effect_threshold_ma(c, 240.0) for c in order]
    assert thr == sorted(thr)
    c = order[0]
    below = Stimulus.electrical(contact=c, amplitude_ma=0.7 * thr[0], frequency_hz=130.0, pulse_width_us=240.0)
    above = below.with_(amplitude_ma=min(1.5 * thr[0], 5.0))
    assert not any(p.side_effect(below, trial=t)[1] for t in range(5))
    assert all(p.side_effect(above, trial=t)[1] for t in range(5))
    assert p.side_effect_threshold_ma(c, 60.0) > thr[0]


def test_oracle_optimum_is_feasible_and_suppresses(tmp_path, monkeypatch):
    monkeypatch.setenv("BFM_STIM_CACHE", str(tmp_path))
    p = simulators.make("wilson-cowan-v0", seed=1)
    obj = simulators.BandPowerObjective(band=GAMMA, channel_types=("ecog",))
    opt = simulators.oracle_optimum(p, obj, n_amplitude=4, frequencies=(40.0, 130.0), pulse_widths=(240.0,),
                                    repeats=1, refine_steps=1)
    assert opt["cost"] < opt["baseline_cost"] - 0.3
    s = Stimulus.from_dict(opt["stimulus"])
    assert s.frequency_hz > 60.0 and s.amplitude_ma < p.side_effect_threshold_ma(s.contact, s.pulse_width_us)


@pytest.mark.parametrize("tau_r,tau_d", [(WP.TAU_AMPA_RISE_S, WP.TAU_AMPA_DECAY_S),
                                         (WP.TAU_GABA_RISE_S, WP.TAU_GABA_DECAY_S)])
def test_psc_step_is_exact_difference_of_exponentials(tau_r, tau_d):
    """The two-stage update integrates a unit-area (e^{-t/τd} − e^{-t/τr}) / (τd − τr) kernel exactly."""
    h = 1e-4                                                           # s; a unit-area pulse over the first step
    a_r, a_d, c = _psc_coefficients(h, tau_r, tau_d)
    r = y = 0.0
    ys = []
    for k in range(int(0.12 / h)):
        u = 1.0 / h if k == 0 else 0.0
        r, y = u + (r - u) * a_r, u + (y - u) * a_d + (r - u) * c
        ys.append(y)

    def area(t):  # ∫_0^t of the kernel
        return 1.0 - (tau_d * np.exp(-t / tau_d) - tau_r * np.exp(-t / tau_r)) / (tau_d - tau_r)

    t = h * np.arange(len(ys) + 1)
    exact = np.diff(area(t)) / h                                       # the kernel averaged over each step
    assert np.sum(ys) * h == pytest.approx(area(t[-1]), abs=1e-9) and area(t[-1]) > 0.9999   # unit area
    assert np.allclose(ys, exact, rtol=1e-9, atol=1e-9 * exact.max())


def test_source_is_a_synaptic_current_not_a_firing_rate():
    """Below gamma a firing fraction driven by white input is flat (exponent ≈ 0, the former readout); the
    GABA_A/AMPA currents onto the E cells fall with frequency (Gao et al. 2017; Buzsáki et al. 2012)."""
    h = simulators.make("wilson-cowan-healthy-v0", seed=1).simulate(6.0).hidden.numpy().T
    f, S = welch_psd(h - h.mean(-1, keepdims=True), 1000.0)
    assert fit_spectrum(f, S.mean(0), (2.0, 100.0), method="robust").exponent > 0.35
