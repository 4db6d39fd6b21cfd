"""The optimizer benchmark: its per-run figures on hand-made harness results, and a quick run (2 patients x 1 seed
x budget 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loops.bench.optimizers import THRESHOLD, _summary, legacy_row, run_optimizer_bench

SMOKE = ("random", "bo", "egreedy")  # the full set runs in `bfm-stim bench optimizers`; guided asks took ~20 s here at 2 torch threads on a loaded machine; ~1-2 s now


def _result(costs, *, refused_at=(), side_effects=(), c_opt=1.0, c_off=3.0, label="bo"):
    """A harness cell result whose delivered trials' recommendations have oracle costs ``costs``."""
    rows, k = [], 0
    for i in range(len(costs) + len(refused_at)):
        if i in refused_at:  # refused by the safety check: not delivered, nothing told or recommended
            rows.append({"delivered": False, "violation": "amplitude_ma", "oracle_rec_cost": None, "ask_s": 0.1,
                         "rec_s": 0.01, "side_effect_reported": None, "recommendation": None})
            continue
        rows.append({"delivered": True, "violation": None, "oracle_rec_cost": costs[k], "ask_s": 0.1, "rec_s": 0.01,
                     "side_effect_reported": k in side_effects, "recommendation": {"trial": k}})
        k += 1
    return {"manifest": {"oracle": {"cost": c_opt, "off_cost": c_off, "grid_cost": 0.9, "stimulus": {}},
                         "patient": {"id": "bg-beta-v0", "seed": 7}, "objective": "test"},
            "rows": rows, "cell": {"seed": 0, "optimizer": {"label": label}}, "status": "ok"}


def test_legacy_row_counts_trials_to_target_on_known_regret():
    # c_opt 1, c_off 3: regret (c - 1) / 3 = .667 .333 .04 .03 .017 reaches 0.05 at trial 3;
    # by the gap (c - 1) / 2 = 1 .5 .06 .045 .025 at trial 4. The refused stimulus is no trial.
    row = legacy_row(_result([3.0, 2.0, 1.12, 1.09, 1.05], refused_at=(2,), side_effects=(0, 3)), budget=10)
    assert row["regret"] == pytest.approx([2 / 3, 1 / 3, 0.04, 0.03, 0.05 / 3])
    assert row["regret_gap"] == pytest.approx([1.0, 0.5, 0.06, 0.045, 0.025])
    assert row["trials_to_target"] == 3 and not row["censored"]
    assert row["trials_to_target_gap"] == 4 and not row["censored_gap"]
    assert row["final_regret"] == pytest.approx(0.05 / 3) and row["final_regret_gap"] == pytest.approx(0.025)
    assert row["violations"] == 1 and row["side_effect_trials"] == 2 and row["best"] == {"trial": 4}
    assert row["s_per_ask"] == pytest.approx(0.11)  # an ask's time includes the previous recommendation's
    never = legacy_row(_result([3.0, 2.9, 2.0]), budget=10)  # best regret 1/3: censored at budget + 1
    assert never["trials_to_target"] == 11 and never["censored"] and never["trials_to_target_gap"] == 11


def test_summary_medians_over_runs():
    rows = [legacy_row(_result(c, label=o), budget=10) for o, c in
            [("bo", [1.0]), ("bo", [3.0, 1.1, 1.0]), ("bo", [3.0] * 4), ("random", [3.0, 3.0])]]
    s = _summary(rows, ("bo", "random", "cmaes"))
    assert set(s) == {"bo", "random"}  # an optimizer without runs has no summary
    assert s["bo"]["runs"] == 3 and s["bo"]["trials_to_target_median"] == 2.0 and s["bo"]["censored"] == 1
    assert s["bo"]["trials_to_target_iqr"] == [1.5, 6.5]  # of 1, 2, 11
    assert s["random"]["trials_to_target_median"] == 11.0 and s["random"]["final_regret_median"] == pytest.approx(2 / 3)


def _first_hit(curve: list[float], budget: int) -> int:
    return next((i + 1 for i, r in enumerate(curve) if r <= THRESHOLD), budget + 1)


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
    for run in r["runs"]:
        assert len(run["regret"]) == 10 and all(math.isfinite(v) for v in run["regret"])
        # trials to target recounted from the run's own regret curves
        assert run["trials_to_target"] == _first_hit(run["regret"], 10)
        assert run["trials_to_target_gap"] == _first_hit(run["regret_gap"], 10)
        assert run["censored"] == (run["trials_to_target"] == 11)
        # the normalization (by c_off) and the strict one (by the gap c_off - c_opt) describe the same costs
        c_opt, c_off = run["oracle_cost"], run["baseline_cost"]
        assert 0 <= c_opt < c_off  # a distance to the healthy reference, and stimulation can improve on off
        for a, b in zip(run["regret"], run["regret_gap"]):
            assert a * c_off == pytest.approx(b * (c_off - c_opt), rel=1e-9, abs=1e-12)
        assert run["trials_to_target_gap"] >= run["trials_to_target"]  # the gap is the smaller denominator
    for name, s in r["summary"].items():
        mine = [x for x in r["runs"] if x["optimizer"] == name]
        assert s["hard_violations"] == 0, name
        assert s["trials_to_target_median"] == np.median([x["trials_to_target"] for x in mine])
        assert s["final_regret_median"] == np.median([x["regret"][-1] for x in mine])
        assert math.isfinite(s["s_per_ask_median"]) and s["s_per_ask_median"] > 0
    assert r["targets"]["hard_violations"]["met"] is True
    ask = r["bench_ask_40_obs"]
    assert ask["n_obs"] == 40 and ask["bo_s"] == ask["bo_all_s"][0] and ask["bare_s"] == ask["bare_all_s"][0]
    assert ask["bo_s"] > 0 and ask["bare_s"] > 0
    # the JSON names the figure without a path of this machine (tmp_path is outside the repository: its name)
    assert r["figure"] == "regret.png" and (tmp_path / "regret.png").is_file()
