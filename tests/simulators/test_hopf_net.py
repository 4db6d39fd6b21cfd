"""Science of the Stuart–Landau (Hopf) whole-brain family, the project's held-out family."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Stimulus
from sim_spectra import band, psd
from simulators.registry import held_out_ids, is_held_out, spec
from simulators.testing import check_patient

BETA = (13.0, 30.0)


@pytest.fixture(scope="module")
def pair():
    p = simulators.make("hopf-net-v0", seed=3)
    return p, p.healthy_twin()


def _ecog(p) -> np.ndarray:
    return np.array([t == "ecog" for t in p.channel_types])


def _nearest_contact(p) -> str:
    gen = p.target_positions_mm[p.region]
    return min(p.contacts, key=lambda c: np.linalg.norm(np.asarray(c.position_mm) - gen)).name


def _farthest_contact(p) -> str:
    gen = p.target_positions_mm[p.region]
    return max(p.contacts, key=lambda c: np.linalg.norm(np.asarray(c.position_mm) - gen)).name


def test_registered_held_out_and_checked():
    assert {"hopf-net-v0", "hopf-net-healthy-v0"} <= set(held_out_ids())
    assert is_held_out("hopf-net-v0") and is_held_out("hopf-net-healthy-v0")
    assert not is_held_out("cortex-jr-v0")
    assert spec("hopf-net-healthy-v0").kwargs["regime"] == "healthy"
    for pid in ("hopf-net-v0", "hopf-net-healthy-v0"):
        check_patient(simulators.make(pid, seed=11))
    with pytest.raises(ValidationError):
        simulators.make("hopf-net-v0", seed=1, n_nodes=17)


def test_deterministic_given_seed_and_twin_shares_anatomy():
    a = simulators.make("hopf-net-v0", seed=8)
    b = simulators.make("hopf-net-v0", seed=8)
    assert np.array_equal(a.advance(400), b.advance(400))
    assert np.array_equal(a.kernel_params["W"], b.kernel_params["W"])
    h = a.healthy_twin()
    assert np.array_equal(h.kernel_params["W"], a.kernel_params["W"]) and h.channel_names == a.channel_names
    diff = np.flatnonzero(h.kernel_params["node"][0] != a.kernel_params["node"][0])
    assert diff.tolist() == [a.region]            # only the generator's bifurcation parameter differs
    W = a.kernel_params["W"]
    assert np.allclose(W, W.T) and (np.diag(W) == 0).all() and W[a.region, a.homologue[a.region]] > 0


def test_pathological_beta_present_healthy_absent(pair):
    p, h = pair
    f0 = p.node_freq_hz[p.region]
    assert BETA[0] <= f0 <= BETA[1]
    rp, rh = p.simulate(6.0), h.simulate(6.0)
    f, Sp = psd(rp.hidden.numpy()[:, p.region])
    _, Sh = psd(rh.hidden.numpy()[:, p.region])
    m = (f >= 2) & (f <= 60)
    assert abs(f[m][np.argmax(Sp[m])] - f0) <= 1.5                 # a sustained rhythm at the generator's frequency
    assert band(f, Sp, *BETA) > 5.0 * band(f, Sh, *BETA)
    f, Cp = psd(rp.data.numpy()[_ecog(p)])
    _, Ch = psd(rh.data.numpy()[_ecog(h)])
    assert band(f, Cp.mean(0), *BETA) > 4.0 * band(f, Ch.mean(0), *BETA)   # and it reaches the grid
    # it spreads: the homologue carries more beta than in the healthy twin
    k = p.homologue[p.region]
    _, Sk = psd(rp.hidden.numpy()[:, k])
    _, Skh = psd(rh.hidden.numpy()[:, k])
    assert band(f, Sk, *BETA) > 1.1 * band(f, Skh, *BETA)


def test_spectra_plausible(pair):
    _, h = pair
    x = h.simulate(6.0).data.numpy()[_ecog(h)]
    f, S = psd(x)
    S = S.mean(0)
    m = (f >= 30) & (f <= 90)
    exponent = -np.polyfit(np.log10(f[m]), np.log10(S[m]), 1)[0]
    assert 1.0 <= exponent <= 4.0                                   # ECoG aperiodic exponent range (Miller 2009)
    m = (f >= 3) & (f <= 45)
    assert 7.0 <= f[m][np.argmax(S[m])] <= 30.0                     # alpha/beta peak
    assert 5.0 < x.std() < 200.0                                    # ECoG amplitudes, µV


def test_high_frequency_stimulation_suppresses_beta_against_same_noise(pair):
    p, _ = pair
    good = Stimulus.electrical(contact=_nearest_contact(p), amplitude_ma=4.0, frequency_hz=130.0,
                               pulse_width_us=240.0, duration_s=2.0)
    low = good.with_(frequency_hz=20.0)
    far = good.with_(contact=_farthest_contact(p))
    ratio = {}
    for name, s in (("good", good), ("low", low), ("far", far)):
        r = p.simulate(2.0, s, trial=4, counterfactual=True)
        on = r.hidden.numpy()[200:, p.region]
        off = r.counterfactual.hidden.numpy()[200:, p.region]
        f, Son = psd(on, nperseg=1000)
        _, Soff = psd(off, nperseg=1000)
        ratio[name] = band(f, Son, *BETA) / band(f, Soff, *BETA)
    assert ratio["good"] < 0.2, ratio
    assert ratio["low"] > 0.7 and ratio["far"] > 0.7, ratio


def test_effect_grows_with_charge(pair):
    p, _ = pair
    obj = simulators.BandPowerObjective(band=BETA, channel_types=("ecog",))
    c = _nearest_contact(p)
    costs = [simulators.oracle_cost(p, None if a == 0 else Stimulus.electrical(
        contact=c, amplitude_ma=a, frequency_hz=130.0, pulse_width_us=240.0), obj, repeats=2) for a in (0.0, 2.5, 5.0)]
    assert costs[0] > costs[1] > costs[2] and costs[0] - costs[2] > 1.0, costs


def test_side_effect_threshold_contact_and_pulse_width_dependent(pair):
    p, _ = pair
    thr = {c.name: p.side_effect_threshold_ma(c.name, 240.0) for c in p.contacts}
    assert max(thr.values()) > 1.5 * min(thr.values())
    c = min(thr, key=thr.get)
    below = Stimulus.electrical(contact=c, amplitude_ma=0.7 * thr[c], frequency_hz=130.0, pulse_width_us=240.0)
    above = below.with_(amplitude_ma=min(1.4 * thr[c], 5.0))
    if above.amplitude_ma > thr[c] * 1.2 and p.stimulus_space().is_safe(above):
        assert all(p.side_effect(above, trial=t)[1] for t in range(5))
    assert not any(p.side_effect(below, trial=t)[1] for t in range(5))
    assert p.side_effect_threshold_ma(c, 60.0) > thr[c]
    assert p.side_effect(Stimulus.off(), trial=0) == (0.0, False)


def test_flicker_drives_occipital_nodes():
    p = simulators.make("hopf-net-healthy-v0", seed=3)
    stim = Stimulus.sensory(modality="visual_flicker", frequency_hz=12.0, level=1.0, duration_s=4.0)
    r = p.simulate(4.0, stim, counterfactual=True)
    f, Son = psd(r.hidden.numpy()[:, p.visual].T)
    _, Soff = psd(r.counterfactual.hidden.numpy()[:, p.visual].T)
    k = np.argmin(np.abs(f - 12.0))
    assert (Son[:, k] > 3.0 * Soff[:, k]).all()


def test_chunked_equals_whole_and_batch_equals_rows():
    p = simulators.make("hopf-net-v0", seed=4)
    stim = Stimulus.electrical(contact=p.contacts[0].name, amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=120.0,
                               duration_s=0.5)
    p.reset()
    p.start_stimulation(stim)
    whole = p.advance(1200)
    p.reset()
    p.start_stimulation(stim)
    parts = [p.advance(n) for n in (13, 487, 1, 699)]
    assert np.array_equal(whole, np.concatenate(parts, axis=1))
    ps = [simulators.make("hopf-net-v0", seed=s) for s in (1, 2)]
    res = simulators.simulate_batch(ps, [stim.with_(contact=ps[0].contacts[0].name), None], 0.4, trials=[0, 2])
    for i, (q, s, t) in enumerate(zip(ps, [stim.with_(contact=ps[0].contacts[0].name), None], [0, 2])):
        assert np.array_equal(res.data[i, :q.n_channels].numpy(), q.simulate(0.4, s, trial=t).data.numpy())


def test_oracle_optimum_is_feasible_and_suppresses(tmp_path, monkeypatch):
    monkeypatch.setenv("BFM_STIM_CACHE", str(tmp_path))
    p = simulators.make("hopf-net-v0", seed=3)
    obj = simulators.BandPowerObjective(band=BETA, channel_types=("ecog",))
    opt = simulators.oracle_optimum(p, obj, n_amplitude=3, frequencies=(20.0, 130.0), pulse_widths=(240.0,),
                                    repeats=1, refine_steps=1)
    assert opt["cost"] < opt["baseline_cost"] - 1.0
    s = Stimulus.from_dict(opt["stimulus"])
    assert s.frequency_hz > 60.0 and s.amplitude_ma < p.side_effect_threshold_ma(s.contact, s.pulse_width_us)
