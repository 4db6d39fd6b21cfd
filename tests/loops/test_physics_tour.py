"""The physics tour (spectra of DBS and flicker on the synthetic patients) runs and shows what it claims."""

from __future__ import annotations

import json

from loops.physics_tour import run_demo


def test_demo_writes_plot_and_figures(tmp_path):
    lines = list(run_demo(tmp_path, duration_s=6.0))
    assert (tmp_path / "spectra.png").stat().st_size > 10_000
    res = json.loads((tmp_path / "demo.json").read_text())
    best = min(v["beta_ratio"] for v in res["contacts"].values())
    assert best < 0.5  # 130 Hz at the best contact halves beta
    assert res["low_frequency_control"]["beta_ratio"] > 0.6  # 15 Hz does not
    assert 8.0 <= res["cortex"]["alpha_peak_hz"] <= 12.0
    assert res["cortex"]["power_at_flicker_ratio"] > 3.0
    assert any("wrote" in line for line in lines)
