"""Bad input on the ``bfm-stim`` command line: one error line naming the file or flag, exit status 2.

Covers a wrong ``--checkpoint``, malformed TOML and other user files, the logging of ``serve``/``play``
and ``-v``, and ``bench`` (where its output goes, and options the chosen benchmark does not take).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loops.cli import main

REPO = Path(__file__).resolve().parents[2]
LSL_ENV = {**os.environ, "LSLAPICFG": str(REPO / "bfm_stim" / "lsl" / "lsl_api.cfg")}


pytestmark = pytest.mark.usefixtures("restore_package_logger")


def _fails_cleanly(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"bfm-stim {argv[0]}: error: ")
    for needle in needles:
        assert needle in line, (needle, line)
    return line


# --- 1. optimize --checkpoint ------------------------------------------------------------------
@pytest.mark.parametrize("target", ["healthy", "bandpower:13-30", "latent:z.npy", "recording:r.fif"])
def test_optimize_missing_checkpoint_stops_naming_the_path(tmp_path, capsys, target):
    ckpt = tmp_path / "no-such-model.pt"
    out = tmp_path / "p.json"
    line = _fails_cleanly(capsys, ["optimize", "--checkpoint", str(ckpt), "--target", target, "--budget", "1",
                                   "--out", str(out)], str(ckpt), "not found", "--checkpoint")
    assert "pass --checkpoint PATH" not in line  # one was passed: the message says what is wrong with it
    assert not out.exists()


def test_optimize_checkpoint_that_is_a_folder_or_corrupt_stops(tmp_path, capsys):
    _fails_cleanly(capsys, ["optimize", "--checkpoint", str(tmp_path), "--budget", "1", "--out",
                            str(tmp_path / "p.json")], str(tmp_path), "is a folder")
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    _fails_cleanly(capsys, ["optimize", "--checkpoint", str(bad), "--budget", "1", "--out",
                            str(tmp_path / "p.json")], str(bad), "cannot read checkpoint")


# --- 2. TOML configs and other files -----------------------------------------------------------
def test_optimize_bad_toml_config_names_file_line_and_column(tmp_path, capsys):
    cfg = tmp_path / "opt.toml"
    cfg.write_text("[guided]\nseed = 1\nn_starts = = 2\n")
    _fails_cleanly(capsys, ["optimize", "--config", str(cfg), "--budget", "1", "--out", str(tmp_path / "p.json")],
                   str(cfg), "not valid TOML at line", "column")
    _fails_cleanly(capsys, ["optimize", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "p.json")],
                   "optimizer settings file not found", str(tmp_path / "none.toml"))


def test_session_bad_toml_config_names_file_and_line(tmp_path, capsys):
    cfg = tmp_path / "session.toml"
    cfg.write_text('[device]\nsource_id = "x"\nkey_file = \n')
    _fails_cleanly(capsys, ["session", "--config", str(cfg), "--out", str(tmp_path / "s")],
                   str(cfg), "line 3, column")


def test_optimize_missing_target_files_stop_before_the_model_loads(tmp_path, capsys):
    npy = tmp_path / "target.npy"
    _fails_cleanly(capsys, ["optimize", "--target", f"latent:{npy}", "--out", str(tmp_path / "p.json")],
                   "latent target not found", str(npy), "numpy.save")
    rec = tmp_path / "target.fif"
    _fails_cleanly(capsys, ["optimize", "--target", f"recording:{rec}:0:10", "--out", str(tmp_path / "p.json")],
                   "target recording not found", str(rec))


def test_latent_target_that_is_not_an_array_is_a_config_error(tmp_path):
    from bfm_stim.exceptions import ConfigError
    from loops.offline import make_target

    bad = tmp_path / "z.npy"
    bad.write_text("0.1, 0.2")
    with pytest.raises(ConfigError, match=re.escape(str(bad))):
        make_target(f"latent:{bad}", None, object())  # the file is read before the surrogate is used


def test_simulate_stimulus_path_that_is_a_folder(tmp_path, capsys):
    _fails_cleanly(capsys, ["simulate", "--stimulus", str(tmp_path), "--duration", "1", "--out",
                            str(tmp_path / "x_raw.fif")], "stimulus file is a folder", str(tmp_path))


def test_file_errors_without_a_package_error_still_give_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    key = tmp_path / "notes.txt" / "session.key"
    _fails_cleanly(capsys, ["keygen", str(key)], str(tmp_path / "notes.txt"), "check the path")


# --- 4. logging of serve / play, -v ------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loops.cli", *args], capture_output=True, text=True, env=LSL_ENV,
                          cwd=REPO, timeout=120)


@pytest.mark.parametrize("cmd, prog", [("serve", "bfm-stim serve"), ("play", "bfm-stim play")])
def test_serve_and_play_help_show_their_command(cmd, prog):
    r = _cli(cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(f"usage: {prog} ")
    assert "python -m" not in r.stdout


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) bfm_stim[\w.]*: ")


def test_serve_logs_each_line_once_in_one_format(tmp_path):
    """``-v`` gives DEBUG; each record is printed by one handler, not again by a root handler."""
    key = str(tmp_path / "missing.key")
    r = _cli("-v", "serve", "--synthetic", "2", "--key-file", key)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    logs = [ln for ln in lines if LOG_LINE.match(ln)]
    assert any(" DEBUG " in ln for ln in logs), r.stderr  # -v is DEBUG, not the default INFO
    assert not [ln for ln in lines if re.match(r"^\d\d:\d\d:\d\d,\d{3} ", ln)], r.stderr  # no basicConfig copy
    # The same run through exactly one handler, set up before any import, prints the same records.
    script = ("from bfm_stim._logging import log_to_stderr; log_to_stderr('DEBUG'); import simulators.stream as s; "
              f"s.main(['--synthetic', '2', '--key-file', {key!r}])")
    direct = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=LSL_ENV, cwd=REPO,
                            timeout=120)
    strip = [LOG_LINE.sub("", ln) for ln in logs if "Traceback" not in ln and " ERROR " not in ln]
    assert sorted(strip) == sorted(LOG_LINE.sub("", ln) for ln in direct.stderr.splitlines() if LOG_LINE.match(ln))
    assert r.stderr.strip().splitlines()[-1].startswith(f"bfm-stim serve: error: key file '{key}'")


def test_play_missing_recording_is_one_line_without_v(tmp_path):
    r = _cli("play", str(tmp_path / "none.fif"), "--key-file", str(tmp_path / "k.key"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("bfm-stim play: error: ")


def test_verbose_is_debug_and_quiet_is_warning(capsys):
    lg = logging.getLogger("bfm_stim")
    assert main(["patients"]) == 0 and lg.level == logging.INFO
    assert main(["-v", "patients"]) == 0 and lg.level == logging.DEBUG
    assert main(["-q", "patients"]) == 0 and lg.level == logging.WARNING
    assert sum(getattr(h, "_bfm_stim_stderr", False) for h in lg.handlers) == 1


def test_global_flags_work_after_the_subcommand(capsys):
    """-v/-q anywhere on the line (issue 34: they worked only before the subcommand)."""
    lg = logging.getLogger("bfm_stim")
    assert main(["patients", "-v"]) == 0 and lg.level == logging.DEBUG
    assert main(["patients", "--quiet"]) == 0 and lg.level == logging.WARNING
    assert main(["patients", "-vv"]) == 0 and lg.level == logging.DEBUG
    assert main(["patients"]) == 0 and lg.level == logging.INFO


# --- 5. bench ----------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, flag, takers", [
    (["latency", "--rest"], "--rest", "adapt-tuning"),
    (["simulator", "--n-patients", "3"], "--n-patients", "session, optimizers, ranking"),
    (["ranking", "--seeds", "2"], "--seeds", "optimizers"),
    (["surrogate", "--variants", "full"], "--variants", "ablation"),
    (["session", "--workers", "4"], "--workers", "optimizers, ranking"),
    (["simulator", "--quick"], "--quick", "session"),
])
def test_bench_refuses_options_the_benchmark_does_not_take(capsys, argv, flag, takers):
    _fails_cleanly(capsys, ["bench", *argv], flag, f"bfm-stim bench {argv[0]}", takers)


def test_bench_without_json_writes_under_runs_and_says_where(tmp_path, monkeypatch, capsys):
    import loops.bench.session
    import loops.bench.simulator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loops.bench.simulator, "run_simulator_bench", lambda **kw: {"kw": kw})
    monkeypatch.setattr(loops.bench.session, "run_session_bench", lambda **kw: {"kw": kw})
    assert main(["-q", "bench", "simulator", "--patients", "2"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "wrote runs/bench/simulator.json"
    assert json.loads((tmp_path / "runs/bench/simulator.json").read_text()) == {"kw": {"n_patients": 2}}
    assert main(["-q", "bench", "session", "--quick", "--budget", "3"]) == 0
    assert "wrote runs/bench/session-quick.json" in capsys.readouterr().out
    assert not (tmp_path / "bench").exists()  # the committed figures' folder is never the default
    assert main(["-q", "bench", "simulator", "--json", "bench/simulator.json"]) == 0
    assert (tmp_path / "bench/simulator.json").is_file()  # only when asked for


def test_bench_throughput_only_needs_an_explicit_json(capsys):
    _fails_cleanly(capsys, ["bench", "surrogate", "--throughput-only"], "--json", "bench/surrogate.json")
