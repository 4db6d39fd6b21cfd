"""Smoke test of the surrogate benchmark (quick size): JSON structure and finite values, not targets."""

from __future__ import annotations

import json
import math

import pytest

from bfm_stim.exceptions import ValidationError
from loops.bench.surrogate import FULL, METRICS, BenchConfig, remeasure_throughput, run_surrogate_bench, write_plot


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_bench_structure(tmp_path):
    res = run_surrogate_bench(quick=True, progress=False)
    json.dumps(res)  # JSON-able
    methods = {"zero_shot", "pretrained_embedding", "pretrained_finetune", "scratch", "arx", "linear", "persistence",
               "state_oracle"}
    assert set(res["results"]) == methods
    assert {p["family"] for p in res["patients"]} >= {"cortex-jr-v0", "cortex-jr-epileptic-v0"}
    for m, per in res["results"].items():
        assert set(per) == {"0", "10"}
        for a, mets in per.items():
            assert set(mets) == set(METRICS)
            for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2"):
                v = mets[k]
                assert v["n"] == 2 and math.isfinite(v["median"]) and v["iqr"][0] <= v["median"] <= v["iqr"][1]
            if m not in ("arx", "linear", "persistence", "state_oracle"):
                assert 0.0 <= mets["coverage_90"]["median"] <= 1.0
                assert math.isfinite(mets["latent_hidden_r2"]["median"])
    fams = {p["family"] for p in res["patients"]}
    assert set(res["results_by_family"]) == fams
    for f in fams:  # one patient per family here: its median is that patient's figure
        r = res["results_by_family"][f]["zero_shot"]["10"]["forecast_r2_40ms"]
        assert r["n"] == 1 and math.isfinite(r["median"])
    per_fam = [res["results_by_family"][f]["zero_shot"]["10"]["forecast_r2_40ms"]["median"] for f in fams]
    assert sum(per_fam) / 2 == pytest.approx(res["results"]["zero_shot"]["10"]["forecast_r2_40ms"]["median"])
    assert res["throughput"]["candidates_per_s_signal"] > 0
    assert set(res["targets"]["met"]) >= {"forecast_40ms>=0.85", "stim_effect>=0.7"}
    assert set(res["targets"]["ceiling_state_oracle"]) == {"forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2"}
    png = write_plot(res, tmp_path / "curves.png")
    assert png.stat().st_size > 1000
    path = tmp_path / "surrogate.json"
    path.write_text(json.dumps(res))
    speed = remeasure_throughput(path)
    again = json.loads(path.read_text())
    assert again["throughput"] == speed and speed["remeasured_alone"] and speed["candidates_per_s_signal"] > 0
    assert speed["n_channels"] == res["throughput"]["n_channels"]  # the same patient's montage
    assert {k: v for k, v in again.items() if k != "throughput"} == json.loads(json.dumps(
        {k: v for k, v in res.items() if k != "throughput"}))  # nothing else touched


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_patients_in_two_processes_give_the_single_process_figures():
    """The per-patient pool (spawned workers re-simulate their patient) changes nothing in the results."""
    import dataclasses

    from loops.bench.surrogate import QUICK

    one = run_surrogate_bench(config=dataclasses.replace(QUICK, amounts_s=(10.0,)), progress=False)
    two = run_surrogate_bench(config=dataclasses.replace(QUICK, amounts_s=(10.0,), workers=2), progress=False)
    assert json.dumps(one["results"], sort_keys=True) == json.dumps(two["results"], sort_keys=True)
    assert one["results"]["pretrained_finetune"]["10"]["forecast_r2_160ms"]["n"] == 2


