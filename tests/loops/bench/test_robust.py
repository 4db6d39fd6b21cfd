"""bench robust: its summaries and targets from cell results, and its misspecified patients."""

from __future__ import annotations

import numpy as np
import pytest

from loops.bench.robust import SETTINGS, robust_targets, summarize_setting


def _result(label: str, regrets: list[float], trusts: list[float | None], seed: int = 0) -> dict:
    rows = [{"t": i + 1, "regret": r, "ask_s": 0.01, "trust": tr, "side_effect_reported": False, "violation": None,
             "delivered": True} for i, (r, tr) in enumerate(zip(regrets, trusts))]
    return {"cell": {"id": f"{label}-{seed}", "optimizer": {"label": label}, "patient": {"target": "p"}, "seed": seed,
                     "budget": len(rows)},
            "status": "ok", "rows": rows, "manifest": {"patient": {"label": f"p{seed}", "family": "f"},
                                                      "surrogate": {"first_trials": {"spearman_oracle": -0.2}}},
            "run_s": 1.0}


def test_summary_counts_detection_and_trials():
    res = [_result("guided", [1, 0.5, 0.08, 0.04] + [0.04] * 4, [0.5, 0.5, 0.2, 0.1] + [0.1] * 4, s) for s in range(3)]
    res += [_result("bo", [1, 0.9, 0.5, 0.2, 0.09, 0.04, 0.04, 0.04], [None] * 8, s) for s in range(3)]
    summ = summarize_setting(res, 8)
    g, b = summ["guided"], summ["bo"]
    assert g["trials_to_0.05_median"] == 4 and b["trials_to_0.05_median"] == 6
    assert g["trials_to_0.1_median"] == 3 and b["trials_to_0.1_median"] == 5
    assert g["detection_within_6"]["fraction_fell"] == 1.0 and "detection_within_6" not in b
    assert g["trust_median_by_trial"][3] == pytest.approx(0.1)
    t = robust_targets({"foreign-model": summ})
    assert t["detection_misspecified_fell_within_6_ge_0.8"]["met"] is True
    assert t["wrong_model_final_regret_le_bo_plus_0.02"]["measured"]["foreign-model/guided"]["met"]
    assert t["zero_hard_violations"]["met"] is True


def test_a_model_that_never_loses_trust_on_a_wrong_patient_misses_detection():
    res = [_result("gradient", [1.0] * 8, [0.5, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8], s) for s in range(4)]
    res += [_result("bo", [1, 0.5, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05], [None] * 8, s) for s in range(4)]
    t = robust_targets({"held-out": summarize_setting(res, 8)})
    assert t["detection_misspecified_fell_within_6_ge_0.8"]["met"] is False
    assert t["wrong_model_final_regret_le_bo_plus_0.02"]["met"] is False


def test_settings_include_the_held_out_family():
    s = SETTINGS(2, 2)
    assert {"home-latent", "home-bandpower", "foreign-model", "user-patient", "held-out"} <= set(s)
    from simulators.registry import is_held_out

    assert all(is_held_out(f) for f in s["held-out"]["cohort"]["families"])


@pytest.mark.slow
def test_foreign_model_patient_serves_a_surrogate_of_the_other_family():
    from bfm_stim.optim import SurrogateCost
    from loops.bench.robust_patients import ForeignModelPatient

    p = ForeignModelPatient(1_000_200)
    cm = p.cost_model(0)
    assert isinstance(cm, SurrogateCost) and p.checkpoint_digest
    space = p.stimulus_space()
    import torch

    stims = space.from_unit(torch.rand(4, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    mean, std = cm.predict(space.to_features([space.project_safe(s) for s in stims], dtype=torch.float64))
    assert mean.shape == (4,) and np.isfinite(mean.numpy()).all()
