"""Bundled configs: found by path or by name, never from the current directory; listed and copied by
``bfm-stim configs``; and every one of them loads with the loader of its command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bfm_stim.exceptions import ConfigError
from loops.cli import main
from loops.config_files import (CONFIG_DIR, bundled_config, bundled_configs, config_path, copy_config, description,
                                is_bundled)

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {"benchmark", "benchmark-bandpower", "benchmark-quick", "continuous", "optimizers", "pretrain-heads",
            "pretrain-small", "pretrain-tiny", "session", "space-dbs"}


@pytest.fixture()
def elsewhere(tmp_path, monkeypatch) -> Path:
    """Run from an empty folder outside the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_configs_are_package_data():
    assert CONFIG_DIR == REPO / "loops" / "configs"
    assert set(bundled_configs()) == EXPECTED
    assert not (REPO / "configs").exists(), "top-level configs/ came back: they belong in loops/configs/"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'loops = ["py.typed", "configs/*.toml"]' in pyproject


def test_names_resolve_with_or_without_toml(elsewhere):
    for name, path in bundled_configs().items():
        assert config_path(name) == path == config_path(f"{name}.toml") == bundled_config(name)
        assert is_bundled(path)


def test_an_existing_file_wins_over_a_bundled_name(elsewhere):
    (elsewhere / "session.toml").write_text('[device]\nsource_id = "mine"\n')
    assert config_path("session.toml") == Path("session.toml")
    assert config_path("session") == bundled_config("session")  # `session` is not a file here
    assert not is_bundled(elsewhere / "session.toml")


def test_unknown_names_list_the_bundled_ones(elsewhere):
    with pytest.raises(ConfigError) as e:
        config_path("sesion", what="session config")
    msg = str(e.value)
    assert msg.startswith("session config 'sesion': no such file")
    assert all(n in msg for n in EXPECTED) and "bfm-stim configs" in msg
    # a path with a folder is never taken for a name: its reader reports it missing
    assert config_path("configs/session.toml") == Path("configs/session.toml")
    with pytest.raises(ConfigError, match="no bundled config 'nope'"):
        bundled_config("nope")


def test_relative_to_a_base_folder(tmp_path, elsewhere):
    base = tmp_path / "lab"
    base.mkdir()
    (elsewhere / "space-dbs.toml").write_text("")  # in the current folder: not looked at with a base
    assert config_path("space-dbs.toml", base=base) == bundled_config("space-dbs")
    (base / "space-dbs.toml").write_text("")
    assert config_path("space-dbs.toml", base=base) == base / "space-dbs.toml"
    with pytest.raises(ConfigError, match=r"no such file \(.*lab/x\)"):
        config_path("x", base=base)


def test_every_bundled_config_has_a_one_line_description():
    for name, path in bundled_configs().items():
        d = description(path)
        assert d and "\n" not in d and not d.startswith("#"), (name, d)
        assert "configs/" not in path.read_text(), f"{name} still names the old configs/ folder"


def test_every_bundled_config_loads_by_name(elsewhere):
    from bfm_stim.files import read_toml
    from bfm_stim.optim import settings_from_dict
    from bfm_stim.space import StimulusSpace
    from loops.benchmark.config import load_config as load_benchmark
    from loops.pretrain import load_config as load_pretrain
    from loops.session.config import load_config as load_session
    from loops.session.controller import ControllerConfig

    for name in ("benchmark", "benchmark-bandpower", "benchmark-quick"):
        assert load_benchmark(name).budget >= 1
    for name in ("pretrain-small", "pretrain-heads", "pretrain-tiny"):
        assert load_pretrain(name).corpus.n_patients >= 1
    assert load_session("session").device.source_id
    assert StimulusSpace.from_toml(config_path("space-dbs")).dim == 4
    tables = read_toml(config_path("optimizers"))
    assert {"bo", "guided"} <= set(tables)
    for opt, table in tables.items():
        settings_from_dict(opt, table)
    assert ControllerConfig.from_toml(bundled_config("continuous")) != ControllerConfig()


def test_defaults_are_the_bundled_files_whatever_the_current_folder(elsewhere):
    from loops import cli
    from loops.benchmark import cli as benchmark_cli
    from loops.offline import optimizer_settings

    decoy = elsewhere / "configs"
    decoy.mkdir()
    (decoy / "optimizers.toml").write_text("[guided]\nseed = 12345\n")
    (elsewhere / "optimizers.toml").write_text("[guided]\nseed = 12345\n")
    from bfm_stim.files import read_toml

    assert optimizer_settings("guided", None) == read_toml(bundled_config("optimizers"))["guided"]
    assert optimizer_settings("guided", "optimizers.toml") == {"seed": 12345}  # a file named on purpose is used
    for name in (cli.PRETRAIN_CONFIG, benchmark_cli.DEFAULT_CONFIG, benchmark_cli.QUICK_CONFIG):
        assert is_bundled(bundled_config(name))


# --- bfm-stim configs ---------------------------------------------------------------------------
def test_configs_lists_names_with_descriptions(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name, path in bundled_configs().items():
        assert any(line.split(None, 1) == [name, description(path)] for line in out.splitlines()), name


def test_configs_shows_and_copies_one(elsewhere, capsys):
    assert main(["configs", "space-dbs"]) == 0
    assert capsys.readouterr().out == bundled_config("space-dbs").read_text()
    out = elsewhere / "mine" / "session.toml"
    assert main(["configs", "session.toml", "--out", str(out)]) == 0
    assert out.read_bytes() == bundled_config("session").read_bytes()
    assert "wrote" in capsys.readouterr().out
    out.write_text("# edited\n")
    assert main(["configs", "session", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "# edited\n"
    assert main(["configs", "session", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() == bundled_config("session").read_bytes()
    assert main(["configs", "space-dbs", "--out", str(elsewhere / "mine")]) == 0  # into a folder
    assert (elsewhere / "mine" / "space-dbs.toml").read_bytes() == bundled_config("space-dbs").read_bytes()
    assert copy_config("pretrain-tiny", f"{elsewhere}/new/") == elsewhere / "new" / "pretrain-tiny.toml"


@pytest.mark.parametrize("argv", [["configs", "nope"], ["configs", "nope", "--out", "x.toml"],
                                  ["session", "--config", "nope"], ["benchmark", "--config", "nope"],
                                  ["pretrain", "--config", "nope"]])
def test_unknown_config_names_fail_cleanly(elsewhere, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"bfm-stim {argv[0]}: error: ") and "'nope'" in err and "space-dbs" in err
    assert not (elsewhere / "x.toml").exists()


def test_play_takes_a_bundled_space_by_name(elsewhere):
    from loops.cli import _bundled_value

    space = str(bundled_config("space-dbs"))
    assert _bundled_value(["rec.fif", "--space", "space-dbs", "--loop"], "--space") == ["rec.fif", "--space", space,
                                                                                        "--loop"]
    assert _bundled_value(["rec.fif", "--space=space-dbs.toml"], "--space") == ["rec.fif", f"--space={space}"]
    assert _bundled_value(["rec.fif", "--space", "lab/mine.toml"], "--space")[-1] == "lab/mine.toml"
    with pytest.raises(ConfigError, match="--space 'spaec'"):
        _bundled_value(["rec.fif", "--space", "spaec"], "--space")