def test_state_oracle_is_the_ceiling():
    """The state oracle (mean of noise continuations from the true state at onset) forecasts better than
    the models of the observations on the same windows: the ARX model, the linear path and the zero-shot
    BFM. An oracle whose branches did not share the trial's past would forecast at R² about 0."""
    from loops.bench.data import make_eval_patient
    from loops.bench.surrogate import _bench_patient, QUICK
    from bfm_stim.model.checkpoint import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint
    import dataclasses

    geo = dict(fs=250.0, patch_len=25, ctx_patches=12, hor_patches=10, rest_s=8.0, probe_s=10.0, cal_s=8.0,
               n_test=8, hidden_s=6.0)
    ep = make_eval_patient("cortex-jr-v0", 1_000_004, oracle_branches=16, **geo)
    model, _ = load_checkpoint(default_checkpoint())
    bc = dataclasses.replace(QUICK, amounts_s=(10.0,), trained_amounts_s=(1e9,))  # no training: zero-shot + baselines
    raw = _bench_patient(dict(bc=bc, i=0, lr_scratch=1e-3), ep=ep, model=model)["raw"]
    o = raw["state_oracle"][10.0]
    for m in ("zero_shot", "arx", "linear"):
        for k in ("forecast_r2_40ms", "forecast_r2_160ms", "stim_effect_r2"):
            assert o[k] > raw[m][10.0][k], (m, k, o[k], raw[m][10.0][k])
    assert o["forecast_r2_40ms"] > 0.6 and o["stim_effect_r2"] > 0.7
    assert o["forecast_r2_40ms"] < 0.99  # branches reusing the trial's own noise would forecast it exactly
    assert ep.oracle_fut.shape == ep.fut.shape == ep.oracle_cf.shape


def test_model_card_benchmark_section_is_rewritten_from_the_json(tmp_path):
    import shutil
    from pathlib import Path

    from loops.ship import BENCH_HEADING, refresh_card_benchmark

    repo = Path(__file__).resolve().parents[3]
    shutil.copy(repo / "bfm_stim" / "checkpoints" / "default" / "MODEL_CARD.md", tmp_path / "MODEL_CARD.md")
    head = (tmp_path / "MODEL_CARD.md").read_text().split(BENCH_HEADING)[0]
    bench = json.loads((repo / "bench" / "surrogate.json").read_text())
    bench["targets"]["forecast_r2_40ms"] = 0.123456  # a figure only the rewritten section can hold
    (tmp_path / "b.json").write_text(json.dumps(bench))
    text = refresh_card_benchmark(tmp_path, tmp_path / "b.json").read_text()
    assert text.startswith(head) and text.count(BENCH_HEADING) == 1 and "0.123456" in text
    n_rows = sum(len(per) for per in bench["results"].values())
    assert sum(1 for line in text.splitlines() if line.startswith("| ") and "R² 40 ms" not in line) == n_rows


def test_per_amount_settings_override_the_defaults_only_where_given():
    bc = BenchConfig(steps_embedding=5, lr_embedding=1e-3, steps_full=6, lr_full=2e-4, steps_scratch=7,
                     scratch_lrs=(3e-3,), anchor_full=30.0,
                     per_amount=((10.0, (("pretrained_finetune", 30, 5e-4), ("pretrained_embedding", 40, 3e-3, 100.0))),))
    assert bc.setting("pretrained_finetune", 10.0) == (30, 5e-4, 0.0)  # a 2-element entry has no anchor
    assert bc.setting("pretrained_finetune", 120.0) == (6, 2e-4, 30.0)
    assert bc.setting("pretrained_embedding", 10.0) == (40, 3e-3, 100.0)
    assert bc.setting("pretrained_embedding", 120.0) == (5, 1e-3, 0.0)
    assert bc.setting("scratch", 10.0) == (7, 3e-3, 0.0)
    assert bc.setting("scratch", 10.0, lr_scratch=1e-3) == (7, 1e-3, 0.0)  # the bench's validation-patient LR sweep
    with pytest.raises(ValueError, match="arx"):
        bc.setting("arx", 10.0)
    assert all(a in FULL.trained_amounts_s for a, _ in FULL.per_amount)
    with pytest.raises(ValidationError, match="per_amount"):
        BenchConfig(per_amount=((45.0, (("scratch", 10, 1e-3),)),))  # not an amount of the bench
    with pytest.raises(ValidationError, match="per_amount method"):
        BenchConfig(per_amount=((10.0, (("finetune", 10, 1e-3),)),))  # a misspelt method would fall back silently
    with pytest.raises(ValidationError, match="per_amount scratch"):
        BenchConfig(per_amount=((10.0, (("scratch", 10, float("nan")),)),))
    with pytest.raises(ValidationError, match="anchor >= 0"):
        BenchConfig(per_amount=((10.0, (("pretrained_embedding", 10, 1e-3, -1.0),)),))
    with pytest.raises(ValidationError, match="scratch has not"):  # nothing pretrained to pull towards
        BenchConfig(per_amount=((10.0, (("scratch", 10, 1e-3, 30.0),)),))
    with pytest.raises(ValidationError, match=r"\(steps, lr\) or \(steps, lr, anchor\)"):
        BenchConfig(per_amount=((10.0, (("scratch", 10),)),))
