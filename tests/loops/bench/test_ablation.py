"""Objective ablation: variants differ only in their loss switches, runs are reused, figures are finite."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from bfm_stim.exceptions import ValidationError
from bfm_stim.model import load_checkpoint
from loops.bench.ablation import FULL, QUICK, VARIANTS, AblationConfig, run_ablation, variant_config
from loops.pretrain import load_config


def test_variants_switch_one_objective_each_and_share_the_corpus(tmp_path):
    base = load_config(FULL.config)  # a bundled config, by name
    assert base.loss.masked and base.loss.contrastive and base.loss.spectral_weight > 0  # each variant removes something
    cfgs = {name: variant_config(base, over, tmp_path / "corpus") for name, over in VARIANTS}
    assert cfgs["full"].loss == base.loss
    assert not cfgs["no_masked"].loss.masked and not cfgs["no_contrastive"].loss.contrastive
    assert cfgs["no_spectral"].loss.spectral_weight == 0.0
    for name, c in cfgs.items():
        assert c.model == base.model and c.corpus == cfgs["full"].corpus, name
        assert c.corpus.dir == str((tmp_path / "corpus").resolve())
        changed = {k for k, v in c.loss.to_dict().items() if v != base.loss.to_dict()[k]}
        assert len(changed) == (0 if name.startswith("full") else 1), (name, changed)
        assert c.train == (dataclasses.replace(base.train, seed=1) if name == "full_seed1" else base.train), name
    assert base.train.seed != 1  # the replicate is another training run
    with pytest.raises(ValidationError, match="maskd"):
        variant_config(base, (("maskd", False),), tmp_path)
    with pytest.raises(ValidationError, match="train.sed"):
        variant_config(base, (("train.sed", 1),), tmp_path)
    with pytest.raises(ValidationError, match="variants"):
        AblationConfig(variants=(("a", ()), ("a", ())))
    with pytest.raises(ValidationError, match="ablation.workers"):
        AblationConfig(workers=0)
    with pytest.raises(ValidationError, match="amount_s"):
        AblationConfig(amount_s=float("nan"))


def test_select_variants_keeps_the_reference_first():
    from loops.bench.ablation import select_variants

    assert [n for n, _ in select_variants("full, full_seed1")] == ["full", "full_seed1"]
    assert select_variants(["full", "no_masked", "full"]) == VARIANTS[:2]
    for bad, what in (("full,no_maskd", "no_maskd"), ("no_masked,full", "reference"), ("", "names")):
        with pytest.raises(ValidationError, match=what):
            select_variants(bad)


@pytest.mark.slow
def test_quick_ablation_trains_each_variant_then_reuses_it(tmp_path):
    res = run_ablation(quick=True, runs_dir=tmp_path, progress=False)
    names = [n for n, _ in QUICK.variants]
    assert set(res["results"]) == set(names) and set(res["paired_change_vs_reference"]) == set(names[1:])
    ch = res["paired_change_vs_reference"]["no_masked"]["zero_shot"]["forecast_r2_40ms"]
    d = [p["rows"]["no_masked"]["zero_shot"]["forecast_r2_40ms"] - p["rows"]["full"]["zero_shot"]["forecast_r2_40ms"]
         for p in res["per_patient"]]
    assert ch["n"] == QUICK.n_patients and ch["n_better"] == sum(x > 0 for x in d)
    assert ch["q25"] <= ch["median"] <= ch["q75"] and abs(ch["median"] - sorted(d)[0] / 2 - sorted(d)[1] / 2) < 1e-12
    for name in names:
        assert not res["training"][name]["reused"]
        _, info = load_checkpoint(tmp_path / name / "model.pt")
        assert info["step"] == QUICK.steps
        assert info["extra"]["pretrain_config"]["loss"]["masked"] is (name != "no_masked")
        for mode in ("zero_shot", "embedding"):
            for k, v in res["results"][name][mode].items():
                assert math.isfinite(v["median"]) and v["q25"] <= v["median"] <= v["q75"], (name, mode, k)
    assert len(res["per_patient"]) == QUICK.n_patients
    again = run_ablation(quick=True, runs_dir=tmp_path, progress=False)
    assert all(again["training"][n]["reused"] for n in names)
    assert again["results"] == res["results"]  # same weights, same patients: the same figures
    longer = run_ablation(config=dataclasses.replace(QUICK, steps=QUICK.steps + 1, variants=QUICK.variants[:1]),
                          runs_dir=tmp_path, progress=False)
    assert not longer["training"]["full"]["reused"]  # another step count is another run
    assert load_checkpoint(tmp_path / "full" / "model.pt")[1]["step"] == QUICK.steps + 1


@pytest.mark.slow
def test_cli_writes_the_ablation_json(tmp_path):
    from loops.cli import main

    out = tmp_path / "a.json"
    assert main(["-q", "bench", "ablation", "--quick", "--json", str(out), "--runs-dir", str(tmp_path / "runs"),
                 "--variants", "full,full_seed1"]) == 0
    res = json.loads(out.read_text())
    assert res["reference"] == "full" and list(res["paired_change_vs_reference"]) == ["full_seed1"]
    (m0, _), (m1, info) = (load_checkpoint(tmp_path / "runs" / n / "model.pt") for n in ("full", "full_seed1"))
    assert info["extra"]["pretrain_config"]["train"]["seed"] == 1
    from loops.pretrain import weights_digest

    assert weights_digest(m0) != weights_digest(m1)  # another training run, not a copy
    # the reference must come first; a subset needs its own --json (never over the whole ablation's file)
    assert main(["-q", "bench", "ablation", "--quick", "--variants", "no_masked", "--json", str(out)]) == 2
    assert main(["-q", "bench", "ablation", "--quick", "--variants", "full"]) == 2
