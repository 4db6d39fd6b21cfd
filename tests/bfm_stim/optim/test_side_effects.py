"""Side-effect modelling: constraint-aware BO runs fewer side-effect trials than plain BO.

Problem: ContactBump where the best contact (c1) causes a side effect above 2.0 mA, while the cost
optimum sits at 2.5 mA on c1, so a cost-only optimizer keeps sampling the side-effect region.
"""

from __future__ import annotations

import pytest

from bfm_stim.optim import make
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
    aware = sum(count_side_effects(True, s) for s in range(2))
    plain = sum(count_side_effects(False, s) for s in range(2))
    assert aware < plain, (aware, plain)
