"""Smoke test of the surrogate benchmark (quick size): JSON structure and finite values, not targets."""

from __future__ import annotations

import json
import math

import pytest

from loops.bench_surrogate import METRICS, run_surrogate_bench, write_plot


@pytest.mark.timeout(240)
def test_quick_bench_structure(tmp_path):
    res = run_surrogate_bench(quick=True, progress=False)
    json.dumps(res)  # JSON-able
    methods = {"zero_shot", "pretrained_embedding", "pretrained_finetune", "scratch", "arx", "linear", "persistence"}
    assert set(res["results"]) == methods
    assert {p["family"] for p in res["patients"]} >= {"cortex-jr-v0", "cortex-jr-epileptic-v0"}
    for m, per in res["results"].items():
        assert set(per) == {"0", "10"}
        for a, mets in per.items():
            assert set(mets) == set(METRICS)
            for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2"):
                v = mets[k]
                assert v["n"] == 2 and math.isfinite(v["median"]) and v["iqr"][0] <= v["median"] <= v["iqr"][1]
            if m not in ("arx", "linear", "persistence"):
                assert 0.0 <= mets["coverage_90"]["median"] <= 1.0
                assert math.isfinite(mets["latent_hidden_r2"]["median"])
    assert res["throughput"]["candidates_per_s_signal"] > 0
    assert set(res["targets"]["met"]) >= {"forecast_40ms>=0.85", "stim_effect>=0.7"}
    png = write_plot(res, tmp_path / "curves.png")
    assert png.stat().st_size > 1000
