"""Recovery: the optimizers find the known optimum of a declared problem within a stated budget.

Problem: :class:`bfm_stim.optim.test_problems.ContactBump` (4 contacts, one best; optimum cost 0,
costs in [0, 1] so the best cost is the normalized regret).

* ``bo``: 25 trials (8 Sobol + 17 BO) -> normalized regret <= 0.05.
* ``cmaes``: 160 trials (20 generations of 8) -> regret <= 0.05.
* ``random`` with the same budgets does worse (so these tests can fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.optim import make

FAST_BO = dict(num_restarts=2, raw_samples=32, mc_samples=32, maxiter=30)


def run(opt, problem, budget, batch=1):
    best, n = float("inf"), 0
    while n < budget:
        stims = opt.ask(min(batch, budget - n))
        opt.tell(stims, [problem(s) for s in stims])
        best = min(best, min(problem.evaluate_true(s) for s in stims))
        n += len(stims)
    return problem.regret(best)


def test_bo_recovers_optimum_in_25(problem):
    regret = run(make("bo", problem.space, seed=0, n_init=8, **FAST_BO), problem, 25)
    rand = np.mean([run(make("random", problem.space, seed=s), problem, 25) for s in range(5)])
    assert regret <= 0.05, regret
    assert rand > 0.15 and rand > 3 * regret, (rand, regret)


def test_bo_batch_recovers(problem):
    regret = run(make("bo", problem.space, seed=1, n_init=8, **FAST_BO), problem, 28, batch=4)
    assert regret <= 0.1, regret


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cmaes_recovers_optimum_in_160(problem, seed):
    regret = run(make("cmaes", problem.space, seed=seed), problem, 160, batch=8)
    rand = run(make("random", problem.space, seed=seed), problem, 160, batch=8)
    assert regret <= 0.05, regret
    assert rand > regret, (rand, regret)
