"""Offline protocol optimization on a simulated patient, with and without the (tiny) foundation model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.space import Stimulus
from loops.offline import run_offline

REPO = Path(__file__).resolve().parents[2]


def _check_protocol(result: dict, path: Path, budget: int) -> None:
    import simulators

    data = json.loads(path.read_text())
    assert data["trials"] == result["trials"] and len(data["trials"]) == budget
    assert Path(result["figure"]).is_file() and Path(result["figure"]).stat().st_size > 1000
    space = simulators.make(data["patient"], seed=data["seed"]).stimulus_space()
    for t in data["trials"]:
        space.check(Stimulus.from_dict(t["stimulus"]))
        assert np.isfinite(t["cost"])
    for p in data["top"]:
        space.check(Stimulus.from_dict(p["stimulus"]))
    measured = [p for p in data["top"] if p["measured"]]
    assert measured and measured[0]["observed_cost"] == min(t["cost"] for t in data["trials"]
                                                              if (t["side_effect"] or 0.0) < 0.5)


def test_guided_with_tiny_model_on_healthy_target(tmp_path, tiny_checkpoint):
    out = tmp_path / "protocol.json"
    r = run_offline("bg-beta-v0", 7, "healthy", "guided", 4, out, checkpoint=tiny_checkpoint, progress=False)
    _check_protocol(r, out, 4)
    assert r["objective"].startswith("latent distance") and r["surrogate"] == str(tiny_checkpoint)
    assert r["settings"]["seed"] == 7 and r["settings"]["n_design"] == 3
    assert all(np.isfinite(t["predicted_cost"]) and t["predicted_std"] >= 0 for t in r["trials"])
    assert all(t["predicted_cost"] is not None for t in r["top"])
    assert any(not p["measured"] and np.isfinite(p["predicted_cost"]) for p in r["top"])


def test_bandpower_target_without_model(tmp_path):
    out = tmp_path / "p.json"
    r = run_offline("cortex-jr-v0", 3, "bandpower:8-13", "random", 3, out,
                    checkpoint=False, progress=False)
    _check_protocol(r, out, 3)
    assert r["surrogate"] is None and "band power" in r["objective"]
    assert all(t["predicted_cost"] is None for t in r["trials"])


def test_surrogate_only_on_a_recording(tmp_path, tiny_checkpoint):
    import simulators
    from bfm_stim.recording import Recording

    p = simulators.make("bg-beta-v0", seed=11)
    sim = p.simulate(6.0)
    rec = Recording(sim.data.numpy(), p.fs, list(p.channel_names), ch_types=list(p.channel_types),
                    positions=p.channel_positions)
    path = rec.write_fif(tmp_path / "rec_raw.fif")
    target = tmp_path / "z.npy"
    np.save(target, np.zeros(16, np.float32))
    out = tmp_path / "s.json"
    cfg = tmp_path / "opt.toml"
    cfg.write_text((REPO / "loops" / "configs" / "space-dbs.toml").read_text() + "\n[gradient]\nn_starts = 2\nsteps = 10\n")
    r = run_offline(target=f"latent:{target}", optimizer="gradient", budget=3, out=out, surrogate_only=True,
                    recording=path, checkpoint=tiny_checkpoint, config=cfg, progress=False)
    assert r["settings"]["steps"] == 10 and len(r["space"]["contacts"]) == 4
    assert r["patient"] is None and all(not t["measured"] for t in r["trials"])
    assert all(t["cost"] == pytest.approx(t["predicted_cost"]) for t in r["trials"])
    assert r["top"] and all(not t["measured"] for t in r["top"])


def test_errors(tmp_path):
    with pytest.raises(ValidationError, match="target"):
        run_offline(target="nonsense", optimizer="random", budget=1, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        run_offline(optimizer="nope", budget=1, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ValidationError, match="budget"):
        run_offline(optimizer="random", budget=0, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ConfigError, match="recording"):
        run_offline(surrogate_only=True, budget=1, out=tmp_path / "x.json", progress=False)
