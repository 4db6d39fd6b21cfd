"""Architecture: shapes, causality, any montage, receptive field, self-supervised losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ConfigError, ModelError, ValidationError
from bfm_stim.model import BrainFoundationModel, LossConfig, ModelConfig, compute_losses
from bfm_stim.model.data import PatientSeries, sample_batch
from bfm_stim.stim_features import N_FEATURES

@pytest.fixture
def model(tiny) -> BrainFoundationModel:
    torch.manual_seed(0)
    return BrainFoundationModel(ModelConfig(**tiny)).eval()


def test_encoder_is_causal_and_declares_receptive_field(model):
    x = torch.randn(2, 5, 12 * 25)
    pos = torch.randn(2, 5, 3) * 0.02
    stim = torch.zeros(2, 12, N_FEATURES)
    z = model.encode(x, pos, stim, torch.tensor([0, 1]))
    assert z.shape == (2, 12, 16)
    x2 = x.clone()
    x2[..., 8 * 25:] += 5.0  # change patches 8..11 only
    z2 = model.encode(x2, pos, stim, torch.tensor([0, 1]))
    torch.testing.assert_close(z[:, :8], z2[:, :8])
    assert not torch.allclose(z[:, 8:], z2[:, 8:])
    assert model.get_offset() == 16 * 25 and model.samples_per_latent == 25
    with pytest.raises(ModelError, match="max_patches"):
        model.encode(torch.randn(1, 5, 17 * 25), pos[:1], torch.zeros(1, 17, N_FEATURES), torch.tensor([0]))


def test_any_montage_and_unknown_positions(model):
    for c in (1, 3, 11):
        pos = torch.randn(1, c, 3) * 0.02
        pos[0, 0] = float("nan")
        z = model.encode(torch.randn(1, c, 100), pos, torch.zeros(1, 4, N_FEATURES), torch.randn(1, 8))
        mu, lv = model.decode(z, torch.randn(1, 8), pos)
        assert mu.shape == (1, c, 100) and lv.shape == (1, c, 4)
        assert torch.isfinite(mu).all()


def test_stimulus_changes_rollout_and_has_gradient(model):
    z0 = torch.randn(3, 16)
    stim = torch.rand(3, 4, N_FEATURES, requires_grad=True)
    zr = model.rollout(z0, stim, torch.tensor([0, 1, 2]))
    assert zr.shape == (2, 3, 4, 16)
    zr.sum().backward()
    assert torch.isfinite(stim.grad).all() and stim.grad.abs().sum() > 0


def test_bad_inputs_raise(model, tiny):
    with pytest.raises(ModelError, match="patch_len"):
        model.encode(torch.randn(1, 2, 101), torch.zeros(1, 2, 3), torch.zeros(1, 4, N_FEATURES), torch.tensor([0]))
    with pytest.raises(ModelError, match="positions"):
        model.encode(torch.randn(1, 2, 100), torch.zeros(1, 3, 3), torch.zeros(1, 4, N_FEATURES), torch.tensor([0]))
    with pytest.raises(ModelError, match="width"):
        model.patient_embedding(torch.randn(1, 5))
    with pytest.raises(ValidationError):
        ModelConfig(**{**tiny, "d_model": 33})
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({**tiny, "bogus": 1})


@pytest.mark.parametrize("switches", [dict(), dict(masked=False), dict(contrastive=False),
                                      dict(forecast=False), dict(forecast=False, masked=False)])
def test_losses_switchable_finite_and_trainable(switches, tiny, series):
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    cfg = LossConfig(**switches)
    batch = sample_batch(series, 8, n_ctx=8, n_hor=4, patch_len=25, rng=np.random.default_rng(0))
    out = compute_losses(m, batch, cfg, generator=torch.Generator().manual_seed(0))
    assert ("forecast" in out) == cfg.forecast and ("masked" in out) == cfg.masked
    assert ("contrastive" in out) == cfg.contrastive
    assert torch.isfinite(out["total"])
    out["total"].backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_loss_config_rejects_nonsense():
    with pytest.raises(ConfigError):
        LossConfig(forecast=False, masked=False, contrastive=False)
    with pytest.raises(ValidationError):
        LossConfig(time_mask_ratio=1.5)
    with pytest.raises(ConfigError):
        LossConfig.from_dict({"forcast": True})


def test_training_reduces_forecast_loss(tiny):
    """A few dozen steps on a predictable signal lower the forecast loss (the objective is learnable)."""
    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(**tiny))
    rng = np.random.default_rng(0)
    t = np.arange(3000) / 250.0
    ser = []
    for i in range(4):
        data = np.stack([np.sin(2 * np.pi * 10 * t + k) for k in range(3)]).astype(np.float32) * 10
        ser.append(PatientSeries(data + rng.normal(0, 0.5, data.shape).astype(np.float32),
                                 rng.normal(0, 0.02, (3, 3)).astype(np.float32), np.zeros(3000, np.int32),
                                 np.zeros((1, N_FEATURES), np.float32), 1000, i, 0))
    cfg = LossConfig(masked=False, contrastive=False)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = last = None
    for step in range(60):
        out = compute_losses(m, sample_batch(ser, 8, n_ctx=8, n_hor=4, patch_len=25, rng=rng), cfg)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        first = first if first is not None else out["forecast"].item()
        last = out["forecast"].item()
    assert last < 0.5 * first
