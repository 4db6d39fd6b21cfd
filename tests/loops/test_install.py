"""The wheel works on its own: built offline from a copy of the sources, installed into a folder, and run
from outside the repository, it imports from that folder and brings its configs and the default model.

About 20-30 s: building and installing take seconds; the one real command is a 1-step pretraining run
on the bundled ``pretrain-tiny`` config, given by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bfm_stim", "simulators", "loops")

pytestmark = pytest.mark.slow


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A wheel built from a copy of the sources (the checkout stays untouched) and installed with --target."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # offline, no network at all
    env.pop("PYTHONPATH", None)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
          str(src)], cwd=tmp, env=env, timeout=300)
    wheels = sorted(dist.glob("bfm_stim-*.whl"))
    assert len(wheels) == 1, wheels
    site = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheels[0])],
         cwd=tmp, env=env, timeout=300)
    elsewhere = tmp / "elsewhere"  # outside the repository: nothing to find by a relative path
    elsewhere.mkdir()
    run_env = {**env, "PYTHONPATH": str(site), "LSLAPICFG": str(site / "bfm_stim" / "lsl" / "lsl_api.cfg"),
               "MPLBACKEND": "Agg"}
    return {"site": site, "cwd": elsewhere, "env": run_env}  # type: ignore[dict-item]


def _python(installed: dict, code: str) -> str:
    return _run([sys.executable, "-c", code], cwd=installed["cwd"], env=installed["env"]).stdout


def test_imports_come_from_the_installed_folder(installed):
    out = json.loads(_python(installed, (
        "import json, bfm_stim, loops, simulators, loops.cli, bfm_stim.recording\n"
        "print(json.dumps([m.__file__ for m in (bfm_stim, loops, simulators, loops.cli, bfm_stim.recording)]))")))
    site = installed["site"].resolve()
    for f in out:
        assert Path(f).resolve().is_relative_to(site), f"{f} is not from the installed wheel in {site}"
        assert not Path(f).resolve().is_relative_to(REPO)


def test_configs_and_the_default_checkpoint_are_installed(installed):
    out = json.loads(_python(installed, (
        "import json\n"
        "from loops.config_files import CONFIG_DIR, bundled_configs, description\n"
        "from bfm_stim.surrogate import default_checkpoint\n"
        "print(json.dumps({'dir': str(CONFIG_DIR), 'configs': {n: str(p) for n, p in bundled_configs().items()},\n"
        "                  'checkpoint': str(default_checkpoint())}))")))
    site = installed["site"].resolve()
    shipped = {p.stem for p in (REPO / "loops" / "configs").glob("*.toml")}
    assert set(out["configs"]) == shipped and Path(out["dir"]).resolve() == site / "loops" / "configs"
    for name, path in out["configs"].items():
        assert Path(path).read_bytes() == (REPO / "loops" / "configs" / f"{name}.toml").read_bytes()
    ckpt = Path(out["checkpoint"]).resolve()
    assert ckpt == site / "bfm_stim" / "checkpoints" / "default" / "model.pt"
    assert ckpt.read_bytes() == (REPO / "bfm_stim" / "checkpoints" / "default" / "model.pt").read_bytes()
    assert (ckpt.parent / "MODEL_CARD.md").is_file() and (ckpt.parent / "config.json").is_file()
    assert (site / "bfm_stim" / "py.typed").is_file() and (site / "bfm_stim" / "lsl" / "lsl_api.cfg").is_file()


def test_the_console_command_lists_configs_and_runs_one_by_name(installed):
    exe = installed["site"] / "bin" / "bfm-stim"
    assert exe.is_file(), "the wheel installs no bfm-stim console script"
    listing = _run([str(exe), "configs"], cwd=installed["cwd"], env=installed["env"]).stdout
    for name in ("session", "space-dbs", "benchmark-quick", "pretrain-tiny", "optimizers"):
        assert any(line.startswith(name + " ") for line in listing.splitlines()), (name, listing)
    assert str(installed["site"] / "loops" / "configs") in listing
    out = installed["cwd"] / "run"
    _run([str(exe), "-q", "pretrain", "--config", "pretrain-tiny", "--steps", "1", "--out", str(out)],
         cwd=installed["cwd"], env=installed["env"], timeout=240)
    cfg = json.loads((out / "config.json").read_text())  # the config the run used: pretrain-tiny's values
    assert cfg["corpus"]["source"] == "synthetic" and cfg["corpus"]["n_patients"] == 8
    assert (out / "model.pt").is_file()
    assert sorted(p.name for p in installed["cwd"].iterdir()) == ["run"]  # nothing written beside it
