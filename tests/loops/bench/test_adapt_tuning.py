"""The adaptation sweep: its validation patients, its picks, and that the surrogate bench uses them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

import simulators
from bfm_stim.exceptions import ValidationError
from loops.offline import repo_path
from loops.bench.adapt_tuning import FULL as FULL_TUNING
from loops.bench.adapt_tuning import LONG_FROM_S, LONG_SETTINGS
from loops.bench.adapt_tuning import (QUICK, REST, SCORE_METRICS, _pick, run_adapt_tuning, setting_key,
                                      unpack_setting, validation_seeds)

TUNING_JSON = Path(__file__).resolve().parents[3] / "bench" / "adapt_tuning.json"
REST_JSON = Path(__file__).resolve().parents[3] / "bench" / "adapt_tuning_rest.json"


def test_validation_patients_are_neither_reported_nor_pretrained():
    from loops.bench.surrogate import FULL as BENCH

    val = validation_seeds(8)
    reported = simulators.cohort("eval", BENCH.n_patients + 1)  # the 20 reported + the scratch validation patient
    assert len(set(val)) == 8 and not set(val) & set(reported)
    assert all(simulators.cohort_of(s) == "eval" for s in val)


def test_pick_takes_the_best_median_score_and_breaks_ties_to_fewer_steps():
    grid = ((30, 1e-3), (100, 1e-4), (300, 1e-4))
    med = {setting_key(*s): {"score": v} for s, v in zip(grid, (0.5, 0.9, 0.9))}
    assert _pick(med, grid) == {"steps": 100, "lr": 1e-4, "anchor": 0.0, "score": 0.9}
    med[setting_key(300, 1e-4)]["score"] = 0.95
    assert _pick(med, grid)["steps"] == 300
    # an anchored setting has its own key; on a tie it gives way to the same steps without an anchor
    grid += ((300, 1e-4, 30.0),)
    med[setting_key(300, 1e-4, 30.0)] = {"score": 0.95}
    assert setting_key(300, 1e-4, 30.0) == "300@0.0001+a30" and setting_key(300, 1e-4, 0.0) == "300@0.0001"
    assert _pick(med, grid)["anchor"] == 0.0
    med[setting_key(300, 1e-4, 30.0)]["score"] = 0.96
    assert _pick(med, grid) == {"steps": 300, "lr": 1e-4, "anchor": 30.0, "score": 0.96}
    with pytest.raises(ValidationError, match="setting"):
        unpack_setting((300,))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("rest", [False, True], ids=["probes", "rest"])
def test_quick_sweep_structure(rest, monkeypatch):
    import importlib

    adapt_mod = importlib.import_module("bfm_stim.model.adapt")  # the package re-exports the function as `adapt`
    calls, real = [], adapt_mod.adapt

    def spy(*args, **kw):
        calls.append((kw["steps"], kw["lr"], kw["anchor"]))
        return real(*args, **kw)

    monkeypatch.setattr(adapt_mod, "adapt", spy)  # QUICK runs inline (one worker), so the sweep calls this
    res = run_adapt_tuning(quick=True, rest=rest, progress=False)
    json.dumps(res)
    assert res["data"] == ("rest only" if rest else "rest + probes")
    assert res["config"]["amount_s"] == (0.0 if rest else QUICK.amount_s)
    assert [p["seed"] for p in res["validation_patients"]] == validation_seeds(QUICK.n_val)
    for method, grid in QUICK.grids:
        assert set(res["medians"][method]) == {setting_key(*unpack_setting(s)) for s in grid}
        for key, vals in res["medians"][method].items():
            row = res["per_patient"][0]["rows"][method][key]  # one patient: the median is its figure
            assert vals["score"] == pytest.approx(sum(row[k] for k in SCORE_METRICS))
            assert all(math.isfinite(row[k]) for k in SCORE_METRICS)
        pick = res["picks"][method]
        assert pick["score"] == max(v["score"] for v in res["medians"][method].values())
    # every setting reached adapt() as given, the anchored one with its anchor (the real adapt ran)
    assert sorted(calls) == sorted(unpack_setting(s) for _, grid in QUICK.grids for s in grid)


def test_surrogate_bench_uses_the_tuned_settings():
    """FULL's adaptation settings are the picks of the committed sweep (rerun both when either changes)."""
    from loops.bench.surrogate import FULL as BENCH

    picks = json.loads(TUNING_JSON.read_text())["picks"]
    fin, emb, scr = picks["pretrained_finetune"], picks["pretrained_embedding"], picks["scratch"]
    assert (BENCH.steps_full, BENCH.lr_full, BENCH.anchor_full) == (fin["steps"], fin["lr"], fin["anchor"])
    assert (BENCH.steps_embedding, BENCH.lr_embedding, BENCH.anchor_embedding) == (emb["steps"], emb["lr"], emb["anchor"])
    assert (BENCH.steps_scratch, BENCH.scratch_lrs, scr["anchor"]) == (scr["steps"], (scr["lr"],), 0.0)
    for method, pick in picks.items():  # and no per_amount entry overrides them at 2 min
        assert BENCH.setting(method, 120.0) == (pick["steps"], pick["lr"], pick["anchor"])


