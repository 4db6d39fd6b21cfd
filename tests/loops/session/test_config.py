"""The bundled session config, configs by name, and the config's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bfm_stim.exceptions import ConfigError
from loops.session.config import SessionConfig, load_config

REPO = Path(__file__).resolve().parents[3]


def test_shipped_config_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / "loops" / "configs" / "session.toml")
    assert cfg.device.source_id and cfg.trials.optimizer == "guided" and cfg.calibration.target == "healthy"
    # a bundled config is a template: its relative paths are the user's files, in the current folder
    assert cfg.resolve(cfg.device.key_file).resolve() == (tmp_path / "session.key").resolve()
    assert SessionConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert load_config("session").to_dict() == load_config("session.toml").to_dict() == cfg.to_dict()


def test_a_copied_config_resolves_next_to_itself_and_names_bundled_spaces(tmp_path, monkeypatch):
    from loops.config_files import bundled_config, copy_config

    monkeypatch.chdir(tmp_path)
    mine = copy_config("session", tmp_path / "lab" / "mine.toml")
    cfg = load_config(mine).replace("device", space="space-dbs")
    assert cfg.resolve(cfg.device.key_file) == tmp_path / "lab" / "session.key"
    assert cfg.config_file(cfg.device.space, what="[device] space") == bundled_config("space-dbs")
    (tmp_path / "lab" / "space-dbs.toml").write_text("[space]\nkind = 'sensory'\n")  # the user's own wins
    assert cfg.config_file("space-dbs.toml", what="[device] space") == tmp_path / "lab" / "space-dbs.toml"
    with pytest.raises(ConfigError, match=r"\[device\] space 'spaec-dbs'.*bundled: .*space-dbs"):
        cfg.config_file("spaec-dbs", what="[device] space")
    with pytest.raises(ConfigError, match=r"session config 'sesion'.*bundled: .*session"):
        load_config("sesion")


@pytest.mark.parametrize("tables,match", [
    ({}, r"\[device\] is missing"),
    ({"device": {"source_id": "x", "sourceid": "y"}}, r"\[device\] unknown key\(s\) \['sourceid'\]"),
    ({"device": {"source_id": "x"}, "trials": {"budget": 0}}, r"\[trials\] budget = 0: expected an integer >= 1"),
    ({"device": {"source_id": "x"}, "trials": {"optimizer": "nope"}}, r"optimizer = 'nope': expected one of"),
    ({"device": {"source_id": "x"}, "calibration": {"target": "beta"}}, r"target = 'beta'"),
    ({"device": {"source_id": "x"}, "calibration": {"mode": "deep"}}, r"mode = 'deep'"),
    ({"device": {"source_id": "x", "lsl_scope": "world"}}, r"lsl_scope = 'world'"),
    ({"device": {"source_id": "x"}, "health": {"stale_s": -1}}, r"stale_s = -1"),
    ({"device": {"source_id": "x"}, "continuous": {"segments": ["sometimes"]}}, r"'sometimes'"),
    ({"device": {}}, r"needs source_id"),
    ({"device": {"source_id": "x"}, "extra": {}}, r"unknown table"),
])
def test_bad_configs_name_the_key_and_the_allowed_values(tables, match):
    with pytest.raises(ConfigError, match=match):
        SessionConfig.from_dict(tables)


def test_bad_toml_names_the_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[device\nsource_id = 1\n")
    with pytest.raises(ConfigError, match="s.toml: not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
