"""The online trust in a surrogate: the evidence statistic and the optimizers that follow it."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.optim import Outcome, assess_trust, load, make
from bfm_stim.optim.trust import model_log_evidence, trust_message
from bfm_stim.stim_features import FEATURE_NAMES

FAST = {"gradient": dict(n_starts=2, steps=8), "egreedy": dict(n_pool=64),
        "guided": dict(num_restarts=1, raw_samples=16, mc_samples=16, maxiter=10, n_starts=2, steps=8)}


def test_evidence_needs_three_trials_and_no_variation_says_nothing():
    assert model_log_evidence([1.0, 2.0], [3.0, 1.0]) == 0.0
    assert model_log_evidence([1.0, 1.0, 1.0, 1.0], [0.1, 0.5, 0.2, 0.9]) == 0.0  # the model predicts no difference
    with pytest.raises(ValidationError):
        model_log_evidence([1.0, 2.0, 3.0], [1.0, 2.0])


def test_evidence_signs_and_scale_invariance():
    rng = np.random.default_rng(0)
    y = rng.normal(size=8)
    good = y + 0.2 * rng.normal(size=8)
    assert model_log_evidence(good, y) > math.log(10)
    assert model_log_evidence(-good, y) < math.log(1 / 10)  # ranks against the data
    # judged on its ranking: the units of the predictions do not matter
    assert model_log_evidence(100.0 * good + 7.0, y) == pytest.approx(model_log_evidence(good, y), rel=1e-3)
    assert model_log_evidence(-0.01 * good, y) < math.log(1 / 10)


def test_trust_weight_and_switch():
    y = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.2])
    s = assess_trust(-y, y)
    assert s.trust < 0.05 and s.weight == pytest.approx(s.trust / 0.5) and not s.leads
    assert "contradict" in s.reason and trust_message(s) is not None
    off = assess_trust(-y, y, enabled=False)
    assert off.trust == pytest.approx(s.trust) and off.weight == 1.0 and off.leads
    ok = assess_trust(y + 0.01, y)
    assert ok.trust > 0.9 and ok.weight == 1.0 and ok.leads and trust_message(ok) is None
    assert assess_trust([1, 2], [2, 1]).trust == pytest.approx(0.5)
    with pytest.raises(ValidationError):
        make("gradient", _space(), trust_prior=1.0)
    with pytest.raises(ValidationError):
        make("guided", _space(), trust="yes")


def _space():
    from bfm_stim.optim.test_problems import ContactBump
    return ContactBump().space


class _Bowl:
    """A closed-form cost model: distance to a stimulus's features (right or wrong about the patient)."""

    names = ("contact_z", "amplitude", "log_frequency", "pulse_width")

    def __init__(self, space, stim, sign=1.0):
        self.f = space.to_features([stim], dtype=torch.float64)[0]
        self.idx = [FEATURE_NAMES.index(n) for n in self.names]
        self.sign = sign

    def predict(self, F):
        d = F[:, self.idx] - self.f[self.idx].to(F)
        return self.sign * (1 - torch.exp(-4 * (d ** 2).sum(-1))), 0.1 + 0 * F[:, 0]


def _run(name, problem, model, n, **kw):
    opt = make(name, problem.space, seed=0, cost_model=model, **FAST[name], **kw)
    tags = []
    for t in range(n):
        s = opt.ask(1)[0]
        tags.append(opt._pending[-1][1])
        opt.tell([s], [problem(s, noise_std=0.02, rng=np.random.default_rng(t))])
    return opt, tags


@pytest.mark.parametrize("name", ["gradient", "egreedy", "guided"])
def test_a_model_the_trials_contradict_hands_over_to_bo(name, problem):
    wrong = _Bowl(problem.space, problem.optimum, sign=-1.0)  # predicts the optimum as the worst stimulus
    opt, tags = _run(name, problem, wrong, 7)
    assert opt.trust < 0.25 and not opt.model_leads
    s = opt.ask(1)[0]
    tag = opt._pending[-1][1]
    assert tag["led_by"] == "bo" and tag["trust"] == pytest.approx(opt.trust)
    assert problem.space.is_safe(s)
    if name == "guided":  # its prior mean has faded to (nearly) nothing: plain BO
        opt._model()
        assert opt.model_weight < 0.5 and 0.0 <= opt.prior_scale <= 10 * opt.model_weight
    # without trust the same model keeps leading
    blind, _ = _run(name, problem, wrong, 7, trust=False)
    assert blind.trust < 0.25 and blind.model_leads and blind.model_weight == 1.0