@pytest.mark.parametrize("amount", [10.0, 30.0, 600.0])
def test_surrogate_bench_uses_each_amounts_own_picks(amount):
    """At its other amounts FULL uses the picks of the sweep at that amount (``--amount``), every trained method."""
    from loops.bench.surrogate import FULL as BENCH

    assert amount in BENCH.trained_amounts_s
    res = json.loads((TUNING_JSON.parent / f"adapt_tuning_{amount:g}s.json").read_text())
    assert res["config"]["amount_s"] == amount and res["data"] == "rest + probes"
    extra = dict(LONG_SETTINGS) if amount >= LONG_FROM_S else {}
    assert res["config"]["grids"] == [[m, [list(s) for s in g + extra.get(m, ())]] for m, g in FULL_TUNING.grids]
    for method, pick in res["picks"].items():
        assert BENCH.setting(method, amount) == (pick["steps"], pick["lr"], pick["anchor"])


def test_amount_must_be_probe_seconds():
    with pytest.raises(ValidationError, match="amount_s"):
        run_adapt_tuning(quick=True, amount_s=0.0, progress=False)
    with pytest.raises(ValidationError, match="amount_s"):
        run_adapt_tuning(quick=True, amount_s=float("nan"), progress=False)
    with pytest.raises(ValidationError, match="rest"):
        run_adapt_tuning(quick=True, rest=True, amount_s=30.0, progress=False)


@pytest.mark.parametrize("args, field", [(["--amount", "0"], "--amount"), (["--amount", "nan"], "--amount"),
                                         (["--rest", "--amount", "30"], "--amount"),
                                         (["--reuse", "no/such/sweep.json"], "--reuse")])
def test_cli_rejects_bad_amounts_naming_the_flag(args, field, capsys):
    from loops.cli import main

    assert main(["bench", "adapt-tuning", "--quick", *args]) == 2
    assert field in capsys.readouterr().err


def test_adapt_command_uses_the_rest_sweep_picks():
    """``bfm-stim adapt``'s defaults are the picks of the committed rest-only sweep (rerun it when either changes)."""
    from loops import adapt as cmd

    res = json.loads(REST_JSON.read_text())
    assert res["data"] == "rest only" and res["config"]["amount_s"] == 0.0
    for mode, method in (("full", "pretrained_finetune"), ("embedding", "pretrained_embedding")):
        pick = res["picks"][method]
        assert (cmd.DEFAULT_STEPS[mode], cmd.DEFAULT_LR[mode], cmd.DEFAULT_ANCHOR[mode]) == (
            pick["steps"], pick["lr"], pick.get("anchor", 0.0))  # a sweep without anchored settings picks none
    assert (cmd.DEFAULT_BATCH, cmd.DEFAULT_MAX_CHANNELS) == (REST.batch_size, REST.max_channels)
    assert res["config"] == json.loads(json.dumps(dataclasses.asdict(REST)))  # the sweep that is committed is REST


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_reuse_takes_over_matching_rows_and_refuses_other_checkpoints(tmp_path):
    """An extended grid reruns only its new settings; rows from another checkpoint or code are refused."""
    one = dataclasses.replace(QUICK, grids=(("scratch", ((1, 1e-3),)),))
    first = run_adapt_tuning(config=one, progress=False)
    path = tmp_path / "first.json"
    path.write_text(json.dumps(first))
    two = dataclasses.replace(QUICK, grids=(("scratch", ((1, 1e-3), (2, 1e-3))),))
    res = run_adapt_tuning(config=two, progress=False, reuse=[path])
    assert res["reused"] == [repo_path(path)]  # no path of this machine in committed JSON
    old, new = first["per_patient"][0]["rows"], res["per_patient"][0]["rows"]
    assert new["zero_shot"] == old["zero_shot"]
    assert new["scratch"]["1@0.001"] == {**old["scratch"]["1@0.001"], "reused_from": repo_path(path)}
    assert "reused_from" not in new["scratch"]["2@0.001"] and new["scratch"]["2@0.001"]["seconds"] > 0
    assert set(res["medians"]["scratch"]) == {"1@0.001", "2@0.001"}

    first["per_patient"][0]["rows"]["zero_shot"]["-"]["forecast_r2_40ms"] += 0.01  # as if another checkpoint
    path.write_text(json.dumps(first))
    with pytest.raises(ValidationError, match=r"--reuse.*zero-shot forecast_r2_40ms"):
        run_adapt_tuning(config=two, progress=False, reuse=[path])
    first["per_patient"][0]["i"] += 1  # the same seed as another patient index: not the same sweep
    path.write_text(json.dumps(first))
    with pytest.raises(ValidationError, match=r"--reuse.*same validation patients"):
        run_adapt_tuning(config=two, progress=False, reuse=[path])


@pytest.mark.parametrize("change, field", [({"config": {"n_test": 99}}, "n_test is 99 there, 4 here"),
                                           ({"data": "rest only"}, "data is 'rest only' there"),
                                           ({"per_patient": [{"seed": 1, "i": 0, "family": "x", "rows": {}}]},
                                            "KeyError: 'zero_shot'"),
                                           (None, "JSONDecodeError")])
def test_reuse_refuses_other_sweeps_before_any_work(tmp_path, change, field):
    from loops.bench.adapt_tuning import _load_reuse

    path = tmp_path / "old.json"
    if change is None:
        path.write_text("{not json")
    else:
        old = {"config": dataclasses.asdict(QUICK), "data": "rest + probes", "per_patient": []}
        old["config"].update(change.get("config", {}))
        old["data"] = change.get("data", old["data"])
        old["per_patient"] = change.get("per_patient", [])
        path.write_text(json.dumps(old))
    with pytest.raises(ValidationError, match=rf"--reuse=.*{field}"):
        _load_reuse([path], QUICK)
