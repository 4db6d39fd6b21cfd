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


@pytest.mark.timeout(240)
def test_patients_in_two_processes_give_the_single_process_figures():
    """The per-patient pool (spawned workers re-simulate their patient) changes nothing in the results."""
    import dataclasses

    from loops.bench_surrogate import QUICK

    one = run_surrogate_bench(config=dataclasses.replace(QUICK, amounts_s=(10.0,)), progress=False)
    two = run_surrogate_bench(config=dataclasses.replace(QUICK, amounts_s=(10.0,), workers=2), progress=False)
    assert json.dumps(one["results"], sort_keys=True) == json.dumps(two["results"], sort_keys=True)
    assert one["results"]["pretrained_finetune"]["10"]["forecast_r2_160ms"]["n"] == 2


def test_model_card_benchmark_section_is_rewritten_from_the_json(tmp_path):
    import shutil
    from pathlib import Path

    from loops.ship import BENCH_HEADING, refresh_card_benchmark

    repo = Path(__file__).resolve().parents[2]
    shutil.copy(repo / "bfm_stim" / "checkpoints" / "default" / "MODEL_CARD.md", tmp_path / "MODEL_CARD.md")
    head = (tmp_path / "MODEL_CARD.md").read_text().split(BENCH_HEADING)[0]
    bench = json.loads((repo / "bench" / "surrogate.json").read_text())
    bench["targets"]["forecast_r2_40ms"] = 0.123456  # a figure only the rewritten section can hold
    (tmp_path / "b.json").write_text(json.dumps(bench))
    text = refresh_card_benchmark(tmp_path, tmp_path / "b.json").read_text()
    assert text.startswith(head) and text.count(BENCH_HEADING) == 1 and "0.123456" in text
    n_rows = sum(len(per) for per in bench["results"].values())
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and "R² 40 ms" not in line) == n_rows
