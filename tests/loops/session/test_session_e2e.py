"""A whole session against real devices in subprocesses over loopback LSL: bfm-stim serve and play --twin."""

from __future__ import annotations

import json

import mne
import pytest

from bfm_stim.lsl.protocol import keygen
from bfm_stim.space import Stimulus, StimulusSpace
from .lsl_session import records, run_session_proc, serve, faulty, stop, unique_id, wait_stream, write_config

pytestmark = pytest.mark.lsl
SEED = 1000001  # evaluation cohort


def _check_log(d, space):
    recs = records(d)
    sent = [r for r in recs if r["type"] == "sent"]
    asked = {r["trial"]: r for r in recs if r["type"] == "asked"}
    outcomes = [r for r in recs if r["type"] == "outcome"]
    for r in sent:  # write-ahead: the proposal was logged first, and every stimulus sent passes the one check
        assert r["trial"] in asked and asked[r["trial"]]["stimulus"] == r["stimulus"]
        space.check(Stimulus.from_dict(r["stimulus"]))
    trials = [o["trial"] for o in outcomes]
    assert len(trials) == len(set(trials))
    acks = {r["seq"]: r for r in recs if r["type"] == "ack"}
    for o in outcomes:  # every told outcome had an applied ack and a full response window
        assert acks[o["seq"]]["status"] == "applied"
        assert o["window"][1] > o["window"][0]
    return recs


def test_session_against_served_patient(tmp_path):
    """Calibration, zero-shot BFM, healthy target, guided BO: the loop a lab would run."""
    import simulators

    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-session")
    dev = serve(SEED, key, sid, speed=4.0, log=tmp_path / "dev.log")
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, calibration={"rest_s": 6.0, "target": "healthy"},
                           trials={"optimizer": "guided", "budget": 4, "rest_s": 1.0})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    space = simulators.make("bg-beta-v0", seed=SEED).stimulus_space()
    recs = _check_log(d, space)
    meta = json.loads((d / "session.json").read_text())
    summary = meta["summary"]
    assert summary["trials_completed"] == 4 and summary["end_reason"] == "budget"
    assert meta["stream"]["source_id"] == sid and len(meta["key_fingerprint"]) == 16
    assert key.read_text().strip() not in (d / "session.json").read_text()  # the key itself is never stored
    assert meta["checkpoint"]["sha256_16"]
    assert recs[-1]["type"] == "end" and any(r["type"] == "stop" for r in recs[-3:])
    raw = mne.io.read_raw_fif(d / "recording.fif", verbose="error")
    assert raw.info["sfreq"] == 1000.0 and len(raw.annotations) >= 4
    assert (d / "report" / "index.html").is_file()
    outcomes = [r for r in recs if r["type"] == "outcome"]
    assert outcomes and all(len(o["latent"]) > 0 for o in outcomes)  # the response latents, for the report
    # the model's trust after every trial, who led the proposal, and the reason; the run's model and trust
    assert all(0.0 <= o["trust"] <= 1.0 and o["led_by"] in ("model", "bo", "design") and o["trust_reason"]
               for o in outcomes)  # "design": guided's first trial, the model's best candidate
    assert meta["surrogate"] == {"surrogate_method": True, "model": True, "trust_enabled": True,
                                 "checkpoint": meta["checkpoint"]}
    assert summary["trust"]["trust"] == outcomes[-1]["trust"] and summary["trust"]["reason"]
    page = (d / "report" / "index.html").read_text(encoding="utf-8")
    assert "model trust at the end" in page and '<h2 id="trust">' in page and "<th>trust</th>" in page
    # the report rebuilds from the directory alone, and the session exports as BIDS iEEG
    (d / "report" / "index.html").unlink()
    from .lsl_session import child_env
    import subprocess
    import sys

    rep = subprocess.run([sys.executable, "-m", "loops.cli", "report", str(d)], env=child_env(), capture_output=True,
                         text=True, timeout=120)
    assert rep.returncode == 0 and (d / "report" / "index.html").stat().st_size > 50_000, rep.stderr[-2000:]
    bids = run_session_proc(["--out", str(d), "--export-bids", str(tmp_path / "bids")])
    assert bids.returncode == 0, bids.stderr[-2000:]
    events = list((tmp_path / "bids").rglob("*_events.tsv"))
    assert events and "electrical_stimulation_current" in events[0].read_text()


