"""Science of the Jansen–Rit cortex family."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.space import Stimulus
from sim_spectra import band, psd


@pytest.mark.parametrize("seed", [2, 7])
def test_healthy_alpha_peak(seed):
    p = simulators.make("cortex-jr-v0", seed=seed)
    x = p.simulate(8.0).data.numpy()
    f, P = psd(x)
    m = (f >= 3) & (f <= 40)
    peak = f[m][np.argmax(P.mean(axis=0)[m])]
    assert 8.0 <= peak <= 12.0


def test_epileptic_regime_spikes_slower_and_larger():
    h = simulators.make("cortex-jr-v0", seed=7)
    e = simulators.make("cortex-jr-epileptic-v0", seed=7)
    assert e.regime == "pathological" and e.ground_truth()["epileptogenic"].count(True) >= 1
    src_h = h.simulate(6.0).hidden.numpy()
    src_e = e.simulate(6.0).hidden.numpy()
    epi = np.asarray(e.ground_truth()["epileptogenic"])
    f, P = psd(src_e[1000:, epi].T)
    peak = f[np.argmax(P.mean(axis=0)[2:]) + 2]
    assert 2.5 <= peak <= 7.0                                   # spike-wave rhythm, not alpha
    assert src_e[:, epi].std() > 2.0 * src_h[:, epi].std()      # large-amplitude discharges
    z = (src_e[:, epi] - src_e[:, epi].mean(0)) / src_e[:, epi].std(0)
    assert float((z**3).mean()) > 0.5                           # spikes: strongly skewed


@pytest.mark.parametrize("rate", [7.0, 17.0])
def test_flicker_steady_state_response(rate):
    p = simulators.make("cortex-jr-v0", seed=2)
    stim = Stimulus.sensory(modality="visual_flicker", frequency_hz=rate, level=1.0, duration_s=6.0)
    on = p.simulate(6.0, stim, counterfactual=True)
    vis = on.hidden.numpy()[:, p.visual].T
    off = on.counterfactual.hidden.numpy()[:, p.visual].T
    f, Pon = psd(vis)
    _, Poff = psd(off)
    k = np.argmin(np.abs(f - rate))
    assert (Pon[:, k] > 5.0 * Poff[:, k]).all()
    # and it reaches the recording: channel spectrum at f rises
    f, Con = psd(on.data.numpy())
    _, Coff = psd(on.counterfactual.data.numpy())
    assert Con[:, k].max() > 3.0 * Coff[:, k][np.argmax(Con[:, k])]


def test_clicks_drive_auditory_nodes():
    p = simulators.make("cortex-jr-v0", seed=2)
    stim = Stimulus.sensory(modality="auditory_clicks", frequency_hz=40.0, level=1.0, duration_s=4.0)
    r = p.simulate(4.0, stim, counterfactual=True)
    f, Pon = psd(r.hidden.numpy()[:, p.auditory].T)
    _, Poff = psd(r.counterfactual.hidden.numpy()[:, p.auditory].T)
    k = np.argmin(np.abs(f - 40.0))
    assert (Pon[:, k] > 5.0 * Poff[:, k]).all()
