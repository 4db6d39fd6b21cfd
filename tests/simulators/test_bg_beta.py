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
