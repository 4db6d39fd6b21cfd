"""The report (summary JSON/CSV, plots, self-contained HTML, Markdown twin) and `bfm-stim benchmark` / `report`."""

from __future__ import annotations

import base64
import csv
import json

import pytest

from loops.benchmark.executors import run_benchmark
from loops.cli import main

from .conftest import REPO


@pytest.mark.slow
def test_report_files_and_self_contained_html(tmp_path, user_cfg):
    out = tmp_path / "b"
    rec = run_benchmark(user_cfg, out, progress=False, report=True)
    html = (out / "report.html").read_text()
    imgs = html.split("data:image/png;base64,")[1:]
    assert len(imgs) == 4 and rec["report"] == str(out / "report.html")
    for chunk in imgs:  # real PNGs, embedded: the page needs no other file
        assert base64.b64decode(chunk.split("'")[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='plots/" not in html and "<table>" in html
    md = (out / "report.md").read_text()
    assert md.count("](plots/") == 4 and "| optimizer |" in md
    assert "| median 95% CI (bootstrap) |" in md and "median 95% CI (bootstrap)" in html
    s = json.loads((out / "summary.json").read_text())
    assert set(s["summary"]) == {"random", "local", "optuna_tpe"} and s["results"] == 18
    for o, v in s["summary"].items():  # the interval of each median, shown in the first table's row
        lo, hi = v["trials_to_target_ci95"]
        assert 1 <= lo <= hi <= user_cfg.budget + 1, o
        row = next(line for line in md.splitlines() if line.startswith(f"| {o} |"))
        assert f"[{lo:.3g}, {hi:.3g}]" in row, row
    assert {p["a"] + ">" + p["b"] for p in s["paired_tests"]} == {"random>local", "random>optuna_tpe",
                                                                   "local>optuna_tpe"}
    with (out / "summary.csv").open() as f:
        assert [r["optimizer"] for r in csv.DictReader(f)] == ["random", "local", "optuna_tpe"]
    with (out / "trials.csv").open() as f:
        assert sum(1 for _ in csv.DictReader(f)) == 18 * user_cfg.budget
    assert "/tmp" not in md and str(tmp_path) not in md  # nothing of this machine in the report's text


@pytest.mark.slow
def test_cli_benchmark_then_report(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["benchmark", "--config", str(REPO / "examples" / "benchmark-user.toml"), "--out", str(out),
               "--budget", "6", "--seeds", "1", "--optimizers", "random,local", "--workers", "1", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "6 runs done, 0 skipped" in text and "wrote" in text
    rc = main(["benchmark", "--config", str(REPO / "examples" / "benchmark-user.toml"), "--out", str(out),
               "--budget", "6", "--seeds", "1", "--optimizers", "random,local", "--no-progress"])
    assert rc == 0 and "0 runs done, 6 skipped" in capsys.readouterr().out
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    out2 = tmp_path / "no-report"  # --no-report still writes the summary, so `bfm-stim report` knows the folder
    assert main(["benchmark", "--config", str(REPO / "examples" / "benchmark-user.toml"), "--out", str(out2),
                 "--budget", "4", "--seeds", "1", "--optimizers", "random", "--no-report", "--no-progress"]) == 0
    assert (out2 / "summary.json").is_file() and not (out2 / "report.html").exists()
    assert main(["report", str(out2)]) == 0 and (out2 / "report.html").is_file()


@pytest.mark.parametrize("argv, text", [
    (["--workers", "0"], "--workers=0 is not allowed; expected an integer >= 1"),
    (["--optimizers", "random,simplex"], "--optimizers=['simplex'] is not allowed"),
    (["--config", "nope.toml"], "benchmark config 'nope.toml': no such file, and not the name of a bundled config"),
    (["--config", "nope/b.toml"], "benchmark config not found: nope/b.toml"),
])
def test_cli_errors_are_one_clear_line(tmp_path, capsys, argv, text):
    base = ["benchmark", "--config", str(REPO / "examples" / "benchmark-user.toml"), "--out", str(tmp_path / "x")]
    assert main(base + argv) == 2
    assert text in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_config_on_simulated_patients(tmp_path, capsys):
    """The bundled benchmark-quick config end to end: BFM latent objective, built-in and external optimizers, report."""
    out = tmp_path / "quick"
    assert main(["benchmark", "--quick", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["results"] == s["cells"] == 14 and not s["failures"]
    assert s["objective"].startswith("latent target (BFM encoder")
    assert all(v["hard_violations"] == 0 for v in s["summary"].values())
    for f in ("regret", "ecdf", "win_rate", "safety"):
        assert (out / "plots" / f"{f}.png").stat().st_size > 5000
    cell = json.loads(next((out / "cells").glob("*.json")).read_text())
    sig = cell["manifest"]["signature"]
    assert len(sig["costs"]) == 3 and cell["manifest"]["oracle"]["cost"] < cell["manifest"]["oracle"]["off_cost"]
