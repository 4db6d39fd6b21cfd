"""Checkpoint I/O (weights_only, mismatch errors) and the sharded corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import CheckpointError, ModelError
from bfm_stim.model import (BrainFoundationModel, CorpusStream, ModelConfig, ShardWriter, load_checkpoint,
                            load_manifest, save_checkpoint)
from bfm_stim.model.data import load_shard



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
