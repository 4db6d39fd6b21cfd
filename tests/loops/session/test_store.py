"""The session directory's durable pieces: the write-ahead log, the stream files, replay of the optimizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, OptimizerError
from bfm_stim.optim import make
from loops.session.proposer import Proposer
from loops.session.store import SessionStore, SignalWriter, read_log, read_signal, replay, trial_views


def test_torn_last_line_is_dropped_but_corruption_is_an_error(tmp_path):
    p = tmp_path / "trials.jsonl"
    p.write_text('{"type":"start"}\n{"type":"asked","trial":1}\n{"type":"sen')
    assert [r["type"] for r in read_log(p)] == ["start", "asked"]
    p.write_text('{"type":"start"}\nnot json\n{"type":"end"}\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_log(p)


def test_signal_files_survive_a_torn_write(tmp_path):
    w = SignalWriter(tmp_path, 3)
    w.append(np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(4.0))
    w.close()
    with open(tmp_path / "data.f32", "ab") as f:  # a kill in the middle of the next chunk
        f.write(b"\x00" * 7)
    w = SignalWriter(tmp_path, 3)  # reopening repairs, and appending continues after the last whole sample
    w.append(np.full((3, 2), 9.0, np.float32), np.array([10.0, 11.0]))
    w.close()
    data, t = read_signal(tmp_path, 3)
    assert data.shape == (3, 6) and t.tolist() == [0, 1, 2, 3, 10, 11]
    assert data[:, :4].tolist() == np.arange(12).reshape(3, 4).tolist()


def test_a_new_session_refuses_an_existing_directory(tmp_path):
    s = SessionStore(tmp_path, create=True)
    s.append("start", run=1)
    s.close()
    with pytest.raises(ConfigError, match="--resume"):
        SessionStore(tmp_path, create=True)
    with pytest.raises(ConfigError, match="not a session directory"):
        SessionStore(tmp_path / "other", create=False)


def test_replay_rebuilds_the_optimizer_and_catches_divergence(tmp_path, electrical_space):
    """Asks (one made while the previous trial was pending), tells and cancels, logged by the Proposer,
    replay on a fresh optimizer to the same next proposal; a different seed is refused."""
    store = SessionStore(tmp_path, create=True)
    opt = make("bo", electrical_space, seed=4, n_init=3, num_restarts=1, raw_samples=16, mc_samples=16, maxiter=10)
    prop = Proposer(opt, store)
    costs = iter([0.5, 0.2, 0.9, 0.4, 0.3])
    k, stim, _ = prop.result(1)
    for trial in range(1, 7):
        prop.start(trial + 1)  # asked while this trial is pending
        if trial == 3:
            prop.cancel(k, stim, "interrupted", "test: dropout")
        else:
            prop.tell(k, stim, next(costs), 0.0 if trial != 2 else 1.0)
        k, stim, _ = prop.result(trial + 1)
    prop.wait_idle()
    ops = store.optimizer_ops()
    assert [r["type"] for r in ops][:4] == ["asked", "asked", "outcome", "asked"]
    fresh = make("bo", electrical_space, seed=4, n_init=3, num_restarts=1, raw_samples=16, mc_samples=16, maxiter=10)
    assert len(list(replay(fresh, ops))) == len(ops)
    assert fresh.ask(1)[0] == opt.ask(1)[0]
    state = json.loads((tmp_path / "optimizer.json").read_text())
    assert state["op"] == len(ops)
    views = trial_views(store.records)
    assert [v.status for v in views] == ["completed", "completed", "interrupted", "completed", "completed",
                                         "completed", "asked"]
    other = make("bo", electrical_space, seed=5, n_init=3)
    with pytest.raises(OptimizerError, match="replaying trial 1"):
        list(replay(other, ops))
    store.close()
