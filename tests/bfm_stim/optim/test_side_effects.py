"""Side-effect modelling: constraint-aware BO runs fewer side-effect trials than plain BO.

Problem: ContactBump where the best contact (c1) causes a side effect above 2.0 mA, while the cost
optimum sits at 2.5 mA on c1, so a cost-only optimizer keeps sampling the side-effect region.
"""

from __future__ import annotations

import pytest

from bfm_stim.optim import Outcome, make
from bfm_stim.optim.test_problems import ContactBump

FAST_BO = dict(num_restarts=2, raw_samples=32, mc_samples=32, maxiter=30, n_init=8)


def count_side_effects(constraint_aware: bool, seed: int, budget: int = 30) -> int:
    prob = ContactBump(side_effect_contact=1, side_effect_amplitude_ma=2.0)
    opt = make("bo", prob.space, seed=seed, constraint_aware=constraint_aware, **FAST_BO)
    for _ in range(budget):
        s = opt.ask(1)
        opt.tell(s, [prob(x) for x in s])
    return sum(o.has_side_effect for _, o in opt.observations)


@pytest.mark.slow
def test_constraint_aware_bo_has_fewer_side_effects():
    # 20 trials (8 Sobol, 12 model-based): 11 vs 20 side-effect trials over the two seeds when written
    # (14 vs 38 at 30 trials); the aware model's fits are what cost the time
    aware = sum(count_side_effects(True, s, budget=20) for s in range(2))
    plain = sum(count_side_effects(False, s, budget=20) for s in range(2))
    assert aware < plain, (aware, plain)


def _told_sub_threshold(severity_per_ma: float, *, constraint_aware: bool = True, seed: int = 0):
    """``bo`` after its Sobol design told severities ``severity_per_ma * amplitude`` (all below 0.5 here)."""
    prob = ContactBump()
    opt = make("bo", prob.space, seed=seed, constraint_aware=constraint_aware,
               **{**FAST_BO, "n_init": 6, "raw_samples": 16})
    for _ in range(6):
        s = opt.ask(1)
        opt.tell(s, [Outcome(prob.evaluate_true(x), side_effect=severity_per_ma * x.amplitude_ma) for x in s])
    return opt


def test_sub_threshold_severity_switches_on_the_side_effect_model():
    # severity <= 0.09 * 5 mA = 0.45 < side_effect_threshold 0.5: no side effect yet, but its onset is observed
    opt = _told_sub_threshold(0.09)
    assert not any(opt.is_side_effect(o) for _, o in opt.observations)
    assert any(o.severity > 0 for _, o in opt.observations)
    nxt = opt.ask(1)
    assert opt._se_model is not None  # constraint-aware from the first model-based trial
    assert opt._cache is not None and opt._cache[3] is not None  # qLogNEI got the severity constraint
    again = _told_sub_threshold(0.09).ask(1)
    assert nxt[0] == again[0]  # deterministic on this path too


def test_no_side_effect_model_without_a_reading():
    opt = _told_sub_threshold(0.0)  # every severity assessed and 0: nothing to model
    opt.ask(1)
    assert opt._se_model is None and opt._cache[3] is None
    plain = _told_sub_threshold(0.09, constraint_aware=False)
    plain.ask(1)
    assert plain._se_model is None and plain._cache[3] is None


def test_side_effect_model_keeps_contacts_apart():
    """Severity rising with amplitude on two contacts, to 2 and to 1.6 threshold units: maximum likelihood alone
    makes the contacts identical (categorical lengthscale at its upper bound 10, measured); the prior keeps
    them apart, while the cost GP's kernel is unchanged."""
    import torch

    from bfm_stim.optim import gp

    amps = torch.linspace(0.1, 0.9, 4, dtype=torch.float64)
    X = torch.cat([torch.stack([torch.full_like(amps, c), amps, torch.full_like(amps, 0.5)], -1) for c in (0.0, 1.0)])
    Y = torch.tensor([0.0, 0.6, 1.4, 2.0, 0.0, 0.4, 1.0, 1.6], dtype=torch.float64).unsqueeze(-1)
    se = gp.build_gp(X, Y, [0], zero_mean=True)
    assert se.covar_module.kernels[1].lengthscale_prior is not None
    gp.fit_gp(se)
    assert float(se.covar_module.kernels[1].lengthscale) < 5.0
    cost = gp.build_gp(X, Y, [0])
    assert getattr(cost.covar_module.kernels[1], "lengthscale_prior", None) is None
