"""Surrogate optimizers (gradient, guided, egreedy) on the real tiny BFM and on a closed-form cost."""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from bfm_stim.exceptions import OptimizerError, ValidationError
from bfm_stim.files import read_toml
from bfm_stim.objectives import LatentTarget
from bfm_stim.optim import (ConstantCost, Outcome, ResidualCorrection, SurrogateCost, load, make, registry,
                            settings_from_dict)
from bfm_stim.optim.surrogate_cost import unit_cost
from bfm_stim.safety import SafetyLimits
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES

REPO = Path(__file__).resolve().parents[3]
SURROGATE_OPTS = ("gradient", "guided", "egreedy")
FAST = {"gradient": dict(n_starts=2, steps=8), "egreedy": dict(n_pool=64),
        "guided": dict(n_starts=2, steps=8, n_design=2, n_init=2, num_restarts=1, raw_samples=16, mc_samples=16,
                       maxiter=10)}


@pytest.fixture(scope="module")
def tiny_surrogate(tiny_checkpoint):
    """The real BFM: the suite's tiny checkpoint (trained a few steps), with a fitted linear forecaster."""
    from bfm_stim.model import load_checkpoint
    from bfm_stim.surrogate import Surrogate

    model, _ = load_checkpoint(tiny_checkpoint)
    from bfm_stim.model.linear import fit_forecaster

    rng = np.random.default_rng(0)
    cfg = model.config
    fc = fit_forecaster(np.cumsum(rng.normal(size=(5, 3000)), 1) * 0.1 + rng.normal(size=(5, 3000)),
                        lags=cfg.ar_lags, horizon=cfg.horizon_patches * cfg.patch_len)
    return Surrogate(model, positions=rng.normal(0, 0.02, (5, 3)), patient=0, forecaster=fc)


@pytest.fixture
def tiny_cost(tiny_surrogate):
    rng = np.random.default_rng(1)
    ctx = rng.normal(0, 10, (5, 200)).astype(np.float32)
    target = LatentTarget.from_vector(rng.normal(0, 1, tiny_surrogate.cfg.d_latent))
    return SurrogateCost(tiny_surrogate, ctx, target, n_samples=4)


class FeatureQuadratic:
    """Closed-form differentiable cost: weighted squared distance of features to a known stimulus's."""

    names = ("contact_z", "amplitude", "log_frequency", "pulse_width")

    def __init__(self, space: StimulusSpace, optimum: Stimulus) -> None:
        self.space, self.optimum = space, optimum
        self.f_opt = space.to_features([optimum], dtype=torch.float64)[0]
        self.idx = [FEATURE_NAMES.index(n) for n in self.names]

    def predict(self, features):
        d = features[:, self.idx] - self.f_opt[self.idx].to(features)
        return (d ** 2).sum(-1) * 10.0, 0.1 + 0.0 * features[:, 0]


def test_surrogate_cost_shapes_gradients_and_errors(tiny_cost, electrical_space):
    X = torch.rand(7, electrical_space.dim, dtype=torch.float64, requires_grad=True)
    mean, std = unit_cost(tiny_cost, electrical_space)(X)
    assert mean.shape == std.shape == (7,) and mean.dtype == torch.float64
    assert torch.isfinite(mean).all() and (std >= 0).all() and std.sum() > 0
    (g,) = torch.autograd.grad(mean.sum(), X)
    assert torch.isfinite(g).all() and g.abs().sum() > 0  # the surrogate depends on the stimulus
    m2, _ = tiny_cost.predict(electrical_space.features_from_unit(X.detach()))
    assert torch.allclose(mean.detach(), m2)  # deterministic
    with pytest.raises(ValidationError, match="features"):
        tiny_cost.predict(torch.zeros(3, N_FEATURES - 1))
    with pytest.raises(ValidationError, match="n_samples"):
        SurrogateCost(tiny_cost.surrogate, tiny_cost.context, tiny_cost.objective, n_samples=1)


def test_residual_correction_moves_toward_observations(electrical_space):
    stims = electrical_space.from_unit(torch.tensor([[0.0, 0.5, 0.5, 0.5], [1.0, 0.2, 0.2, 0.2]]))
    F = electrical_space.to_features(stims, dtype=torch.float64)
    corr = ResidualCorrection(ConstantCost(0.0, 1.0), lengthscale=0.1, shrinkage=0.5).fit(F, torch.tensor([2.0, -1.0]))
    m, s = corr.predict(F)
    assert m[0] > 1.0 and m[1] < -0.3 and (s < 1.0).all()
    far = electrical_space.to_features(electrical_space.from_unit(torch.tensor([[0.33, 1.0, 1.0, 0.0]])),
                                       dtype=torch.float64)
    mf, sf = corr.predict(far)
    assert abs(float(mf[0]) - 1.0 / 2.5) < 0.05 and float(sf[0]) > 0.95  # the bias only, full prior std


