"""Science of the basal-ganglia beta family: beta, DBS dose response, side effects."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.space import Stimulus
from sim_spectra import band, psd


def _best_contact(p) -> str:
    d = [np.linalg.norm(np.asarray(c.position_mm) - p.target_positions_mm[0]) for c in p.contacts]
    return p.contacts[int(np.argmin(d))].name


def _beta_ratio(p, stim, dur=5.0):
    r = p.simulate(dur, stim, onset_s=0.0, counterfactual=True)
    f, Pon = psd(r.hidden.numpy()[500:, 0])
    _, Poff = psd(r.counterfactual.hidden.numpy()[500:, 0])
    return band(f, Pon, 13, 30) / band(f, Poff, 13, 30)


def test_parkinsonian_beta_peak_and_healthy_twin(bg_patient):
    p = bg_patient
    x = p.simulate(6.0).data.numpy()
    h = p.healthy_twin().simulate(6.0).data.numpy()
    dbs = [i for i, t in enumerate(p.channel_types) if t == "dbs"]
    f, P = psd(x[dbs])
    _, Ph = psd(h[dbs])
    m = (f >= 5) & (f <= 45)
    assert 13.0 <= f[m][np.argmax(P.mean(0)[m])] <= 30.0
    assert band(f, P, 13, 30).max() > 5.0 * band(f, Ph, 13, 30).max()


def test_hfs_at_good_contact_suppresses_beta_lfs_does_not(bg_patient):
    p = bg_patient
    c = _best_contact(p)
    hfs = Stimulus.electrical(contact=c, amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=60.0, duration_s=5.0)
    assert _beta_ratio(p, hfs) < 0.5
    for f in (10.0, 20.0):
        assert _beta_ratio(p, hfs.with_(frequency_hz=f)) > 0.6


def test_subthreshold_amplitude_does_nothing(bg_patient):
    p = bg_patient
    stim = Stimulus.electrical(contact=_best_contact(p), amplitude_ma=0.1, frequency_hz=130.0, pulse_width_us=60.0,
                               duration_s=3.0)
    r = p.simulate(3.0, stim, counterfactual=True)
    assert np.allclose(r.hidden.numpy(), r.counterfactual.hidden.numpy(), atol=1e-3)


def test_amplitude_dose_response_on_dbs_channels(bg_patient):
    """More amplitude at 130 Hz on the best contact → less beta in the recorded LFP (DBS channels)."""
    p = bg_patient
    c = _best_contact(p)
    amps = (0.25, 0.6, 0.7, 0.9, 1.5, 3.0)
    stims = [None] + [Stimulus.electrical(contact=c, amplitude_ma=a, frequency_hz=130.0, pulse_width_us=60.0,
                                          duration_s=4.0) for a in amps]
    r = _lfp_beta_ratios(p, stims, 4.0)
    assert r[0] > 0.9                                  # subthreshold: nothing
    assert any(0.3 < x < 0.95 for x in r[1:4])        # graded around threshold, not a switch
    assert all(b <= a + 0.1 for a, b in zip(r, r[1:]))  # monotone within noise
    assert r[-1] < 0.25


def _lfp_beta_ratios(p, stims, dur):
    """Beta (13–30 Hz) power on the DBS channels with stims[1:] over stims[0] (same noise)."""
    res = simulators.simulate_batch([p] * len(stims), stims, dur)
    dbs = [i for i, t in enumerate(p.channel_types) if t == "dbs"]
    f, P = psd(res.data.numpy()[:, dbs, 500:])
    b = band(f, P, 13, 30).mean(-1)
    return b[1:] / b[0]


POP_AMPS = (1.0, 2.0, 3.0, 4.0, 5.0)


@pytest.mark.slow
@pytest.mark.parametrize("cohort", ["eval", "pretrain"])
def test_population_hfs_halves_lfp_beta(cohort):
    """Clinically plausible cohort: >= 80 % of parkinsonian patients have a contact where safe HFS
    (130 Hz, 60 µs, <= 5 mA) halves DBS-channel beta; HFS never doubles it; 20 Hz never halves it."""
    halving, dose_ok = [], []
    for seed in simulators.cohort(cohort, 10):
        p = simulators.make("bg-beta-v0", seed=seed)
        assert p.regime == "pathological"
        space = p.stimulus_space(duration_s=(1.0, 5.0))
        hfs = [Stimulus.electrical(contact=c.name, amplitude_ma=a, frequency_hz=130.0, pulse_width_us=60.0,
                                   duration_s=5.0) for c in p.contacts for a in POP_AMPS]
        lfs = [s.with_(frequency_hz=20.0) for s in hfs[len(POP_AMPS) - 1::len(POP_AMPS)]]
        assert all(space.is_safe(s) for s in hfs + lfs)
        r = _lfp_beta_ratios(p, [None] + hfs + lfs, 5.0)
        rh = r[:len(hfs)].reshape(len(p.contacts), len(POP_AMPS))
        rl = r[len(hfs):]
        assert rh.max() < 2.0, f"seed {seed}: HFS doubles beta ({rh.max():.2f})"
        assert rl.min() > 0.5, f"seed {seed}: 20 Hz halves beta ({rl.min():.2f})"
        halving.append(bool((rh <= 0.5).any()))
        best = rh[int(np.argmin(rh.min(axis=1)))]
        dose_ok.append(best[-1] <= best[0] and all(b <= a + 0.1 for a, b in zip(best, best[1:])))
    assert np.mean(halving) >= 0.8, halving
    assert np.mean(dose_ok) >= 0.8, dose_ok


def test_far_contact_is_worse_than_good_contact(bg_patient):
    p = bg_patient
    far = max(p.contacts, key=lambda c: np.linalg.norm(np.asarray(c.position_mm) - p.target_positions_mm[0])).name
    stim = Stimulus.electrical(contact=far, amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=60.0, duration_s=5.0)
    assert _beta_ratio(p, stim) > 0.6


def test_side_effect_threshold_is_contact_dependent(bg_patient):
    p = bg_patient
    thr = {c.name: p.side_effect_threshold_ma(c.name, 60.0) for c in p.contacts}
    assert max(thr.values()) > 1.5 * min(thr.values())
    c = min(thr, key=thr.get)
    below = Stimulus.electrical(contact=c, amplitude_ma=0.8 * thr[c], frequency_hz=130.0, pulse_width_us=60.0)
    above = below.with_(amplitude_ma=min(1.25 * thr[c], 5.0))
    assert thr[c] * 1.25 <= 5.0, "test patient must have a reachable side effect"
    assert not any(p.side_effect(below, trial=t)[1] for t in range(5))
    assert all(p.side_effect(above, trial=t)[1] for t in range(5))
    # longer pulses lower the threshold (strength–duration)
    assert p.side_effect_threshold_ma(c, 240.0) < thr[c]
