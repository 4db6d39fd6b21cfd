"""Checkpoint I/O (weights_only, mismatch errors) and the sharded corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import CheckpointError, ModelError
from bfm_stim.model import (BrainFoundationModel, CorpusStream, ModelConfig, ShardWriter, load_checkpoint,
                            load_manifest, save_checkpoint)
from bfm_stim.model.data import PatientSeries, load_shard, sample_batch
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES



def test_checkpoint_roundtrip_is_weights_only(tmp_path, tiny):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    opt = torch.optim.AdamW(m.parameters())
    path = save_checkpoint(tmp_path / "m.pt", m, optimizer=opt, step=7, extra={"note": "x"})
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled objects
    assert raw["model_config"]["d_model"] == 32
    m2, info = load_checkpoint(path)
    assert info["step"] == 7 and info["extra"] == {"note": "x"}
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)


def test_checkpoint_mismatch_and_corruption_raise(tmp_path, tiny):
    m = BrainFoundationModel(ModelConfig(**tiny))
    path = save_checkpoint(tmp_path / "m.pt", m)
    other = BrainFoundationModel(ModelConfig(**{**tiny, "d_latent": 24}))
    with pytest.raises(CheckpointError, match="d_latent"):
        load_checkpoint(path, model=other)
    with pytest.raises(CheckpointError, match="no optimizer"):
        load_checkpoint(path, model=m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(bad)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["read_in.out.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "shape.pt")
    torch.save({"a": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a bfm-stim"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_shards_roundtrip_and_stream(tmp_path, make_series):
    series = make_series(5)
    w = ShardWriter(tmp_path, patients_per_shard=2, info={"fs": 250.0})
    for s in series:
        w.add(s)
    w.close()
    man = load_manifest(tmp_path)
    assert man["n_patients"] == 5 and len(man["shards"]) == 3 and man["fs"] == 250.0
    back = load_shard(tmp_path / man["shards"][0]["file"]) + load_shard(tmp_path / man["shards"][1]["file"])
    for a, b in zip(series, back):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.stim_ids, b.stim_ids)
        assert (a.patient, a.group, a.rest_samples) == (b.patient, b.group, b.rest_samples)
    it = iter(CorpusStream(tmp_path, batch_size=6, n_ctx=8, n_hor=4, patch_len=25, seed=1, batches_per_visit=2))
    b1 = next(it)
    assert b1.x.shape[0] == 6 and b1.x.shape[2] == 300 and b1.stim.shape == (6, 12, series[0].stim_table.shape[1])
    assert b1.valid.any(1).all() and (b1.x.abs().sum(-1) > 0).eq(b1.valid).all()
    # ranks see disjoint shards when there are enough of them
    r0 = CorpusStream(tmp_path, batch_size=2, n_ctx=8, n_hor=4, patch_len=25, rank=0, world=2).files
    r1 = CorpusStream(tmp_path, batch_size=2, n_ctx=8, n_hor=4, patch_len=25, rank=1, world=2).files
    assert not set(r0) & set(r1) and len(r0) + len(r1) == 3
    with pytest.raises(ModelError, match="manifest"):
        load_manifest(tmp_path / "nowhere")


def test_onset_aligned_windows_put_stimulus_in_horizon(series):
    b = __import__("bfm_stim.model.data", fromlist=["sample_batch"]).sample_batch(
        series, 32, n_ctx=8, n_hor=4, patch_len=25, rng=np.random.default_rng(0), onset_frac=1.0)
    on = b.stim.abs().sum(-1) > 0  # (B, P)
    assert on[:, 8:].any(1).float().mean() > 0.9


# ------------------------------------------------------------------------------- time since onset
def _series(ids, c: int = 2) -> PatientSeries:
    ids = np.asarray(ids, np.int32)
    table = np.vstack([np.zeros(N_FEATURES), np.ones((int(ids.max()), N_FEATURES))]).astype(np.float32)
    return PatientSeries(np.zeros((c, len(ids)), np.float32), np.zeros((c, 3), np.float32), ids, table, 0)


def test_samples_since_onset_restarts_when_the_stimulus_changes():
    s = _series([0] * 3 + [1] * 7 + [2] * 5 + [0] * 3)
    got = s.samples_since_onset()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [-1] * 3 + list(range(7)) + list(range(5)) + [-1] * 3)
    assert s.samples_since_onset() is got  # cached
    # on from the first sample; the same stimulus again after a gap starts a new run
    np.testing.assert_array_equal(_series([1, 1, 0, 1, 1, 1]).samples_since_onset(), [0, 1, -1, 0, 1, 2])
    np.testing.assert_array_equal(_series([0, 0]).samples_since_onset(), [-1, -1])


def _ramp_series(n: int = 3, seed: int = 0) -> list[PatientSeries]:
    """Series whose signal is the sample index (every channel), so a window tells where it starts."""
    rng = np.random.default_rng(seed)
    i_on = FEATURE_NAMES.index("on")
    out = []
    for i in range(n):
        c, t = 2 + i, 3000
        ids = np.zeros(t, np.int32)
        ids[1000:1250], ids[1250:1330], ids[2000:2250] = 1, 2, 2  # 1 → 2 back to back, then 2 alone
        table = np.vstack([np.zeros(N_FEATURES), rng.random((2, N_FEATURES))]).astype(np.float32)
        table[1:, i_on] = 1.0
        data = np.repeat(np.arange(t, dtype=np.float32)[None], c, 0)
        out.append(PatientSeries(data, np.zeros((c, 3), np.float32), ids, table, 900, i, 0))
    return out


@pytest.mark.parametrize("onset_frac", [0.5, 1.0])
def test_batch_t_on_is_the_time_since_onset_over_the_horizon(onset_frac):
    series = _ramp_series()
    n_ctx, n_hor, L = 8, 4, 25
    win = (n_ctx + n_hor) * L
    b = sample_batch(series, 64, n_ctx=n_ctx, n_hor=n_hor, patch_len=L, rng=np.random.default_rng(1),
                     onset_frac=onset_frac)
    assert b.t_on.shape == (64, n_hor * L) and b.t_on.dtype == torch.float32
    i_on = FEATURE_NAMES.index("on")
    first = []
    for i in range(64):
        s = series[int(b.patient[i])]
        start = int(b.x[i, 0, 0])
        np.testing.assert_array_equal(b.x[i, 0].numpy(), np.arange(start, start + win))  # the start is right
        want = s.samples_since_onset()[start + n_ctx * L:start + win]
        np.testing.assert_array_equal(b.t_on[i].numpy(), want)
        # the patch features' "on" is the fraction of each horizon patch the stimulus covers
        frac = (b.t_on[i] >= 0).float().view(n_hor, L).mean(1)
        torch.testing.assert_close(b.stim[i, n_ctx:, i_on], frac, rtol=0, atol=1e-6)
        q = int(torch.nonzero(b.t_on[i] >= 0)[0, 0]) if (b.t_on[i] >= 0).any() else None
        first.append(None if q is None else q - int(b.t_on[i, q]))  # where the acting run began, horizon samples
    if onset_frac == 1.0:
        # every window puts an onset within a patch of the horizon start, both before and after it
        assert all(o is not None and -L <= o <= L for o in first), first
        assert any(o < 0 for o in first) and any(o > 0 for o in first)
    else:
        assert sum(o is None for o in first) > 5  # random windows, many without a stimulus