@pytest.mark.parametrize("steps", [150])
def test_gradient_recovers_closed_form_optimum(problem, steps):
    """Within 150 Adam steps (6 starts x 4 contacts) the top candidate is the known optimum."""
    cost = FeatureQuadratic(problem.space, problem.optimum)
    opt = make("gradient", problem.space, seed=3, steps=steps, cost_model=cost)
    ranked = opt.rank(3)
    best, mean, std = ranked[0]
    assert best.contact == "c1"
    assert abs(best.amplitude_ma - 2.5) <= 0.1 and abs(best.frequency_hz - 130.0) <= 4.0
    assert abs(best.pulse_width_us - 90.0) <= 4.0 and mean < 1e-3 and std == pytest.approx(0.1)
    assert [m for _, m, _ in ranked] == sorted(m for _, m, _ in ranked)
    # as an ask/tell optimizer it proposes that candidate, then the next unexplored one
    first = opt.ask(1)[0]
    assert first == best and problem.regret(problem(first).cost) < 0.01
    opt.tell([first], [problem(first)])
    second = opt.ask(1)[0]
    assert second != first and problem.space.is_safe(second)


def test_guided_first_trial_near_optimum_with_a_good_surrogate(problem):
    """With an accurate cost model guided BO's first trial is already at the optimum (regret < 0.05)."""
    cost = FeatureQuadratic(problem.space, problem.optimum)
    opt = make("guided", problem.space, seed=0, cost_model=cost, **{k: v for k, v in FAST["guided"].items()
                                                                    if k not in ("steps", "n_starts")})
    assert len(opt.design_ranked) == 2 and opt.design_ranked[0][1] < 1e-2
    s = opt.ask(1)[0]
    assert problem.regret(problem(s).cost) < 0.05
    # the prior mean is the cost model's prediction in unit-cube coordinates
    X = problem.space.to_unit([problem.optimum])
    assert float(opt.prior_mean(X)[0]) == pytest.approx(0.0, abs=1e-9)


def test_egreedy_greedy_follows_model_and_correction(problem):
    cost = FeatureQuadratic(problem.space, problem.optimum)
    opt = make("egreedy", problem.space, seed=0, epsilon=0.0, cost_model=cost)
    stims, _, F = opt.pool()
    s = opt.ask(1)[0]
    assert s == stims[int(torch.argmin(cost.predict(F)[0]))]
    opt.tell([s], [Outcome(5.0)])  # the model was wrong there: predicted ~0, measured 5
    m, _ = opt.corrected().predict(problem.space.to_features([s], dtype=torch.float64))
    assert float(m[0]) > 2.0
    assert opt.ask(1)[0] != s
    explorer = make("egreedy", problem.space, seed=0, epsilon=1.0, cost_model=cost)
    tags = [t for _ in range(3) for t in [explorer.ask(1)] and [explorer._pending[-1][1]]]
    assert [bool(t.get("contrast")) for t in tags] == [False, True, False]  # the 2nd trial is a contrast point
    assert all(t["explore"] for t in tags if not t.get("contrast"))


@pytest.mark.parametrize("name", ["gradient", "egreedy"])
def test_contrast_trials_only_with_trust(problem, name):
    """With trust on, the 2nd and 4th trials are space-filling contrast points (led_by = design) away from
    the model's pick; with trust off every trial follows the model, as before."""
    cost = FeatureQuadratic(problem.space, problem.optimum)
    extra = {"epsilon": 0.0} if name == "egreedy" else {"n_starts": 2, "steps": 10}
    for trust in (True, False):
        opt = make(name, problem.space, seed=0, cost_model=cost, trust=trust, **extra)
        tags = []
        for _ in range(5):
            s = opt.ask(1)[0]
            tags.append(opt.tag_of(s))
            opt.tell([s], [problem(s)])
        contrast = [bool(t.get("contrast")) for t in tags]
        if trust:
            assert contrast == [False, True, False, True, False]
            assert all(t["led_by"] == "design" for t in tags if t.get("contrast"))
            assert all("pred" not in t for t in tags if t.get("contrast"))  # not ranked by the model
        else:
            assert not any(contrast)


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 4))
    contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), draw(st.floats(0.005, 0.2))) for i in range(n)]
    a_lo = draw(st.sampled_from([0.0, 0.0, 0.5]))
    a_hi = draw(st.floats(a_lo + 0.5, 12.0))
    pw_lo = draw(st.floats(10.0, 100.0))
    limits = SafetyLimits(shannon_k=draw(st.floats(1.0, 2.2)), max_charge_density_uc_cm2=draw(st.floats(5.0, 40.0)),
                          max_charge_uc=draw(st.floats(0.1, 3.0)), max_amplitude_ma=draw(st.floats(1.0, 10.0)),
                          max_frequency_hz=draw(st.floats(100.0, 500.0)),
                          max_pulse_width_us=draw(st.floats(200.0, 1000.0)))
    return StimulusSpace.electrical(contacts, limits=limits, amplitude_ma=(a_lo, a_hi),
                                    frequency_hz=(2.0, draw(st.floats(20.0, 600.0))),
                                    pulse_width_us=(pw_lo, draw(st.floats(pw_lo + 20.0, 1200.0))))


