"""Smoke test of the optimizer benchmark (quick: 2 patients x 1 seed x budget 10)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from loops.bench.optimizers import run_optimizer_bench


SMOKE = ("random", "bo", "egreedy")  # the full set runs in `bfm-stim bench optimizers`; guided asks took ~20 s here at 2 torch threads on a loaded machine; ~1-2 s now


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_bench_structure_safety_and_finite(tmp_path):
    # checkpoint=False: the simulators' healthy-reference objective, so the smoke test does not pay for
    # BFM-encoding every oracle trial; the latent objective is exercised in tests/loops/test_offline.py.
    r = run_optimizer_bench(quick=True, optimizers=SMOKE, checkpoint=False, png=tmp_path / "regret.png")
    assert r["quick"] and r["n_patients"] == 2 and r["budget"] == 10 and r["objective"]
    assert {x["family"] for x in r["runs"]} == {"bg-beta-v0", "cortex-jr-epileptic-v0"}
    assert len(r["runs"]) == 2 * len(SMOKE)
    assert set(r["summary"]) == set(SMOKE)
    for name, s in r["summary"].items():
        assert s["hard_violations"] == 0, name
        assert 1 <= s["trials_to_target_median"] <= 11
        assert all(math.isfinite(v) for v in (s["final_regret_median"], s["s_per_ask_median"]))
    for run in r["runs"]:
        assert len(run["regret"]) == 10 and all(math.isfinite(v) for v in run["regret"])
        assert run["censored"] == (run["trials_to_target"] == 11)
        # the normalization (by c_off) and the strict one (by the gap c_off - c_opt) describe the same costs
        c_opt, c_off = run["oracle_cost"], run["baseline_cost"]
        for a, b in zip(run["regret"], run["regret_gap"]):
            assert a * c_off == pytest.approx(b * (c_off - c_opt), rel=1e-9, abs=1e-12)
        assert run["censored_gap"] == (run["trials_to_target_gap"] == 11)
        assert run["trials_to_target_gap"] >= run["trials_to_target"] or c_off - c_opt > c_off
    assert r["targets"]["hard_violations"]["met"] is True
    assert r["bench_ask_40_obs"]["bo_s"] > 0 and r["bench_ask_40_obs"]["bare_s"] > 0
    # the JSON names the figure without a path of this machine (tmp_path is outside the repository: its name)
    assert r["figure"] == "regret.png" and (tmp_path / "regret.png").is_file()
