"""The response head: it predicts, in the frame a latent objective measures, what the response will read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.model import BrainFoundationModel, LossConfig, ModelConfig, compute_losses
from bfm_stim.model.data import sample_batch
from bfm_stim.model.response import response_targets
from bfm_stim.objectives import LatentTarget
from bfm_stim.stim_features import FEATURE_NAMES
from bfm_stim.surrogate import Surrogate

H = 4  # horizon patches of the tiny config


@pytest.fixture
def model(tiny) -> BrainFoundationModel:
    torch.manual_seed(0)
    return BrainFoundationModel(ModelConfig(**tiny, stim_feature_names=FEATURE_NAMES, response_hidden=16)).eval()


def _surrogate(model: BrainFoundationModel, c: int = 4) -> Surrogate:
    pos = np.random.default_rng(1).normal(0, 0.02, (c, 3)).astype(np.float32)
    return Surrogate(model, positions=pos, patient=torch.randn(model.config.d_patient))


def test_targets_are_what_surrogate_latents_reads(model):
    """response_targets of a future == Surrogate.latents of that future recorded alone (own
    normalisation, stimulus input off): the head is trained on exactly what the objective measures."""
    sur = _surrogate(model)
    fut = torch.randn(4, H * 25) * 30 + 5
    got = response_targets(model, fut[None], sur.positions[None], sur.patient[None])[0]
    assert torch.allclose(got, sur.latents(fut), atol=1e-5)
    # a scale or offset per channel does not change it (normalised by its own statistics)
    assert torch.allclose(response_targets(model, (fut * 3 - 7)[None], sur.positions[None], sur.patient[None])[0],
                          got, atol=1e-4)


def test_forecast_carries_response_and_targets_read_it(model):
    sur = _surrogate(model)
    ctx = torch.randn(4, 300) * 10
    F = torch.rand(6, model.config.n_stim_features, requires_grad=True)
    fc = sur.predict(ctx, F, signal=False)
    assert fc.response is not None and fc.response.shape == fc.z.shape == fc.response_std.shape
    assert (fc.response_std > 0).all() and not torch.allclose(fc.response, fc.z)
    tgt = LatentTarget.from_vector(torch.zeros(model.config.d_latent))
    cost = tgt(fc)
    assert torch.allclose(cost, tgt(fc.response)) and not torch.allclose(cost, tgt(fc.z))
    (g,) = torch.autograd.grad(cost.sum(), F)
    assert torch.isfinite(g).all() and g.abs().sum() > 0  # differentiable in the stimulus


def test_model_without_head_keeps_reading_rollout(tiny):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny, stim_feature_names=FEATURE_NAMES)).eval()
    fc = _surrogate(m).predict(torch.randn(4, 300), torch.rand(3, m.config.n_stim_features), signal=False)
    assert fc.response is None
    tgt = LatentTarget.from_vector(torch.zeros(m.config.d_latent))
    assert torch.equal(tgt(fc), tgt(fc.z))


def test_response_loss_present_trainable_and_switchable(tiny, series):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny, stim_feature_names=FEATURE_NAMES, response_hidden=16))
    rng = np.random.default_rng(0)
    batch = sample_batch(series, 8, n_ctx=8, n_hor=H, patch_len=25, rng=rng)
    out = compute_losses(m, batch, LossConfig(), generator=torch.Generator().manual_seed(0))
    assert "response" in out and torch.isfinite(out["response"]) and out["response"] > 0
    assert "response" not in compute_losses(m, batch, LossConfig(response_weight=0.0))
    # training the head alone on a fixed batch drives its loss down
    opt = torch.optim.Adam(m.response.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = compute_losses(m, batch, LossConfig(masked=False, contrastive=False),
                              generator=torch.Generator().manual_seed(0))["response"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_calibrate_sets_response_scale(model):
    sur = _surrogate(model)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(5, 4, 300, generator=g) * 10
    stim = torch.rand(5, H, model.config.n_stim_features, generator=g)
    fut = torch.randn(5, 4, H * 25, generator=g) * 10
    cal = sur.calibrate(ctx, stim, fut)
    assert cal["response_scale"] > 0 and sur.response_scale == cal["response_scale"]
