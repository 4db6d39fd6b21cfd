"""Surrogate.predict: batched, differentiable in the stimulus, calibrated uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.model import BrainFoundationModel, ModelConfig
from bfm_stim.model.data import sample_batch
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from bfm_stim.stim_features import N_FEATURES, stimulus_features
from bfm_stim.surrogate import Surrogate

CFG = ModelConfig(d_model=32, d_latent=16, d_channel=16, n_virtual=4, d_patient=8, n_layers=1, n_heads=2,
                  n_fourier=8, dyn_hidden=32, n_ensemble=3, max_patches=16, horizon_patches=4, dropout=0.0,
                  n_stim_features=N_FEATURES)


@pytest.fixture
def sur() -> Surrogate:
    torch.manual_seed(0)
    space = StimulusSpace.electrical([Contact(f"c{i}", (0.0, 0.0, 2.0 * i)) for i in range(2)])
    return Surrogate(BrainFoundationModel(CFG), positions=np.random.default_rng(0).normal(0, 0.02, (5, 3)),
                     patient=torch.zeros(8), space=space)


def test_predict_shapes_and_stimulus_objects(sur):
    ctx = torch.randn(5, 8 * 25) * 10
    stims = [Stimulus.electrical(contact="c1", amplitude_ma=2.0, frequency_hz=130.0, pulse_width_us=60.0,
                                 duration_s=0.2), Stimulus.off()]
    fc = sur.predict(ctx, stims)
    assert fc.z.shape == (2, 4, 16) and fc.z_std.shape == (2, 4, 16)
    assert fc.signal.shape == (2, 5, 100) and (fc.signal_std > 0).all()
    s = sur.stimulus_tensor(stims)
    assert s[0, :2].abs().sum() > 0 and s[0, 2:].abs().sum() == 0  # 0.2 s = 2 patches on, then off
    assert not torch.allclose(fc.z[0], fc.z[1])
    lo, hi = fc.interval(0.9)
    assert (lo < fc.signal).all() and (fc.signal < hi).all()
    with pytest.raises(ValidationError):
        sur.predict(torch.randn(4, 200), stims)
    with pytest.raises(ValidationError):
        sur.predict(ctx, torch.zeros(3, N_FEATURES + 1))


def test_gradient_in_every_continuous_parameter(sur):
    n = 4
    amp = torch.full((n,), 2.0, requires_grad=True)
    freq = torch.full((n,), 60.0, requires_grad=True)
    pw = torch.full((n,), 90.0, requires_grad=True)
    pos = torch.zeros(n, 3, requires_grad=True)
    one = torch.ones(n)
    feats = stimulus_features(on=one, electrical=one, contact_pos_mm=pos + torch.tensor([0.0, 0.0, 2.0]),
                              amplitude_ma=amp, frequency_hz=freq, pulse_width_us=pw,
                              visual=0 * one, auditory=0 * one, level=0 * one)
    fc = sur.predict(torch.randn(5, 200), feats)
    (fc.z.square().sum() + fc.signal.square().mean()).backward()
    for g in (amp.grad, freq.grad, pw.grad, pos.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_batching_matches_single_predictions(sur):
    ctx = torch.randn(5, 200)
    X = torch.rand(7, N_FEATURES)
    with torch.no_grad():
        full = sur.predict(ctx, X, chunk=3)
        one = sur.predict(ctx, X[4:5])
    torch.testing.assert_close(full.z[4:5], one.z, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(full.signal[4:5], one.signal, rtol=1e-4, atol=1e-4)


def test_conformal_calibration_gives_about_nominal_coverage(sur, make_series_fn=None):
    from tiny_bfm import synthetic_series

    s = next(synthetic_series(1, rest_s=8.0, n_trials=8, trial_pre_s=0.5, trial_post_s=1.5, seed=5))
    sur2 = Surrogate(sur.model, positions=s.positions, patient=torch.zeros(8))
    b = sample_batch([s], 80, n_ctx=8, n_hor=4, patch_len=25, rng=np.random.default_rng(0))
    ctx, fut, st = b.x[..., :200], b.x[..., 200:], b.stim[:, 8:]
    cal = sur2.calibrate(ctx[:40], st[:40], fut[:40], level=0.9)
    assert cal["signal_scale"] > 0 and cal["latent_scale"] > 0
    cover = []
    with torch.no_grad():
        for i in range(40, 80):
            lo, hi = sur2.predict(ctx[i], st[i:i + 1]).interval(0.9)
            cover.append(((fut[i] >= lo[0]) & (fut[i] <= hi[0])).float().mean())
    cov = float(torch.stack(cover).mean())
    assert 0.8 <= cov <= 0.97, cov
