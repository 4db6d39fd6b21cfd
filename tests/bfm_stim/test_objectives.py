"""Objectives: latent targets, band power, energy penalty — torch functions with gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.objectives import BandPowerObjective, LatentTarget, band_power, energy_from_features, energy_penalty
from bfm_stim.space import Contact, Stimulus, StimulusSpace


def test_latent_target_cost_and_gradient():
    t = LatentTarget.from_vector([1.0, 0.0, -1.0])
    z = torch.tensor([[[1.0, 0.0, -1.0]] * 3, [[0.0, 0.0, 0.0]] * 3], requires_grad=True)
    c = t(z)
    assert c.shape == (2,) and c[0] == 0 and math.isclose(c[1].item(), 2 / 3, rel_tol=1e-6)
    c.sum().backward()
    assert z.grad[1].abs().sum() > 0
    assert LatentTarget.from_vector([1.0, 0.0, -1.0], last=1)(z[:, None, 0])[0] == 0
    with pytest.raises(ValidationError):
        t(torch.zeros(2, 3, 4))
    with pytest.raises(ValidationError):
        LatentTarget.from_vector([float("nan")])


def test_latent_target_from_recording_is_its_own_minimum():
    from bfm_stim.model import BrainFoundationModel, ModelConfig
    from bfm_stim.stim_features import N_FEATURES
    from bfm_stim.surrogate import Surrogate

    torch.manual_seed(0)
    m = BrainFoundationModel(ModelConfig(d_model=32, d_latent=16, d_channel=16, n_virtual=4, d_patient=8,
                                         n_layers=1, n_heads=2, max_patches=16, horizon_patches=4,
                                         n_stim_features=N_FEATURES))
    sur = Surrogate(m, positions=np.zeros((3, 3)), patient=torch.zeros(8))
    rng = np.random.default_rng(0)
    calm, wild = rng.normal(size=(3, 2000)), 30 * rng.normal(size=(3, 2000)) + 50 * np.sin(np.arange(2000) / 3)
    t = LatentTarget.from_recording(sur, calm)
    assert t.z.shape == (16,) and t.weight is not None
    assert t(sur.latents(calm)[None]).item() < t(sur.latents(wild)[None]).item()


def test_band_power_finds_the_oscillation():
    fs = 250.0
    tt = torch.arange(500) / fs
    beta = torch.sin(2 * math.pi * 20 * tt)
    alpha = torch.sin(2 * math.pi * 10 * tt)
    sig = torch.stack([beta, alpha])[:, None, :].repeat(1, 2, 1).requires_grad_(True)
    bp = band_power(sig, fs, (13.0, 30.0))
    assert bp[0] > bp[1] + 2  # orders of magnitude more beta in the beta signal
    bp.sum().backward()
    assert torch.isfinite(sig.grad).all()
    obj = BandPowerObjective(band=(13.0, 30.0), fs=fs)
    assert obj(sig)[0] > obj(sig)[1]
    assert BandPowerObjective(band=(13.0, 30.0), fs=fs, target=float(bp[1].detach()))(sig)[1].item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValidationError):
        band_power(sig, fs, (30.0, 200.0))


def test_energy_penalty_formula_and_features():
    e = energy_penalty(torch.tensor([1.0, 2.0]), torch.tensor([100.0, 100.0]), torch.tensor([100.0, 100.0]))
    # (1 mA)² · 1 kΩ · 200 µs · 100 Hz · 1 s = 20 µJ; 4x for twice the current
    torch.testing.assert_close(e, torch.tensor([20.0, 80.0]))
    space = StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))])
    f = space.to_features([Stimulus.electrical(contact="c0", amplitude_ma=1.0, frequency_hz=100.0,
                                               pulse_width_us=100.0, duration_s=1.0), Stimulus.off()])
    torch.testing.assert_close(energy_from_features(f), torch.tensor([20.0, 0.0]), rtol=1e-4, atol=1e-4)
