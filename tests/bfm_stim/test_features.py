"""The BFM as a feature extractor: window encoding, recording embeddings, the scikit-learn transformer."""

from __future__ import annotations

import numpy as np
import pytest

import simulators
from bfm_stim.exceptions import ModelError, ValidationError
from bfm_stim.features import Embedding, LatentEncoder, embed_signal, encode_windows, load_encoder, window_scale
from simulators.registry import cohort


@pytest.fixture(scope="module")
def patient_windows():
    """Windows (N, C, 1 s) of an eval patient and its healthy twin, label 1 = pathological, 5 s blocks."""
    p = simulators.make("bg-beta-v0", cohort("eval", 1)[0])
    twin = p.healthy_twin()
    X, y, g = [], [], []
    for b in range(8):
        r = (p if b % 2 else twin).simulate(5.0, trial=500 + b).data.numpy()
        X += [r[:, i * 1000:(i + 1) * 1000] for i in range(5)]
        y += [b % 2] * 5
        g += [b] * 5
    return p, np.stack(X), np.array(y), np.array(g)


def test_encode_windows_shape_causality_and_batch_invariance(patient_windows):
    p, X, _, _ = patient_windows
    model, emb, info = load_encoder()
    assert emb is None and info["kind"] == "checkpoint" and len(info["digest"]) == 16
    from bfm_stim.features import _resample
    from bfm_stim.model.adapt import infer_embedding

    x = _resample(X[:4], p.fs, model.config.fs)  # (4, C, 250)
    e = infer_embedding(model, _resample(X[:10].transpose(1, 0, 2).reshape(X.shape[1], -1), p.fs, 250.0),
                        p.channel_positions)
    z = encode_windows(model, x, p.channel_positions, e)
    assert z.shape == (4, 10, model.config.d_latent) and bool(np.isfinite(z.numpy()).all())
    # one window alone gives the same latents as in a batch (no cross-talk between windows)
    z1 = encode_windows(model, x[2:3], p.channel_positions, e)
    np.testing.assert_allclose(z1[0].numpy(), z[2].numpy(), atol=1e-5)
    # each window is normalised per channel: offsets and gains leave the latents alone (window_scale keeps
    # the amplitude for the decoders that need it), a change of shape does not
    np.testing.assert_allclose(encode_windows(model, 3.0 * x[:1] + 20.0, p.channel_positions, e)[0].numpy(),
                               z[0].numpy(), atol=1e-4)
    x2 = x[:1].copy()
    x2[..., -25:] = 0.0
    assert np.abs(encode_windows(model, x2, p.channel_positions, e)[0, -1].numpy() - z[0, -1].numpy()).max() > 1e-2


def test_encode_windows_refuses_bad_input(patient_windows):
    p, X, _, _ = patient_windows
    model, _, _ = load_encoder()
    e = model.patient_table.weight.mean(0).detach()
    with pytest.raises(ValidationError, match="positions"):
        encode_windows(model, X[:2, :, :250], p.channel_positions[:-1], e)
    with pytest.raises(ValidationError, match="window length"):
        encode_windows(model, X[:2, :, :40], p.channel_positions, e)
    bad = X[:2, :, :250].copy()
    bad[0, 3, 10] = np.nan
    with pytest.raises(ValidationError, match="non-finite"):
        encode_windows(model, bad, p.channel_positions, e)


def test_sklearn_pipeline_decodes_state_and_clones(patient_windows):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    p, X, y, _ = patient_windows
    tr, te = np.r_[0:20], np.r_[20:40]  # the first 4 blocks train, the last 4 test
    pipe = make_pipeline(LatentEncoder(positions=p.channel_positions, fs=p.fs, pool="mean+scale"),
                         LogisticRegression(max_iter=2000))
    pipe.fit(X[tr], y[tr])
    enc = pipe[0]
    assert enc.embedding_.shape == (32,) and enc.n_features_out_ == 65
    assert len(enc.get_feature_names_out()) == 65
    assert pipe.score(X[te], y[te]) >= 0.8
    c = clone(pipe)  # get_params/set_params round-trip as scikit-learn expects
    assert c[0].get_params()["pool"] == "mean+scale" and not hasattr(c[0], "embedding_")
    with pytest.raises(ModelError, match="not fitted"):
        c[0].transform(X[:2])
    with pytest.raises(ValidationError, match="positions"):
        LatentEncoder(fs=p.fs).fit(X)
    with pytest.raises(ValidationError, match="pool"):
        LatentEncoder(positions=p.channel_positions, fs=p.fs, pool="max").fit(X)


def test_window_scale_is_the_amplitude():
    x = np.random.default_rng(0).normal(size=(1, 3, 500)).repeat(2, axis=0)
    x[1] *= 10.0
    s = window_scale(x)
    assert s.shape == (2, 1) and s[1, 0] - s[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_embed_signal_times_and_roundtrip(tmp_path, patient_windows):
    p, _, _, _ = patient_windows
    data = p.simulate(7.0, trial=900).data.numpy()  # 7 s: 5 context windows of 1.2 s and a 1 s tail
    e = embed_signal(data, p.fs, p.channel_positions, ch_names=p.channel_names, t0=100.0)
    assert e.latents.shape == (70, 64) and e.patch_s == pytest.approx(0.1)
    np.testing.assert_allclose(e.times, 100.0 + 0.1 * np.arange(1, 71), atol=1e-9)
    assert e.meta["embedding"].startswith("zero_shot") and e.meta["model_digest"]
    path = e.save(tmp_path / "lat.npz")
    back = Embedding.load(path)
    np.testing.assert_array_equal(back.latents, e.latents.astype(np.float32))
    assert back.ch_names == tuple(p.channel_names) and back.meta == e.meta
    F, t = back.windows(1.0)
    assert F.shape == (7, 64) and t[0] == pytest.approx(101.0)
    np.save(tmp_path / "other.npy", np.zeros(3))
    (tmp_path / "not.npz").write_bytes((tmp_path / "other.npy").read_bytes())
    with pytest.raises(Exception):
        Embedding.load(tmp_path / "not.npz")
