"""Smoke test of the surrogate-ranking benchmark (quick: 2 patients x 12 stimuli x 2 repeats)."""

from __future__ import annotations

import math

import pytest

from loops.bench_ranking import FAMILIES, run_ranking_bench


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_ranking_bench_structure():
    r = run_ranking_bench(quick=True, workers=1)
    assert r["quick"] and r["n_patients"] == 2 and r["n_stimuli"] == 12
    assert {x["family"] for x in r["patients"]} == set(FAMILIES)
    for row in r["patients"]:
        for k in ("spearman_response_head", "spearman_rollout_latents"):
            assert -1.0 <= row[k] <= 1.0, (k, row[k])
        assert 0.0 <= row["top3_best_percentile"] <= row["top1_percentile"] < 1.0
        assert 0 <= row["top3_side_effects"] <= 3
        assert row["true_cost_min"] <= row["true_cost_median"] and math.isfinite(row["true_cost_off"])
        assert row["top1"]["kind"] == "electrical"
    s = r["summary"]["all"]["spearman_response_head"]
    assert s["n"] == 2 and s["iqr"][0] <= s["median"] <= s["iqr"][1]