@pytest.mark.parametrize("name", ["gradient", "egreedy"])
def test_the_fallback_bo_starts_with_its_space_filling_design(name, problem):
    """Taking over from a contradicted model, the fallback BO proposes Sobol points until n_init (8) of the
    trials are space-filling (the contrast trials count; the model's picks do not), then acquires."""
    wrong = _Bowl(problem.space, problem.optimum, sign=-1.0)
    opt, tags = _run(name, problem, wrong, 7, **({"epsilon": 0.0} if name == "egreedy" else {}))
    assert not opt.model_leads
    filling = sum(bool(t.get("sobol") or t.get("contrast")) for t in tags)
    later = []
    for t in range(10):
        s = opt.ask(1)[0]
        later.append(opt._pending[-1][1])
        opt.tell([s], [problem(s, noise_std=0.02, rng=np.random.default_rng(100 + t))])
    bo_tags = [t for t in later if t.get("led_by") == "bo"]
    n_sobol = sum(bool(t.get("sobol")) for t in bo_tags)
    assert n_sobol == 8 - filling and all(t.get("sobol") for t in bo_tags[:n_sobol])
    assert any("acq" in t for t in bo_tags[n_sobol:])  # then the GP takes over


@pytest.mark.parametrize("name", ["gradient", "guided"])
def test_a_model_the_trials_confirm_keeps_its_lead(name, problem):
    opt, tags = _run(name, problem, _Bowl(problem.space, problem.optimum), 6)
    assert opt.trust > 0.5 and opt.model_leads and opt.model_weight == 1.0
    assert all(t is None or t.get("led_by", "model") in ("model", "design") for t in tags)  # never handed to BO


def test_guided_design_interleaves_model_picks_with_sobol(problem):
    opt = make("guided", problem.space, seed=0, cost_model=_Bowl(problem.space, problem.optimum), **FAST["guided"])
    kinds = []
    for t in range(3):
        s = opt.ask(1)[0]
        tag = opt._pending[-1][1]
        kinds.append("model" if "design" in tag else "sobol" if tag.get("sobol") else "acq")
        opt.tell([s], [problem(s)])
    assert kinds == ["model", "sobol", "model"]


def test_no_model_is_said_out_loud(problem, caplog):
    with caplog.at_level(logging.WARNING, logger="bfm_stim.optim"):
        opt = make("gradient", problem.space, seed=0, **FAST["gradient"])
    assert not opt.has_model and opt.trust is None and opt.trust_state is None
    assert "no cost model" in caplog.text


def test_restore_with_fallback_bo_proposes_identically(problem, tmp_path):
    wrong = _Bowl(problem.space, problem.optimum, sign=-1.0)
    opt, _ = _run("gradient", problem, wrong, 7)
    opt.ask(1)
    opt.tell([opt.pending[0]], [Outcome(0.5)])
    path = opt.save(tmp_path / "opt.json")
    again = load(path, cost_model=wrong)
    assert again.trust == pytest.approx(opt.trust)
    assert again.ask(1) == opt.ask(1)


class _MoreIsBetter:
    """Right about a trend (more amplitude, lower cost, on the right contact), wrong about the optimum (the maximum)."""

    def __init__(self, space, contact_z):
        self.i = FEATURE_NAMES.index("amplitude")
        self.z = FEATURE_NAMES.index("contact_z")
        self.cz = contact_z

    def predict(self, F):
        return -F[:, self.i] + 5.0 * (F[:, self.z] - self.cz) ** 2, 0.1 + 0 * F[:, 0]


def test_picks_that_do_not_deliver_hand_the_lead_to_bo_with_probes(problem):
    from bfm_stim.optim.trusted import PICK_WINDOW, PROBE_EVERY

    best = problem.space.to_features([problem.optimum], dtype=torch.float64)[0, FEATURE_NAMES.index("contact_z")]
    opt = make("gradient", problem.space, seed=0, cost_model=_MoreIsBetter(problem.space, float(best)),
               **FAST["gradient"])
    led = []
    for t in range(14):
        s = opt.ask(1)[0]
        led.append(opt._pending[-1][1].get("led_by"))
        opt.tell([s], [problem(s, noise_std=0.01, rng=np.random.default_rng(t))])
    # its first picks went to the highest amplitudes, far above the optimum: BO took over
    assert "bo" in led
    first_bo = led.index("bo")
    assert first_bo >= PICK_WINDOW
    # and the model got a probe after PROBE_EVERY BO-led trials unless its trust itself fell
    later = led[first_bo:first_bo + PROBE_EVERY + 1]
    assert later[:PROBE_EVERY] == ["bo"] * PROBE_EVERY or opt.trust < 0.25


def test_cost_model_from_rest_checks_its_input(problem):
    from bfm_stim.optim import cost_model_from_rest

    rest = np.random.default_rng(0).normal(0, 5, (4, 12_000))
    pos = np.zeros((4, 3))
    with pytest.raises(ValidationError, match="rest"):
        cost_model_from_rest(rest[:, :2000], fs=1000.0, positions=pos, space=problem.space)
    with pytest.raises(ValidationError, match="positions"):
        cost_model_from_rest(rest, fs=1000.0, positions=pos[:3], space=problem.space)
    with pytest.raises(ValidationError, match="target"):
        cost_model_from_rest(rest, fs=1000.0, positions=pos, space=problem.space, target="bandpower:30-13")
    with pytest.raises(ValidationError, match="channels"):
        cost_model_from_rest(rest, fs=1000.0, positions=pos, space=problem.space, channels=[7])
    bad = rest.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValidationError, match="rest"):
        cost_model_from_rest(bad, fs=1000.0, positions=pos, space=problem.space)
