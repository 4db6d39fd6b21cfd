"""Cells (ids, derived seeds) and the metrics, on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loops.benchmark import metrics as M
from loops.benchmark.cells import Cell, PatientRef
from loops.benchmark.config import OptimizerEntry


def _cell(opt="bo", seed=0, patient_seed=1_000_000, budget=40, settings=None):
    return Cell(PatientRef("sim", "bg-beta-v0", patient_seed), OptimizerEntry(opt, opt, settings or {}), seed, budget)


def test_cell_ids_are_stable_and_depend_on_every_field():
    a = _cell()
    assert a.id == _cell().id and a.id == Cell.from_dict(a.to_dict()).id
    others = [_cell(opt="random"), _cell(seed=1), _cell(patient_seed=1_000_001), _cell(budget=41),
              _cell(settings={"n_init": 4})]
    assert len({a.id} | {c.id for c in others}) == 6
    assert a.id == "bc705411-c401-5e53-b665-d25b701d120c"  # uuid5: the same on every machine and version


def test_trial_noise_is_shared_by_optimizers_and_optimizer_seeds_are_not():
    bo, rnd = _cell("bo"), _cell("random")
    assert [bo.trial_id(t) for t in range(40)] == [rnd.trial_id(t) for t in range(40)]
    assert bo.trial_id(0) != _cell("bo", seed=1).trial_id(0)
    assert bo.trial_id(0) != _cell("bo", patient_seed=1_000_001).trial_id(0)
    assert bo.optimizer_seed != rnd.optimizer_seed and 0 <= bo.optimizer_seed < 2**31
    legacy = Cell(bo.patient, bo.optimizer, 2, 40, "legacy")
    assert legacy.optimizer_seed == 2 and legacy.trial_id(5) == 102_005


def _run(opt, patient, seed, regret, budget=5, se=0):
    return {"optimizer": opt, "patient": patient, "seed": seed, "budget": budget, "trials": len(regret),
            "regret": regret, "final_regret": regret[-1], "status": "ok", "error": None,
            "ttt": {str(t): M.trials_to_target(regret, t) for t in (0.2, 0.05)}, "side_effect_trials": se,
            "hard_violations": 0, "s_per_ask": 0.01, "run_s": 1.0, "family": "f"}


def test_trials_to_target_and_coco_ert():
    assert M.trials_to_target([0.9, 0.3, 0.04, 0.01], 0.05) == 3
    assert M.trials_to_target([0.9, 0.3], 0.05) is None
    runs = [_run("a", "p1", 0, [0.5, 0.04, 0.0, 0.0, 0.0]),  # hits 0.05 at 2
            _run("a", "p2", 0, [0.5, 0.5, 0.5]),              # crashed after 3 trials, never hit
            _run("a", "p3", 0, [0.5, 0.5, 0.5, 0.01, 0.01])]  # hits at 4
    assert M.ert(runs, 0.05) == pytest.approx((2 + 3 + 4) / 2)
    assert M.ert(runs[1:2], 0.05) == math.inf
    s = M.optimizer_summary(runs, (0.2, 0.05), 0.05)["a"]
    assert s["trials_to_target_median"] == 4 and s["reached"] == 2  # censored run counts budget + 1 = 6
    assert s["by_threshold"]["0.05"]["ert"] == pytest.approx(4.5)
    # bootstrap interval of the median of {2, 6, 4}: a resample's median is 2 (or 6) with probability 7/27 each,
    # so the 2.5 % and 97.5 % quantiles of 1000 resampled medians are the extremes
    assert s["trials_to_target_ci95"] == [2.0, 6.0]
    same = M.optimizer_summary([_run("b", f"p{i}", 0, [0.5, 0.04, 0.0]) for i in range(5)], (0.05,), 0.05)["b"]
    assert same["trials_to_target_median"] == 2 and same["trials_to_target_ci95"] == [2.0, 2.0]


def test_ecdf_bootstrap_band_and_regret_matrix():
    runs = [_run("a", f"p{i}", 0, [0.5, 0.1, 0.01, 0.01, 0.01]) for i in range(4)]
    e = M.ecdf(runs, (0.2, 0.05), 5)["a"]
    assert e == [0.0, 0.5, 1.0, 1.0, 1.0]
    band = M.bootstrap_band(runs, 5, n_boot=50)
    assert band["median"] == pytest.approx([0.5, 0.1, 0.01, 0.01, 0.01])
    assert band["lo"] == pytest.approx(band["hi"])  # identical patients: no spread
    A = M.regret_matrix([_run("a", "p", 0, [0.3, 0.2])], 4)
    assert A.shape == (1, 4) and np.isnan(A[0, 2:]).all()


def test_holm_and_paired_tests_and_win_rate():
    assert M.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    fast = [_run("fast", f"p{i}", 0, [0.5, 0.01, 0.01, 0.01, 0.01]) for i in range(8)]
    slow = [_run("slow", f"p{i}", 0, [0.5, 0.5, 0.5, 0.5, 0.01 if i % 2 else 0.5]) for i in range(8)]
    t = M.paired_tests(fast + slow, 0.05)
    assert len(t) == 1 and t[0]["a"] == "fast" and t[0]["median_diff"] < 0 and t[0]["p"] < 0.05
    assert t[0]["p_holm"] == t[0]["p"]
    w = M.win_rate(fast + slow, 0.05)["matrix"]
    assert w["fast"]["slow"] == 1.0 and w["slow"]["fast"] == 0.0 and w["fast"]["fast"] is None
