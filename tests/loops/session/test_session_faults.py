"""Faults during a session, with real processes over loopback LSL: bad data, a device that dies and
comes back, the wrong device, SIGINT, and SIGKILL of the session followed by --resume."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import mne
import numpy as np
import pytest

from bfm_stim.lsl.protocol import keygen
from loops.session.store import read_signal, replay, trial_views
from .lsl_session import (child_env, faulty, records, run_session_proc, serve, session_cmd, stop, unique_id,
                          wait_for, wait_stream, write_config)

pytestmark = pytest.mark.lsl
SEED = 1000002  # evaluation cohort
FAST = {"calibration": {"rest_s": 4.0, "target": "bandpower:13-30"},
        "trials": {"optimizer": "random", "budget": 4, "rest_s": 0.5}}


@pytest.mark.parametrize("mode,kind", [("nan", "nonfinite"), ("flat", "flat")])
def test_bad_data_interrupts_the_trial_and_keeps_everything(tmp_path, mode, kind):
    key = keygen(tmp_path / "k.key")
    sid = unique_id(f"test-{mode}")
    dev = faulty(SEED, key, sid, mode, log=tmp_path / "dev.log")
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, **FAST)
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    recs = records(d)
    faults = [r for r in recs if r["type"] == "fault" and r["kind"] == kind]
    assert faults, [r for r in recs if r["type"] == "fault"]
    import simulators

    # the faulty device spoils channel 0 (NaN) or channel 3 (a constant): the fault names that channel
    bad_channel = simulators.make("bg-beta-v0", seed=SEED).channel_names[0 if mode == "nan" else 3]
    what = {"nan": "non-finite samples (NaN/inf)", "flat": "is flat (standard deviation"}[mode]
    assert faults[0]["detail"].startswith(f"channel {bad_channel!r}") and what in faults[0]["detail"], faults[0]
    views = trial_views(recs)
    interrupted = [v for v in views if v.status == "interrupted"]
    assert interrupted and all(v.cost is None for v in interrupted)  # nothing told to the optimizer
    assert any(faults[0]["detail"] in v.reason for v in interrupted), [v.reason for v in interrupted]
    state = json.loads((d / "optimizer.json").read_text())
    assert len(state["observations"]) == sum(v.status == "completed" for v in views) == 4
    i = recs.index(faults[0])  # the device was told to stop right after the fault
    assert any(r["type"] == "stop" for r in recs[i:i + 4])
    meta = json.loads((d / "session.json").read_text())
    data, _ = read_signal(d / "stream", meta["stream"]["n_channels"])
    if mode == "nan":  # the bad samples are kept as received (nothing lost), and marked in the FIF
        assert np.isnan(data[0]).sum() >= 400
        raw = mne.io.read_raw_fif(d / "recording.fif", verbose="error")
        assert any(a["description"].startswith("BAD_nonfinite") for a in raw.annotations)
    else:
        assert (np.diff(data[3]) == 0).sum() >= 400


def test_missing_acknowledgement_interrupts_the_trial(tmp_path):
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-noack")
    dev = faulty(SEED, key, sid, "noack", log=tmp_path / "dev.log")
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, device={"ack_timeout_s": 0.5}, **FAST)
        d = tmp_path / "sess"
        res = run_session_proc(["--config", str(cfg), "--out", str(d)])
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    recs = records(d)
    assert [r for r in recs if r["type"] == "fault" and r["kind"] == "no_ack"]
    views = trial_views(recs)
    assert [v.trial for v in views if v.status == "interrupted"] == [3]
    assert "no acknowledgement" in views[2].reason and views[2].cost is None
    assert sum(v.status == "completed" for v in views) == 4


def test_wrong_channel_count_is_refused_with_a_clear_message(tmp_path):
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-mismatch")
    dev = serve(SEED, key, sid)
    try:
        wait_stream(sid)
        cfg = write_config(tmp_path / "s.toml", sid, key, device={"n_channels": 5}, **FAST)
        res = run_session_proc(["--config", str(cfg), "--out", str(tmp_path / "sess")])
    finally:
        stop(dev)
    assert res.returncode == 2
    import simulators

    n = simulators.make("bg-beta-v0", seed=SEED).n_channels
    assert f"{n} channels, expected n_channels = 5" in res.stderr
    assert not (tmp_path / "sess" / "stream").exists() or not any(
        r["type"] == "sent" for r in records(tmp_path / "sess"))


def test_device_restart_with_the_same_source_id(tmp_path):
    """The device dies mid-session and comes back: no command while it is gone, the session goes on."""
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-restart")
    dev = serve(SEED, key, sid)
    d = tmp_path / "sess"
    cfg = write_config(tmp_path / "s.toml", sid, key, calibration=FAST["calibration"],
                       trials={"optimizer": "random", "budget": 8, "rest_s": 0.5})
    wait_stream(sid)
    sess = subprocess.Popen([sys.executable, *session_cmd("--config", str(cfg), "--out", str(d))], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sess.log", "w"))
    try:
        assert wait_for(lambda: sum(r["type"] == "outcome" for r in records(d)) >= 2, 120)
        dev.send_signal(signal.SIGKILL)
        dev.wait()
        t_kill = time.time()
        time.sleep(2.0)
        t_back = time.time()
        dev = serve(SEED, key, sid)
        assert sess.wait(180) == 0, (tmp_path / "sess.log").read_text()[-3000:]
    finally:
        stop(dev)
        if sess.poll() is None:
            sess.kill()
    recs = records(d)
    assert not [r for r in recs if r["type"] == "sent" and t_kill < r["t"] < t_back + 0.5]
    kinds = {r["kind"] for r in recs if r["type"] == "fault"}
    assert kinds & {"dropout", "lost", "stale"}, kinds
    assert any(r["type"] == "recovered" for r in recs)
    views = trial_views(recs)
    assert sum(v.status == "completed" for v in views) == 8
    assert [r["type"] for r in recs][-1] == "end"


def test_sigint_ends_with_a_stop_and_a_complete_log(tmp_path):
    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-sigint")
    dev = serve(SEED, key, sid)
    d = tmp_path / "sess"
    cfg = write_config(tmp_path / "s.toml", sid, key, calibration=FAST["calibration"],
                       trials={"optimizer": "random", "budget": 50, "rest_s": 0.5})
    wait_stream(sid)
    sess = subprocess.Popen([sys.executable, *session_cmd("--config", str(cfg), "--out", str(d))], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: sum(r["type"] == "sent" for r in records(d)) >= 3, 120)
        sess.send_signal(signal.SIGINT)
        assert sess.wait(60) == 0
    finally:
        stop(dev)
        if sess.poll() is None:
            sess.kill()
    recs = records(d)
    assert recs[-1]["type"] == "end" and recs[-1]["reason"] == "signal"
    assert recs[-2]["type"] == "stop"
    views = trial_views(recs)
    assert all(v.status in ("completed", "interrupted", "asked") for v in views)
    assert (d / "recording.fif").is_file() and (d / "report" / "index.html").is_file()


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    """SIGKILL of the session process at >= 20 random moments, each followed by --resume: every completed trial
    kept exactly once, interrupted ones marked, the optimizer's next proposal that of the replayed log."""
    import simulators
    from bfm_stim.optim import make
    from loops.session.config import SessionConfig

    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-kill")
    dev = serve(SEED, key, sid, speed=4.0)
    d = tmp_path / "sess"
    budget = 16
    cfg = write_config(tmp_path / "s.toml", sid, key, calibration=FAST["calibration"],
                       trials={"optimizer": "bo", "budget": budget, "rest_s": 0.5,
                               "settings": {"n_init": 4, "num_restarts": 1, "raw_samples": 32, "mc_samples": 32,
                                            "maxiter": 20}})
    wait_stream(sid)
    rng = random.Random(7)
    kills = 0
    try:
        args = ["--config", str(cfg), "--out", str(d)]
        while kills < 20:
            p = subprocess.Popen([sys.executable, *session_cmd(*args)], env=child_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(3.0, 6.0))
            if p.poll() is not None:  # finished before the kill
                break
            p.send_signal(signal.SIGKILL)
            p.wait()
            args = ["--resume", str(d)]
            if not (d / "session.json").is_file():  # killed before the session existed (or its folder): start again
                import shutil

                shutil.rmtree(d, ignore_errors=True)
                args = ["--config", str(cfg), "--out", str(d)]
            else:  # a kill inside a session (calibration, a trial, a write): the ones that count
                kills += 1
        res = run_session_proc(["--resume", str(d)], timeout=400)
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        stop(dev)
    assert kills >= 20
    recs = records(d)
    views = trial_views(recs)
    outcomes = [r["trial"] for r in recs if r["type"] == "outcome"]
    assert len(outcomes) == len(set(outcomes)) == budget  # every completed trial exactly once
    sent = {}
    for r in recs:
        if r["type"] == "sent":
            assert r["trial"] not in sent, f"trial {r['trial']} sent twice"
            sent[r["trial"]] = r
    for v in views:  # nothing left in flight: completed, interrupted (marked) or refused
        assert v.status in ("completed", "interrupted", "rejected", "asked"), v
        if v.trial in sent:
            assert v.status != "asked"
    assert sum(r["type"] == "start" for r in recs) >= 2
    # the optimizer, rebuilt from the log alone, proposes what the session's saved optimizer proposes next
    meta = json.loads((d / "session.json").read_text())
    space = simulators.make("bg-beta-v0", seed=SEED).stimulus_space()
    scfg = SessionConfig.from_dict(meta["config"])
    from loops.offline import optimizer_settings

    table = optimizer_settings("bo", None)
    table.update(dict(scfg.trials.settings), seed=scfg.trials.seed)
    fresh = make("bo", space, settings=table)
    ops = [r for r in recs if r["type"] in ("asked", "outcome", "interrupted", "rejected")]
    for _ in replay(fresh, ops):  # raises if any replayed proposal differs from the logged one
        pass
    saved = json.loads((d / "optimizer.json").read_text())
    saved.pop("op")
    restored = make("bo", space, settings=table)
    restored.load_state_dict(saved)
    assert fresh.ask(1)[0] == restored.ask(1)[0]
    raw = mne.io.read_raw_fif(d / "recording.fif", verbose="error")
    assert len(raw.annotations) > budget
