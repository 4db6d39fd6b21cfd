"""Optimizer.recommend: the stimulus an optimizer would deploy, never one with a side effect."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.optim import Outcome, make, registry
from bfm_stim.optim.test_problems import ContactBump


@pytest.mark.parametrize("name", sorted(registry))
def test_recommend_is_a_measured_stimulus_without_side_effect(name, problem):
    opt = make(name, problem.space, seed=0)
    assert opt.recommend() is None  # nothing measured: stimulation stays off
    s = opt.ask(4)
    opt.tell(s[:2], [Outcome(0.01, side_effect=1.0), Outcome(0.02, side_effect=True)])
    assert opt.recommend() is None  # only side effects so far
    # a sub-threshold severity reading (0.2 < side_effect_threshold 0.5) is not a side effect
    opt.tell(s[2:], [Outcome(0.6, side_effect=0.0), Outcome(0.4, side_effect=0.2)])
    assert not opt.is_side_effect(opt.observations[3][1]) and opt.is_side_effect(opt.observations[0][1])
    rec = opt.recommend()
    assert rec in s[2:], (name, rec)
    if name in ("random", "sobol", "cmaes"):  # no cost model: the lowest measured cost
        assert rec == s[3] and opt.best[0] == s[3]


@pytest.mark.slow
def test_bo_recommendation_discounts_lucky_noisy_trials():
    """Under trial noise (sd 0.15 on costs in [0, 1]) BO's posterior-mean pick is truly better, on
    average over seeds, than the single lowest measurement (what `best` returns)."""
    problem = ContactBump()
    rec_true, best_true = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        opt = make("bo", problem.space, seed=seed, num_restarts=2, raw_samples=64, mc_samples=32, maxiter=30)
        for _ in range(18):
            s = opt.ask(1)
            opt.tell(s, [problem(s[0], noise_std=0.15, rng=rng)])
        rec_true.append(problem.evaluate_true(opt.recommend()))
        best_true.append(problem.evaluate_true(opt.best[0]))
    assert np.mean(rec_true) < np.mean(best_true), (rec_true, best_true)