def test_sensory_session_with_probes_and_patience(tmp_path):
    """A cortical patient served with flicker and click trains; two probe trials first; patience ends it."""
    import simulators

    seed = simulators.cohort("eval", 1)[0]
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-sensory")
    from .lsl_session import start

    dev = start(["-m", "simulators.stream", "--patient", "cortex-jr-v0", "--seed", str(seed), "--key-file", str(key),
                 "--speed", "4", "--source-id", sid, "--space-kind", "sensory"], tmp_path / "dev.log")
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, device={"space_kind": "sensory"},
                           calibration={"rest_s": 4.0, "target": "bandpower:8-12", "probes": 2},
                           trials={"optimizer": "random", "budget": 40, "rest_s": 0.5, "patience": 3})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    space = simulators.make("cortex-jr-v0", seed=seed).stimulus_space("sensory")
    recs = _check_log(d, space)
    asked = [r for r in recs if r["type"] == "asked"]
    assert [a["probe"] for a in asked[:3]] == [True, True, False]
    assert all(a["stimulus"]["kind"] == "sensory" for a in asked)
    meta = json.loads((d / "session.json").read_text())
    summary = meta["summary"]
    assert summary["end_reason"] == "patience" and 4 <= summary["trials_completed"] < 40
    assert summary["charge_trials_uc"] == 0.0  # sensory trains deliver no charge
    # random search has no model: no trust anywhere, said as such
    assert summary["trust"] is None and not meta["surrogate"]["surrogate_method"]
    assert all(r["trust"] is None for r in recs if r["type"] == "outcome")


def _space_toml(d: dict) -> str:
    """A [space] TOML table from StimulusSpace.to_dict() output."""
    lines = ["[space]", f'kind = "{d["kind"]}"', "contacts = ["]
    for c in d["contacts"]:
        lines.append(f'  {{ name = "{c["name"]}", position_mm = {c["position_mm"]}, area_cm2 = {c["area_cm2"]} }},')
    lines.append("]")
    for name, p in d["parameters"].items():
        lines.append(f"[space.parameters.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in p.items()]
    lines.append("[space.safety]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in d["safety"].items()]
    return "\n".join(lines) + "\n"


def test_device_rejections_are_logged_never_told(tmp_path):
    """The session's space allows more than the device's gate: the device refuses (unsafe), the session logs
    the reason and tells the optimizer nothing for those trials."""
    import simulators

    p = simulators.make("bg-beta-v0", seed=SEED)
    wide = p.stimulus_space().to_dict()
    wide["parameters"]["amplitude_ma"]["high"] = 10.0
    wide["safety"].update(shannon_k=3.0, max_charge_density_uc_cm2=300.0, max_charge_uc=30.0)
    space_file = tmp_path / "wide.toml"
    space_file.write_text(_space_toml(wide))
    wide_space = StimulusSpace.from_toml(space_file)
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-reject")
    dev = serve(SEED, key, sid, speed=4.0)
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, device={"space": str(space_file)},
                           calibration={"rest_s": 4.0, "target": "bandpower:13-30"},
                           trials={"optimizer": "random", "budget": 6, "rest_s": 0.5, "seed": 3})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    recs = _check_log(d, wide_space)
    rejected = [r for r in recs if r["type"] == "rejected"]
    assert rejected, "expected the device to refuse some of the wide space's stimuli"
    told = {r["trial"] for r in recs if r["type"] == "outcome"}
    assert all(r["reason"] == "unsafe" and r["trial"] not in told for r in rejected)
    dev_space = p.stimulus_space()
    for r in recs:  # what was told passed the device's own check too
        if r["type"] == "outcome":
            st = next(x for x in recs if x["type"] == "sent" and x["trial"] == r["trial"])["stimulus"]
            dev_space.check(Stimulus.from_dict(st))
    state = json.loads((d / "optimizer.json").read_text())
    assert len(state["observations"]) == len(told) >= 1  # the optimizer learned only from delivered trials
    summary = json.loads((d / "session.json").read_text())["summary"]
    assert summary["trials_rejected"] == len(rejected)
    if summary["end_reason"] == "device_rejects":  # five refusals in a row end the session: the spaces disagree
        assert [r["type"] for r in recs if r["type"] in ("outcome", "rejected")][-5:] == ["rejected"] * 5
    else:
        assert summary["end_reason"] == "budget" and len(told) == 6


def test_session_against_play_twin(tmp_path, recordings_dir):
    """A recorded EEG file played as a device with the BFM's predicted response added (a digital twin)."""
    from .lsl_session import start

    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-twin")
    space_file = tmp_path / "one.toml"
    space_file.write_text(_space_toml(StimulusSpace.electrical(
        [__import__("bfm_stim.space", fromlist=["Contact"]).Contact("c0", (0.0, 0.0, 0.0))]).to_dict()))
    from bfm_stim.surrogate import default_checkpoint

    # the real BrainVision EEG, with electrode positions from MNE's built-in 10-20 template (the file has none;
    # the twin needs them); 26 of its 32 channels are 10-20 names, the rest stay without a position
    raw = mne.io.read_raw_brainvision(recordings_dir / "test.vhdr", preload=True, verbose="error")
    raw.set_montage(mne.channels.make_standard_montage("colin27_1020"), on_missing="ignore")
    fif = tmp_path / "test_raw.fif"
    raw.save(fif, verbose="error")
    dev = start(["-m", "simulators.playback", str(fif), "--key-file", str(key), "--loop",
                 "--speed", "2", "--source-id", sid, "--space", str(space_file), "--twin", str(default_checkpoint())],
                tmp_path / "dev.log")
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, device={"space": str(space_file)},
                           calibration={"rest_s": 4.0, "target": "bandpower:8-12"},
                           trials={"optimizer": "random", "budget": 3, "rest_s": 0.5})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:] + (tmp_path / "dev.log").read_text()[-2000:]
    finally:
        stop(dev)
    recs = _check_log(d, StimulusSpace.from_toml(space_file))
    assert sum(r["type"] == "outcome" for r in recs) == 3
    meta = json.loads((d / "session.json").read_text())
    assert meta["stream"]["n_channels"] == 32 and meta["stream"]["acquisition"]["model"] == "playback"
    raw = mne.io.read_raw_fif(d / "recording.fif", verbose="error")
    assert raw.info["nchan"] == 32


