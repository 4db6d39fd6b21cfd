"""The continuous mode driven by a latent state decoder (`[continuous] biomarker = "state:FILE"`), over LSL."""

from __future__ import annotations

import json

import pytest

from bfm_stim.lsl.protocol import keygen
from .lsl_session import run_session_proc, serve, stop, unique_id, wait_stream, write_config

pytestmark = [pytest.mark.lsl, pytest.mark.slow]
SEED = 1000002  # evaluation cohort; the decoder is trained on pretraining-cohort patients


def test_continuous_mode_reads_the_state_decoder(tmp_path):
    from loops.decode import train_simulated_state_decoder
    from loops.session.store import read_log

    dec = tmp_path / "state.npz"
    train_simulated_state_decoder("bg-beta-v0", dec, n_patients=2, progress=False)
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-state")
    dev = serve(SEED, key, sid, speed=2.0)
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, calibration={"rest_s": 6.0, "target": "healthy"},
                           trials={"optimizer": "random", "budget": 1, "rest_s": 0.5},
                           continuous={"segments": ["off", "adaptive"], "duration_s": 3.0, "biomarker": f"state:{dec}"})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    ticks = [r for r in read_log(d / "continuous.jsonl") if "t" in r]
    assert 40 <= len(ticks) <= 70  # every 100 ms of 2 x 3 s of signal
    print({m: [round(r["biomarker"], 3) for r in ticks if r["mode"] == m] for m in ("off", "adaptive")})
    values = [r["biomarker"] for r in ticks if r["mode"] == "off"]
    assert all(0.0 <= v <= 1.0 for v in values)  # a probability, not a log band power
    assert len(set(round(v, 6) for v in values)) > 5  # it follows the signal
    # the patient is pathological: unstimulated, the decoder aligned to its calibration rest says so
    assert sorted(values)[len(values) // 2] > 0.5
    summary = json.loads((d / "session.json").read_text())["summary"]
    assert [c["mode"] for c in summary["continuous"]] == ["off", "adaptive"]
    assert summary["continuous"][1]["beta_ratio_to_rest"] > 0


def test_state_biomarker_config_is_checked(tmp_path):
    from bfm_stim.exceptions import ConfigError
    from loops.session.config import ContinuousSegments

    with pytest.raises(ConfigError, match="biomarker"):
        ContinuousSegments(segments=("adaptive",), biomarker="state:")
    with pytest.raises(ConfigError, match="biomarker"):
        ContinuousSegments(segments=("adaptive",), biomarker="theta")
    assert ContinuousSegments(biomarker="state:x.npz").biomarker == "state:x.npz"
