"""Science of the Epileptor family: spontaneous seizures, the healthy twin, stimulation, side effect, oracle."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.space import Stimulus
from sim_spectra import band, psd
from simulators.testing import check_patient

WIN = 500  # samples per detector window (0.5 s)


def seizures(src: np.ndarray, *, thr: float = 0.4, min_s: float = 3.0) -> list[tuple[float, float]]:
    """(onset, offset) in s of runs of 0.5-s windows whose s.d. exceeds ``thr`` (gaps <= 1 s closed)."""
    sd = np.array([src[k:k + WIN].std() for k in range(0, len(src) - WIN + 1, WIN)])
    on = sd > thr
    for k in range(1, len(on) - 2):  # close gaps of up to two windows
        if not on[k] and on[k - 1] and (on[k + 1] or on[k + 2]):
            on[k] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
    runs = [(a * WIN / 1000, b * WIN / 1000) for a, b in zip(edges[::2], edges[1::2])]
    return [r for r in runs if r[1] - r[0] >= min_s]


@pytest.fixture(scope="module")
def patient():
    return simulators.make("epileptor-v0", seed=4)


@pytest.fixture(scope="module")
def long_run(patient):
    return patient.simulate(75.0)


@pytest.mark.parametrize("pid", ["epileptor-v0", "epileptor-healthy-v0"])
def test_check_patient(pid):
    p = simulators.make(pid, seed=3)
    check_patient(p)
    assert p.n_targets == len(p.source_names) == p.kernel_params["x0"].size
    a, b = p.simulate(0.5, trial=1).data.numpy(), p.simulate(0.5, trial=2).data.numpy()
    assert np.array_equal(a, simulators.make(pid, seed=3).simulate(0.5, trial=1).data.numpy())
    assert not np.array_equal(a, b)


def test_zones_and_twin(patient):
    gt = patient.ground_truth()
    x0 = np.asarray(gt["x0"])
    zone = np.asarray(gt["zone"])
    assert 1 <= (zone == "EZ").sum() <= 3 and (x0[zone == "EZ"] > -2.06).all()
    assert (x0[zone != "EZ"] < -2.06).all()
    twin = patient.healthy_twin()
    assert twin.regime == "healthy" and (twin.kernel_params["x0"] < -2.3).all()
    assert twin.channel_names == patient.channel_names and np.allclose(twin.lead, patient.lead)


def test_spontaneous_seizures_with_onset_and_offset(patient, long_run):
    """t = 0 lies in a seizure; it ends by itself, the next one starts by itself; durations of ~5–40 s."""
    h = long_run.hidden.numpy()
    ez = np.flatnonzero(patient.zone == "EZ")
    runs = seizures(h[:, ez[0]])
    assert len(runs) >= 2, runs
    assert runs[0][0] == 0.0 and 2.0 <= runs[0][1] <= 30.0          # ongoing at t = 0, then offset
    onset, offset = runs[1]
    assert offset < 75.0 and 5.0 <= offset - onset <= 40.0          # a full seizure: onset and offset
    assert 8.0 <= onset - runs[0][1] <= 50.0                        # interictal gap of tens of seconds
    # ictal sEEG near the zone: rhythmic discharge (2–8 Hz peak) far above interictal power
    ci = int(np.argmin(np.linalg.norm(patient.channel_positions_mm - patient.source_positions_mm[ez[0]], axis=1)))
    x = long_run.data.numpy()[ci]
    a, b = int(onset * 1000), int(offset * 1000)
    f, P_ict = psd(x[a:b])
    _, P_int = psd(x[int(runs[0][1] * 1000) + 1000:a - 1000])
    m = (f >= 1) & (f <= 40)
    assert 2.0 <= f[m][np.argmax(P_ict[m])] <= 8.0
    assert band(f, P_ict, 4, 40) > 10 * band(f, P_int, 4, 40)


def test_healthy_twin_has_no_seizures(patient):
    h = patient.healthy_twin().simulate(30.0).hidden.numpy()
    assert all(not seizures(h[:, i]) for i in range(h.shape[1]))
    assert h.std(axis=0).max() < 0.15


def _best_contact(p, ez):
    def rho(c):
        return p._targets(Stimulus.electrical(contact=c.name, amplitude_ma=3.0, frequency_hz=130.0,
                                              pulse_width_us=200.0))[0]
    c = max(p.contacts, key=lambda c: rho(c)[ez].sum())
    return c, np.flatnonzero(rho(c) > 0.5)


def test_stimulation_suppresses_ictal_activity(patient):
    """A 130 Hz, 3 mA train on the contact in the zone suppresses the recruited regions' ictal (4–40 Hz)
    power during the train; a subthreshold train does nothing; both against the same noise."""
    ez = np.flatnonzero(patient.zone == "EZ")
    c, hit = _best_contact(patient, ez)
    assert set(hit) & set(ez)

    def ratio(amp, freq, pw):
        st = Stimulus.electrical(contact=c.name, amplitude_ma=amp, frequency_hz=freq, pulse_width_us=pw, duration_s=2.0)
        r = patient.simulate(2.0, st, counterfactual=True)
        f, on = psd(r.hidden.numpy()[500:, hit].T, nperseg=500)
        _, off = psd(r.counterfactual.hidden.numpy()[500:, hit].T, nperseg=500)
        return band(f, on, 4, 40).mean() / band(f, off, 4, 40).mean()

    assert ratio(3.0, 130.0, 200.0) < 0.3
    assert 0.7 < ratio(0.5, 130.0, 60.0) < 1.3


def test_side_effect_structure(patient):
    c = min(patient.contacts, key=lambda c: patient._eloquent_distance(c.name))
    far = max(patient.contacts, key=lambda c: patient._eloquent_distance(c.name))
    assert patient.side_effect_threshold_ma(c.name, 60.0) < patient.side_effect_threshold_ma(far.name, 60.0)
    assert patient.side_effect_threshold_ma(c.name, 60.0) > patient.side_effect_threshold_ma(c.name, 300.0)
    thr = patient.side_effect_threshold_ma(c.name, 200.0)
    hi = Stimulus.electrical(contact=c.name, amplitude_ma=min(5.0, 2.0 * thr), frequency_hz=50.0, pulse_width_us=200.0)
    lo = hi.with_(amplitude_ma=0.5 * thr)
    if 2.0 * thr <= 5.0:
        assert patient.side_effect(hi)[1]
    assert not patient.side_effect(lo)[1] and patient.side_effect(lo)[0] < 0.2
    assert patient.side_effect(Stimulus.off(duration_s=1.0)) == (0.0, False)


def test_oracle_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("BFM_STIM_CACHE", str(tmp_path))
    p = simulators.make("epileptor-v0", seed=4, n_channels=12)
    obj = simulators.BandPowerObjective(band=(4.0, 40.0), channel_types=("seeg",))
    base = simulators.oracle_cost(p, None, obj, repeats=2)
    assert np.isfinite(base) and base == simulators.oracle_cost(p, None, obj, repeats=2)
    opt = simulators.oracle_optimum(p, obj, n_amplitude=2, frequencies=(10.0, 130.0), pulse_widths=(200.0,),
                                    repeats=1, refine_steps=0)
    assert np.isfinite(opt["cost"]) and opt["cost"] <= opt["baseline_cost"] + 1e-9
    s = Stimulus.from_dict(opt["stimulus"])
    assert s.kind == "off" or s.amplitude_ma < p.side_effect_threshold_ma(s.contact, s.pulse_width_us)