@pytest.mark.parametrize("name", SURROGATE_OPTS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(space=spaces(), seed=st.integers(0, 1000), costs=st.lists(st.floats(-10, 10), max_size=6),
       batch=st.integers(1, 3))
def test_never_unsafe_with_real_surrogate(name, tiny_cost, space, seed, costs, batch):
    try:
        opt = make(name, space, seed=seed, cost_model=tiny_cost, **FAST[name])
    except OptimizerError:
        return  # no safe stimulus in this space: refusing is safe
    for i, c in enumerate(costs + [0.0]):
        stims = opt.ask(batch)
        assert len(stims) == batch and all(space.is_safe(s) for s in stims)
        if i < len(costs):
            opt.tell(stims, [c + j for j in range(batch)])
            if name == "guided" and i >= 2:
                break  # a couple of acquisitions are enough; BO is the slow one
    if name == "gradient":
        assert all(space.is_safe(s) for s, _, _ in opt.rank(4))


@pytest.mark.parametrize("name", SURROGATE_OPTS)
def test_sensory_space_safe(name, tiny_cost):
    space = StimulusSpace.sensory(frequency_hz=(1.0, 120.0), limits=SafetyLimits(block_photosensitive=True))
    opt = make(name, space, seed=1, cost_model=tiny_cost, **FAST[name])
    for k in range(3):
        stims = opt.ask(2)
        assert all(space.is_safe(s) for s in stims)
        opt.tell(stims, [float(k), float(k) + 0.5])


@pytest.mark.parametrize("name", SURROGATE_OPTS)
def test_restore_gives_identical_next_proposal(name, problem, tiny_cost, tmp_path):
    opt = make(name, problem.space, seed=5, cost_model=tiny_cost, **FAST[name])
    for _ in range(3):
        s = opt.ask(2)
        opt.tell(s, [Outcome(problem(x).cost, side_effect=x.amplitude_ma > 3.0) for x in s])
    opt.ask(1)  # one pending
    path = opt.save(tmp_path / "opt.json")
    json.loads(path.read_text())
    restored = load(path, cost_model=tiny_cost)
    assert restored.observations == opt.observations and restored.pending == opt.pending
    for _ in range(2):
        a, b = opt.ask(2), restored.ask(2)
        assert a == b
        outs = [Outcome(problem(x).cost) for x in a]
        opt.tell(a, outs)
        restored.tell(b, outs)
    assert json.dumps(opt.state_dict(), sort_keys=True) == json.dumps(restored.state_dict(), sort_keys=True)


def test_registered_and_configured():
    assert set(SURROGATE_OPTS) <= set(registry)
    tables = read_toml(REPO / "loops" / "configs" / "optimizers.toml")
    assert set(tables) == set(registry)
    for name, table in tables.items():
        assert settings_from_dict(name, table).to_dict()["seed"] == table["seed"]
    with pytest.raises(ValidationError, match="epsilon"):
        settings_from_dict("egreedy", {"epsilon": 1.5})
    with pytest.raises(ValidationError, match="n_design"):
        settings_from_dict("guided", {"n_design": 0})


@pytest.mark.parametrize("signal", [False, True])
def test_surrogate_cost_cached_encoding_matches_surrogate_predict(tiny_surrogate, tiny_cost, electrical_space, signal):
    """SurrogateCost encodes its context once; its forecasts, costs and gradients are exactly those of
    Surrogate.predict (which re-encodes the context on every call), and an in-place weight change
    invalidates the cached encoding."""
    from bfm_stim.objectives import BandPowerObjective
    from bfm_stim.surrogate import Forecast

    obj = BandPowerObjective((8.0, 30.0), tiny_surrogate.fs) if signal else tiny_cost.objective
    cost = SurrogateCost(tiny_surrogate, tiny_cost.context, obj, n_samples=4, seed=3)
    assert cost.signal == signal
    F = electrical_space.features_from_unit(torch.rand(5, electrical_space.dim, dtype=torch.float64,
                                                       generator=torch.Generator().manual_seed(0)))
    Fg = F.clone().requires_grad_(True)

    def reference(feats):  # SurrogateCost.predict computed from Surrogate.predict, as before the cache
        fc = tiny_surrogate.predict(cost.context, feats.float(), signal=signal)
        n, k = feats.shape[0], cost.n_samples
        z = (fc.z[None] + cost._noise("z", tuple(fc.z.shape[1:])) * fc.z_std[None]).reshape(k * n, *fc.z.shape[1:])
        r = r_std = None
        if fc.response is not None:  # the model has a response head: latent targets read (and draw) it
            r = (fc.response[None] + cost._noise("r", tuple(fc.response.shape[1:])) * fc.response_std[None]
                 ).reshape(k * n, *fc.response.shape[1:])
            r_std = fc.response_std.repeat(k, 1, 1)
        sig = None
        if signal:
            sig = (fc.signal[None] + cost._noise("s", tuple(fc.signal.shape[1:])) * fc.signal_std[None]
                   ).reshape(k * n, *fc.signal.shape[1:])
        draws = obj(Forecast(z, fc.z_std.repeat(k, 1, 1), sig, None, fc.fs, r, r_std)).reshape(k, n)
        return obj(fc).double(), draws.std(0).double()

    for _ in range(2):  # the second call uses the cached encoding
        m, s = cost.predict(Fg)
        m_ref, s_ref = reference(Fg)
        assert torch.equal(m, m_ref) and torch.equal(s, s_ref)
        (g,) = torch.autograd.grad(m.sum(), Fg)
        (g_ref,) = torch.autograd.grad(m_ref.sum(), Fg)
        assert torch.equal(g, g_ref) and g.abs().sum() > 0
        pm = cost.predict_mean(Fg)
        assert torch.equal(pm, m_ref.detach())
        (g_pm,) = torch.autograd.grad(pm.sum(), Fg)
        assert torch.equal(g_pm, g_ref)
    fc, fc_ref = cost.forecast(F.float()), tiny_surrogate.predict(cost.context, F.float(), signal=signal)
    assert torch.equal(fc.z, fc_ref.z) and torch.equal(fc.z_std, fc_ref.z_std)
    if signal:
        assert torch.equal(fc.signal, fc_ref.signal) and torch.equal(fc.signal_std, fc_ref.signal_std)
    # an in-place change of the weights re-encodes the context
    p = next(tiny_surrogate.model.to_latent.parameters())  # the encoder's output layer
    orig = p.detach().clone()
    with torch.no_grad():
        p.mul_(1.5)
    try:
        m2 = cost.predict(F)[0]
        assert torch.equal(m2, reference(F)[0]) and not torch.equal(m2, m_ref.detach())
    finally:
        with torch.no_grad():
            p.copy_(orig)


def test_propose_threads_caps_and_restores():
    from bfm_stim.optim.base import propose_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with propose_threads(1):
            assert torch.get_num_threads() == 1
            with propose_threads(1):
                assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError):
            with propose_threads(1):
                raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("scale, expect", [(0.25, (2.5, 4.0)), (-1.0, (0.0, 0.01)), (1.0, (0.99, 1.01))])
