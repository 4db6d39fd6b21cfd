"""Adaptation to a new patient: zero-shot embedding, embedding + read-in/out, full fine-tune."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.model import BrainFoundationModel, ModelConfig, adapt, forecast_error, infer_embedding, sample_batch
from tiny_bfm import synthetic_series


@pytest.fixture(scope="module")
def patient():
    s = next(synthetic_series(1, rest_s=8.0, n_trials=8, trial_pre_s=0.5, trial_post_s=1.5, seed=99))
    s.patient = -1
    return s


def test_zero_shot_embedding(patient, tiny):
    m = BrainFoundationModel(ModelConfig(**tiny))
    e = infer_embedding(m, patient.data[:, :patient.rest_samples], patient.positions)
    assert e.shape == (8,) and torch.isfinite(e).all()
    res = adapt(m, patient, mode="zero_shot")
    torch.testing.assert_close(res.embedding, e)
    with pytest.raises(ValidationError):
        infer_embedding(m, patient.data[:, :10], patient.positions)
    with pytest.raises(ValidationError):
        adapt(m, patient, mode="magic")


@pytest.mark.parametrize("mode", ["embedding", "full"])
def test_tuning_lowers_held_out_forecast_error_and_leaves_pretrained_alone(patient, mode, tiny):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    held = sample_batch([patient], 32, n_ctx=8, n_hor=4, patch_len=25, rng=np.random.default_rng(123))
    zs = adapt(m, patient, mode="zero_shot")
    err0 = forecast_error(zs.model, held, zs.embedding)
    res = adapt(m, patient, mode=mode, steps=20, lr=5e-3, batch_size=8, n_ctx=8, seed=1)
    err1 = forecast_error(res.model, held, res.embedding)
    assert err1 < err0, (err0, err1)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, before[k])
    changed = [k for k, v in res.model.state_dict().items() if not torch.equal(v, before[k])]
    if mode == "embedding":
        assert changed and all(k.split(".")[0] in ("chan_embed", "read_in", "read_out") for k in changed)
    else:
        assert any(k.startswith("transformer") for k in changed)


def _drift(res, start: dict[str, torch.Tensor]) -> float:
    return max(float((v - start[k]).abs().max()) for k, v in res.model.state_dict().items() if v.is_floating_point())


def test_anchor_bounds_the_drift_from_the_pretrained_weights(patient, tiny):
    """Each step pulls every tuned value back by lr * anchor of its distance: the drift stays near 1/anchor."""
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    start = {k: v.clone() for k, v in m.state_dict().items()}
    kw = dict(mode="full", steps=60, lr=1e-2, batch_size=8, n_ctx=8, seed=1)
    free = adapt(m, patient, **kw)
    held = adapt(m, patient, anchor=50.0, **kw)
    assert _drift(free, start) > 0.2  # 60 Adam steps of 0.01 each: up to 0.6
    assert _drift(held, start) < 0.04 < _drift(free, start)  # 1/anchor = 0.02
    e0 = adapt(m, patient, mode="zero_shot").embedding
    assert float((held.embedding - e0).abs().max()) < float((free.embedding - e0).abs().max())
    for bad in (-1.0, float("nan"), 100.0):  # 100 * lr = 1 would overshoot the pretrained weights
        with pytest.raises(ValidationError, match="anchor"):
            adapt(m, patient, anchor=bad, **kw)


def test_tune_weights_false_moves_the_embedding_alone(patient, tiny):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    res = adapt(m, patient, mode="embedding", steps=5, lr=1e-2, batch_size=8, n_ctx=8, tune_weights=False)
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(v, m.state_dict()[k])
    assert not torch.equal(res.embedding, adapt(m, patient, mode="zero_shot").embedding)
