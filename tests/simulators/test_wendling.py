"""Science of the Wendling family: interictal spikes, the healthy twin, stimulation, side effect, oracle."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.physiology import fit_spectrum
from bfm_stim.space import Stimulus
from sim_spectra import band, psd
from simulators.batch import simulate_batch
from simulators.testing import check_patient
from simulators.wendling.patient import interictal_spikes

SEED = 1_000_003  # an evaluation-cohort patient: one-population irritative zone under contact A2


@pytest.fixture(scope="module")
def patient():
    return simulators.make("wendling-v0", seed=SEED)


@pytest.fixture(scope="module")
def rest(patient):
    return patient.simulate(40.0)


def _ez(p):
    return np.flatnonzero(p.zone == "EZ")


@pytest.mark.parametrize("pid", ["wendling-v0", "wendling-healthy-v0"])
def test_check_patient(pid):
    p = simulators.make(pid, seed=3)
    check_patient(p)
    assert p.n_targets == len(p.source_names) == p.kernel_params["node"].shape[1]
    a, b = p.simulate(0.5, trial=1).data.numpy(), p.simulate(0.5, trial=2).data.numpy()
    assert np.array_equal(a, simulators.make(pid, seed=3).simulate(0.5, trial=1).data.numpy())
    assert not np.array_equal(a, b)
    assert p.biomarker_band == (8.0, 30.0)


def test_chunked_equals_whole(patient):
    patient.reset()
    whole = patient.advance(700)
    patient.reset()
    parts = np.concatenate([patient.advance(n) for n in (37, 263, 400)], axis=1)
    assert np.array_equal(whole, parts)
    patient.reset()


def test_zones_and_twin(patient):
    gt = patient.ground_truth()
    B = np.asarray(gt["B_mv"])
    zone = np.asarray(gt["zone"])
    assert 1 <= (zone == "EZ").sum() <= 2 and (B[zone == "EZ"] < 41.5).all()
    assert (np.flatnonzero(zone == "EZ") < gt["n_hippocampal"]).all()   # the zone is hippocampal
    assert (B[zone == "healthy"] >= 46.0).all()
    twin = patient.healthy_twin()
    assert twin.regime == "healthy" and (twin.kernel_params["node"][1] >= 46.0).all()
    assert twin.channel_names == patient.channel_names and np.allclose(twin.lead, patient.lead)
    assert np.allclose(twin.kernel_params["W"], patient.kernel_params["W"])
    assert np.allclose(twin.kernel_params["row"], patient.kernel_params["row"])


def test_interictal_spikes_present_and_absent_in_twin(patient, rest):
    """Sporadic spikes at 0.1–2.5/s in the irritative zone, none elsewhere; none in the healthy twin."""
    h = rest.hidden.numpy()
    ez = _ez(patient)
    rates = np.array([interictal_spikes(h[:, i]).size for i in range(h.shape[1])]) / 40.0
    assert 0.1 <= rates[ez].max() <= 2.5, rates[ez]
    assert rates[patient.zone == "healthy"].max() == 0.0
    # sporadic, not rhythmic: inter-spike intervals vary (coefficient of variation > 0.4)
    isi = np.diff(interictal_spikes(h[:, ez[0]])) / 1000.0
    assert isi.std() / isi.mean() > 0.4
    tw = patient.healthy_twin().simulate(40.0).hidden.numpy()
    assert all(interictal_spikes(tw[:, i]).size == 0 for i in range(tw.shape[1]))
    # the spikes reach the sEEG: the contact nearest the zone shows transients far above its background
    ci = int(np.argmin(np.linalg.norm(patient.channel_positions_mm - patient.source_positions_mm[ez[0]], axis=1)))
    x = rest.data.numpy()[ci]
    mad = np.median(np.abs(x - np.median(x)))
    assert np.abs(x - np.median(x)).max() > 15 * mad


def test_spectra_plausible(patient, rest):
    """Healthy background: delta–theta dominated, 1/f-like with an intracranial exponent, theta above the
    beta range several-fold; spikes raise 8–30 Hz power near the zone."""
    twin = patient.healthy_twin().simulate(40.0)
    f, P = psd(twin.data.numpy(), nperseg=2000)
    Pm = P.mean(axis=0)
    fit = fit_spectrum(f, Pm, (1.0, 40.0), method="robust")
    assert 1.2 <= fit.exponent <= 3.5, fit
    assert band(f, Pm, 3.0, 8.0) > 5.0 * band(f, Pm, 13.0, 30.0)
    h = twin.hidden.numpy()
    fh, Ph = psd(h.T - h.mean(axis=0)[:, None], nperseg=2000)
    # the populations' theta resonance: 4–8 Hz power above the 1/f extrapolation from 1–2 Hz and 15–30 Hz
    lf = np.log10(fh)
    sel = ((fh >= 1.0) & (fh <= 2.0)) | ((fh >= 15.0) & (fh <= 30.0))
    slope, icpt = np.polyfit(lf[sel], np.log10(Ph[:, sel]).T, 1)
    th = (fh >= 4.0) & (fh <= 8.0)
    above = np.log10(Ph[:, th]).mean(axis=1) - (slope * lf[th].mean() + icpt)
    assert np.median(above) > 0.1, above
    ci = int(np.argmin(np.linalg.norm(patient.channel_positions_mm - patient.source_positions_mm[_ez(patient)[0]],
                                      axis=1)))
    f, Pp = psd(rest.data.numpy()[ci])
    _, Pt = psd(twin.data.numpy()[ci])
    assert band(f, Pp, 8.0, 30.0) > 5.0 * band(f, Pt, 8.0, 30.0)
    assert np.isfinite(rest.data.numpy()).all() and float(np.abs(rest.data.numpy()).max()) < 5000.0


def _stim_effects(p, contact, amp, freqs, *, n_trials=6, dur=4.0):
    """(spike-rate ratio, 8–30 Hz power ratio) on vs off per frequency, same noise (trials) for both."""
    stims = [None] + [Stimulus.electrical(contact=contact, amplitude_ma=amp, frequency_hz=f, pulse_width_us=200.0,
                                          duration_s=dur) for f in freqs]
    rows = [(s, 500 + t) for s in stims for t in range(n_trials)]
    res = simulate_batch([p] * len(rows), [s for s, _ in rows], dur, trials=[t for _, t in rows], hidden=True)
    H = res.hidden.numpy()
    X = res.data.numpy()[:, :p.n_channels]
    ez = _ez(p)
    spikes = np.array([sum(interictal_spikes(H[r, :, i]).size for i in ez) for r in range(len(rows))])
    f, P = psd(X, nperseg=1000)
    bp = band(f, P, *p.biomarker_band).mean(axis=1)
    spikes = spikes.reshape(len(stims), n_trials).sum(axis=1)
    bp = bp.reshape(len(stims), n_trials).mean(axis=1)
    return {fq: (spikes[k + 1] / max(spikes[0], 1), bp[k + 1] / bp[0]) for k, fq in enumerate(freqs)}


def test_stimulation_frequency_dependence(patient):
    """Against the same noise: 2 Hz and 130 Hz trains on the zone's contact cut its spikes and the 8–30 Hz power;
    a 20 Hz train does not (Mina et al. 2013); a subthreshold train changes nothing."""
    eff = _stim_effects(patient, "A2", 2.0, (2.0, 20.0, 130.0))
    assert eff[2.0][0] < 0.4 and eff[2.0][1] < 0.8, eff
    assert eff[130.0][0] < 0.2 and eff[130.0][1] < 0.8, eff
    assert eff[20.0][0] > 0.8 and eff[20.0][1] > 0.85, eff
    sub = _stim_effects(patient, "A2", 0.1, (130.0,))
    assert 0.8 < sub[130.0][1] < 1.25, sub


def test_side_effect_structure(patient):
    near = min(patient.contacts, key=lambda c: patient._ad_distance(c.name))
    far = max(patient.contacts, key=lambda c: patient._ad_distance(c.name))
    assert patient.side_effect_threshold_ma(near.name, 200.0) < patient.side_effect_threshold_ma(far.name, 200.0)
    assert patient.side_effect_threshold_ma(near.name, 60.0) > patient.side_effect_threshold_ma(near.name, 300.0)
    thr = patient.side_effect_threshold_ma(near.name, 200.0)
    hi = Stimulus.electrical(contact=near.name, amplitude_ma=min(5.0, 2.0 * thr), frequency_hz=50.0,
                             pulse_width_us=200.0)
    lo = hi.with_(amplitude_ma=0.5 * thr)
    if 2.0 * thr <= 5.0:
        assert patient.side_effect(hi)[1]
    assert not patient.side_effect(lo)[1] and patient.side_effect(lo)[0] < 0.2
    assert patient.side_effect(Stimulus.off(duration_s=1.0)) == (0.0, False)
    # the AD-prone tissue lies by the irritative zone: the zone's best contact has less headroom than the farthest
    ez_c = patient.source_positions_mm[_ez(patient)].mean(axis=0)
    best = min(patient.contacts, key=lambda c: np.linalg.norm(np.asarray(c.position_mm) - ez_c))
    assert patient.side_effect_threshold_ma(best.name, 200.0) <= patient.side_effect_threshold_ma(far.name, 200.0)


def test_oracle_runs(tmp_path, monkeypatch, patient):
    monkeypatch.setenv("BFM_STIM_CACHE", str(tmp_path))
    obj = simulators.BandPowerObjective(band=patient.biomarker_band, channel_types=("seeg",))
    base = simulators.oracle_cost(patient, None, obj, repeats=4)
    assert np.isfinite(base) and base == simulators.oracle_cost(patient, None, obj, repeats=4)
    good = Stimulus.electrical(contact="A2", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=200.0)
    assert simulators.oracle_cost(patient, good, obj, repeats=4) < base - 0.3
    # spikes are sporadic: a 1-s window often has none, so the search averages 4 noise draws per stimulus
    opt = simulators.oracle_optimum(patient, obj, n_amplitude=2, frequencies=(20.0, 130.0), pulse_widths=(200.0,),
                                    repeats=4, refine_steps=0)
    assert np.isfinite(opt["cost"]) and opt["cost"] < opt["baseline_cost"] - 0.2
    assert Stimulus.from_dict(opt["stimulus"]).frequency_hz == 130.0
    s = Stimulus.from_dict(opt["stimulus"])
    assert s.kind == "off" or s.amplitude_ma < patient.side_effect_threshold_ma(s.contact, s.pulse_width_us)


@pytest.mark.slow
def test_substep_convergence():
    """1 ms exponential-integrator steps keep the spike rate within 10 % of an 8-sub-step run (same noise)."""
    rates = []
    for nsub in (1, 8):
        p = simulators.make("wendling-v0", seed=SEED)
        p.kernel_params["row"][9] = nsub  # P_SUB
        p._state0 = p._warm_state()
        p.reset()
        h = p.simulate(120.0).hidden.numpy()
        rates.append(sum(interictal_spikes(h[:, i]).size for i in _ez(p)) / 120.0)
    assert abs(rates[0] - rates[1]) <= 0.1 * rates[1] + 0.02, rates


def test_registry_lists_wendling():
    ids = dict(simulators.list_patients())
    assert "wendling-v0" in ids and "wendling-healthy-v0" in ids
    assert not simulators.registry.is_held_out("wendling-v0")
