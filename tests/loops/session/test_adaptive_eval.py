"""Offline evaluation of the continuous-mode controller on simulated bg-beta patients (short runs)."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.exceptions import ValidationError
from loops.session import adaptive_eval as ae
from loops.session.biomarker import BandPowerBiomarker
from loops.session.controller import AdaptiveController, ControllerConfig

SEED = simulators.cohort("eval", 1)[0]


def _cfg(**kw) -> ControllerConfig:
    return ControllerConfig(contact="c1", **kw)


def test_open_loop_suppresses_beta_and_charge_is_the_formula():
    cfg = _cfg()
    r = ae.run(SEED, cfg, 6.0, rest_s=3.0, matched_charge=False)
    ol, ad = r["open_loop"], r["adaptive"]
    assert ol["suppression"] > 0.5 and ol["suppression_ratio"] == 1.0
    # stimulation starts after the first block (the controller's first decision)
    on_s = 6.0 - cfg.period_s
    assert ol["time_on_fraction"] == pytest.approx(on_s / 6.0)
    assert ol["charge_uc"] == pytest.approx(3.0 * 60.0 * 1e-3 * 2 * 130.0 * on_s)
    assert 0.0 <= ad["time_on_fraction"] <= 1.0 and 0.0 <= ad["charge_fraction"] <= 1.0
    assert ad["charge_uc"] == pytest.approx(ad["charge_fraction"] * ol["charge_uc"])


def test_runs_share_the_noise_realization():
    s = ae._setup(SEED, _cfg(), 3.0, 2.0, 0.5)
    again = ae._simulate(s, _cfg(), "off", 3.0, 2.0, window_s=0.5)
    assert again["beta_power"] == s.p_off  # same patient, same noise: the exact counterfactual
    const0 = ae._simulate(s, _cfg(), "constant", 3.0, 2.0, window_s=0.5, amplitude_ma=0.0)
    assert const0["beta_power"] == s.p_off and const0["charge_uc"] == 0.0


def test_adaptive_stimulates_more_when_beta_is_high():
    """Thresholds from the parkinsonian patient's rest; its healthy twin (little beta) gets less."""
    cfg = _cfg(ramp_up_ma_per_s=30.0, ramp_down_ma_per_s=30.0, threshold_quantile_on=0.5, threshold_quantile_off=0.3)
    sick = simulators.make("bg-beta-v0", seed=SEED)
    s = ae._setup(SEED, cfg, 5.0, 5.0, 0.5)
    ctl = AdaptiveController(cfg, s.space).calibrate(s.rest_bio)
    fixed = cfg.replace(threshold_on=ctl.threshold_on, threshold_off=ctl.threshold_off)
    out = {}
    for name, patient in (("sick", sick), ("healthy", sick.healthy_twin())):
        st = ae._Setup(patient, "c1", ae.eval_space(patient), s.rest_bio, 1.0, np.zeros(0))
        out[name] = ae._simulate(st, fixed, "adaptive", 10.0, 2.0, window_s=0.5, record=True)
    assert out["sick"]["time_on_fraction"] > out["healthy"]["time_on_fraction"] + 0.2
    # within the run: high beta never lowers the amplitude, low beta never raises it
    tr = out["sick"]["trace"]
    amps = [0.0] + [d["amplitude_ma"] for d in tr]
    for i, d in enumerate(tr):
        b = d["biomarker_used"]
        if b is not None and b > d["threshold_on"]:
            assert amps[i + 1] >= amps[i]
        elif b is not None and b < d["threshold_off"]:
            assert amps[i + 1] <= amps[i]


def test_every_command_in_a_run_is_safe_and_within_amplitude_max():
    cfg = _cfg(mode="proportional", gain_ma_per_decade=20.0, threshold_quantile_on=0.2, ramp_up_ma_per_s=50.0,
               ramp_down_ma_per_s=50.0, amplitude_max_ma=4.0)
    s = ae._setup(SEED, cfg, 4.0, 3.0, 0.5)
    r = ae._simulate(s, cfg, "adaptive", 8.0, 3.0, window_s=0.5, record=True)
    stims = [d["stimulus"] for d in r["trace"] if d["stimulus"] is not None]
    assert stims, "the proportional controller never stimulated"
    from bfm_stim.space import Stimulus

    for d in stims:
        st = Stimulus.from_dict(d)
        assert s.space.is_safe(st) and st.amplitude_ma <= 4.0 + 1e-9


def test_evaluate_reports_medians_and_target():
    ev = ae.evaluate([SEED], _cfg(), 4.0, rest_s=3.0)
    row = ev["patients"][0]
    assert set(row) >= {"seed", "contact", "off", "open_loop", "adaptive", "matched_charge", "target_met"}
    assert ev["n_patients"] == 1 and ev["target_met"] in (0, 1)
    assert ev["median"]["adaptive_suppression"] == pytest.approx(row["adaptive"]["suppression"])
    mc = row["matched_charge"]
    assert mc["charge_uc"] == pytest.approx(row["adaptive"]["charge_uc"], rel=0.05, abs=1.0)


def test_contact_review_picks_a_suppressing_contact():
    p = simulators.make("bg-beta-v0", seed=SEED)
    c = ae.select_contact(p, ControllerConfig())
    assert c in {x.name for x in p.contacts}
    r = ae.run(SEED, ControllerConfig(), 4.0, rest_s=2.0, matched_charge=False)
    assert r["contact"] == c and r["open_loop"]["suppression"] > 0.5


def test_tune_refuses_evaluation_seeds_and_runs_a_tiny_budget():
    with pytest.raises(ValidationError, match="eval"):
        ae.tune([SEED])
    seeds = ae.train_seeds(1)
    assert simulators.cohort_of(seeds[0]) is None
    hist: list = []
    cfg = ae.tune(seeds, _cfg(), modes=("dual_threshold",), duration_s=3.0, rest_s=2.0, generations=1, popsize=3,
                  history=hist)
    assert isinstance(cfg, ControllerConfig) and len(hist) == 3
    assert min(h["objective"] for h in hist) == pytest.approx(
        min(h["objective"] for h in hist if h["config"] == cfg.to_dict()))


def test_decode_covers_both_modes():
    base = ControllerConfig()
    for mode in ae.PARAMETERIZATIONS:
        for z in (np.zeros(6), np.ones(6), np.full(6, 0.5)):
            cfg = ae.decode(z, base, mode)
            assert cfg.mode == mode.replace("_offset", "") and 0.0 <= cfg.amplitude_min_ma <= cfg.amplitude_max_ma
            assert (cfg.threshold_offset_on is not None) == mode.endswith("offset")
    with pytest.raises(ValidationError):
        ae.decode(np.zeros(6), base, "bang")


def test_biomarker_on_patient_output_matches_the_controller_input():
    p = simulators.make("bg-beta-v0", seed=SEED)
    x = p.advance(500)
    bio = BandPowerBiomarker(p.fs, channels=ae._dbs(p))
    assert np.isfinite(bio(x))