def test_guided_learns_the_scale_of_its_prior(problem, scale, expect):
    """A surrogate that ranks right on the wrong scale is rescaled (b ≈ 1/scale after enough trials,
    shrunk toward 1 by prior_trust); one that ranks against the data is switched off (b = 0, and its
    trust-weighted scale with it)."""
    truth = FeatureQuadratic(problem.space, problem.optimum)

    class Scaled:
        def predict(self, F):
            m, s = truth.predict(F)
            return scale * m, s

    opt = make("guided", problem.space, seed=0, cost_model=Scaled(), **FAST["guided"])
    U = torch.rand(24, problem.space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    stims = [problem.space.project_safe(s) for s in problem.space.from_unit(U)]
    feats = problem.space.to_features(stims, dtype=torch.float64)
    opt.tell(stims, [Outcome(float(c)) for c in truth.predict(feats)[0]])
    opt._model()
    lo, hi = expect
    if scale > 0:  # the exact shrunk slope (S_py + λ) / (S_pp + λ), S_py = S_pp / scale
        p = opt._prior_f(problem.space.to_unit(stims)).detach()
        sxx, lam = float(((p - p.mean()) ** 2).sum()), opt.settings.prior_trust * opt._prior_spread()
        assert opt.prior_scale == pytest.approx((sxx / scale + lam) / (sxx + lam), rel=1e-6)
    assert lo <= opt.prior_scale <= hi
    fixed = make("guided", problem.space, seed=0, cost_model=Scaled(), prior_trust=float("inf"), trust=False,
                 **FAST["guided"])
    fixed.tell(stims, [Outcome(float(c)) for c in truth.predict(feats)[0]])
    fixed._model()
    assert fixed.prior_scale == 1.0