def test_continuous_segments_over_lsl(tmp_path):
    """Open-loop and adaptive segments after the trials: each decision logged before its command, every
    command safe at the device, decision latencies from the acks, charge and time on summarized."""
    import simulators

    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-continuous")
    dev = serve(SEED, key, sid, speed=2.0)
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, calibration={"rest_s": 4.0, "target": "bandpower:13-30"},
                           trials={"optimizer": "random", "budget": 2, "rest_s": 0.5},
                           continuous={"segments": ["open_loop", "adaptive"], "duration_s": 3.0})
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    from loops.session.store import read_log

    rows = read_log(d / "continuous.jsonl")
    ticks = [r for r in rows if "t" in r]
    acks = {r["seq"]: r for r in rows if r.get("kind") == "ack" and r["status"] == "applied"}
    assert {r["mode"] for r in ticks} == {"open_loop", "adaptive"}
    assert 40 <= len(ticks) <= 70  # every 100 ms of signal, 6 s
    commands = [r for r in ticks if r["seq"] is not None]
    # applied and acknowledged (a few last ones may be acknowledged after the segment's 0.3 s wait, or be
    # superseded by the segment's final stop)
    assert commands and sum(c["seq"] in acks for c in commands) >= 0.9 * len(commands)
    assert all(0 < acks[c["seq"]]["latency_s"] < 0.5 for c in commands if c["seq"] in acks)
    dev_space = simulators.make("bg-beta-v0", seed=SEED).stimulus_space(duration_s=(0.05, 600.0))
    for c in commands:  # every continuous command passed the one safety check of the device's space
        dev_space.check(Stimulus.from_dict(c["stimulus"]))
        assert c["stimulus"]["amplitude_ma"] == pytest.approx(c["amplitude_ma"])
    summary = json.loads((d / "session.json").read_text())["summary"]
    segs = {s["mode"]: s for s in summary["continuous"]}
    assert segs["open_loop"]["charge_uc"] > 0 and segs["open_loop"]["on_fraction"] > 0.8
    assert segs["adaptive"]["latency_ms"]["n"] > 5 and segs["open_loop"]["beta_ratio_to_rest"] > 0
