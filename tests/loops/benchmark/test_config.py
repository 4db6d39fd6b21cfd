"""Benchmark configs: the shipped ones load and match the issue; bad values name field, value and range."""

from __future__ import annotations

import pytest

from bfm_stim.exceptions import ConfigError, ValidationError
from loops.benchmark.cells import expand, patients
from loops.benchmark.config import config_from_dict, load_config

from .conftest import REPO

MIN = {"optimizers": [{"label": "random", "name": "random"}]}


def test_default_config_is_the_issues_benchmark():
    cfg = load_config(REPO / "loops" / "configs" / "benchmark.toml")
    assert cfg.budget == 40 and cfg.seeds == 3 and cfg.cohort.n_patients >= 10
    assert set(cfg.cohort.families) == {"bg-beta-v0", "cortex-jr-epileptic-v0"}
    names = {o.name for o in cfg.optimizers}
    assert {"random", "sobol", "cmaes", "bo", "gradient", "guided", "egreedy", "optuna-tpe", "optuna-gp"} <= names
    fams = [p.target for p in patients(cfg)]
    assert fams.count("bg-beta-v0") == fams.count("cortex-jr-epileptic-v0") == cfg.cohort.n_patients // 2
    assert all(p.seed >= 1_000_000 for p in patients(cfg))  # evaluation cohort only
    assert len(expand(cfg)) == cfg.cohort.n_patients * cfg.seeds * len(cfg.optimizers)


def test_quick_and_example_configs_load():
    q = load_config(REPO / "loops" / "configs" / "benchmark-quick.toml")
    assert q.name == "quick" and {"optuna-tpe", "optuna-gp"} <= {o.name for o in q.optimizers}
    u = load_config(REPO / "examples" / "benchmark-user.toml")
    assert [p.kind for p in patients(u)] == ["class", "class", "tabular"]


@pytest.mark.parametrize("patch, field, text", [
    ({"benchmark": {"budget": 0}}, "benchmark.budget", "[1, 100000]"),
    ({"benchmark": {"seeds": -1}}, "benchmark.seeds", "[1, 10000]"),
    ({"benchmark": {"seeding": "random"}}, "benchmark.seeding", "'cell' or 'legacy'"),
    ({"cohort": {"families": ["nope-v0"]}}, "cohort.families", "ids among"),
    ({"objective": {"kind": "psychic"}}, "objective.kind", "latent"),
    ({"objective": {"band_hz": [30.0, 13.0]}}, "objective.band_hz", "0 < low < high"),
    ({"executor": {"kind": "slurm"}}, "executor.kind", "'local' or 'ray'"),
    ({"executor": {"workers": 0}}, "executor.workers", "[1, 4096]"),
    ({"executor": {"cell_timeout_s": -5}}, "executor.cell_timeout_s", "> 0"),
    ({"metrics": {"primary_threshold": 0.3}}, "metrics.primary_threshold", "one of"),
    ({"oracle": {"repeats": 0}}, "oracle.repeats", "[1, 1000]"),
])
def test_bad_values_name_field_value_and_range(patch, field, text):
    with pytest.raises(ValidationError) as e:
        config_from_dict({**MIN, **patch})
    assert e.value.field == field and text in str(e.value)


def test_unknown_keys_and_structure_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['budgit'\]"):
        config_from_dict({**MIN, "benchmark": {"budgit": 3}})
    with pytest.raises(ConfigError, match="no \\[\\[optimizers\\]\\]"):
        config_from_dict({})
    with pytest.raises(ValidationError, match="unique labels"):
        config_from_dict({"optimizers": [{"name": "bo"}, {"name": "bo"}]})
    with pytest.raises(ConfigError, match="exactly one of class"):
        config_from_dict({**MIN, "cohort": {"patients": [{"seeds": [0]}]}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[benchmark\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_config_hash_ignores_the_executor_only():
    a = config_from_dict(MIN)
    assert a.hash() == a.with_executor(kind="ray", workers=7).hash()
    assert a.hash() != config_from_dict({**MIN, "benchmark": {"budget": 41}}).hash()
