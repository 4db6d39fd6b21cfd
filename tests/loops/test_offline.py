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
    assert r["trust"] is None and all(t["trust"] is None and t["led_by"] is None for t in r["trials"])


def test_a_surrogate_method_says_its_trust_per_trial_and_at_the_end(tmp_path, tiny_checkpoint, monkeypatch):
    """Every measured trial contradicts the model (its cost is minus the model's prediction): each trial
    carries the trust after it, the JSON a ``trust`` block, the plot the trust, and the one-line message is
    said once, when the trials first contradict the model."""
    import loops.offline as offline
    from bfm_stim.optim import Outcome

    models = []

    def spy(name, space, **kw):  # the cost model optimize builds, to measure against it
        models.append(kw.get("cost_model"))
        return make(name, space, **kw)

    def contrary(patient, stim, objective, trial):  # a patient that answers opposite to the model
        (m, _), = offline.predicted(models[-1], patient.stimulus_space(), [stim])
        return Outcome(-m, side_effect=0.0, metadata={"trial": trial})

    make = offline.make
    monkeypatch.setattr(offline, "make", spy)
    monkeypatch.setattr(offline, "run_trial", contrary)
    cfg = tmp_path / "opt.toml"
    cfg.write_text("[egreedy]\nn_pool = 64\nepsilon = 0.0\n")
    said: list[str] = []
    out = tmp_path / "t.json"
    r = run_offline("bg-beta-v0", 7, "healthy", "egreedy", 7, out, checkpoint=tiny_checkpoint, config=cfg,
                    progress=False, on_trust_message=said.append)
    data = json.loads(out.read_text())
    trials = data["trials"]
    assert all(0.0 <= t["trust"] <= 1.0 and 0.0 <= t["model_weight"] <= 1.0 and t["trust_reason"] for t in trials)
    assert trials[0]["led_by"] == "model" and trials[-1]["led_by"] == "bo"
    assert len(said) == 1 and "does not know this patient" in said[0] and "bfm-stim adapt" in said[0]
    block = data["trust"]
    assert block["model"] and block["surrogate_method"] and block["trust_enabled"]
    assert block["checkpoint"]["sha256_16"] and block["trust"] == trials[-1]["trust"] < 0.25
    assert block["reason"] == trials[-1]["trust_reason"] and "contradict" in block["reason"]
    assert block["message"] == trials[-1]["trust_message"] and block["first_message"] == said[0]
    first = block["first_contradicted_trial"]
    assert [t["trial"] for t in trials if "trust_message" in t] == list(range(first, 7))
    assert r["trust"] == block and Path(r["figure"]).is_file()


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
    # virtual trials are the model's own predictions: they cannot confirm it
    assert all(t["trust"] is None for t in r["trials"]) and r["trust"]["model"] and r["trust"]["trust"] is None
    assert "not checked" in r["trust"]["reason"]


def test_errors(tmp_path):
    with pytest.raises(ValidationError, match="target"):
        run_offline(target="nonsense", optimizer="random", budget=1, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        run_offline(optimizer="nope", budget=1, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ValidationError, match="budget"):
        run_offline(optimizer="random", budget=0, out=tmp_path / "x.json", progress=False)
    with pytest.raises(ConfigError, match="recording"):
        run_offline(surrogate_only=True, budget=1, out=tmp_path / "x.json", progress=False)
