"""Biomarker heads: predicted log band power of the response window, read by band-power objectives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bfm_stim.model import BrainFoundationModel, LossConfig, ModelConfig, compute_losses
from bfm_stim.model.biomarker import DEFAULT_BANDS, band_index, log_band_power
from bfm_stim.model.checkpoint import load_checkpoint, save_checkpoint
from bfm_stim.model.data import PatientSeries, sample_batch
from bfm_stim.objectives import BandPowerObjective, EnergyPenalized, band_power, teed_from_features
from bfm_stim.optim.surrogate_cost import SurrogateCost
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES
from bfm_stim.surrogate import Surrogate

BETA = (13.0, 30.0)
IX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _model(tiny: dict, **kw) -> BrainFoundationModel:
    torch.manual_seed(0)
    return BrainFoundationModel(ModelConfig(**tiny, stim_feature_names=FEATURE_NAMES, biomarker_hidden=16, **kw))


def _surrogate(model: BrainFoundationModel, c: int = 4) -> Surrogate:
    pos = np.random.default_rng(1).normal(0, 0.02, (c, 3)).astype(np.float32)
    return Surrogate(model.eval(), positions=pos, patient=torch.randn(model.config.d_patient))


def test_log_band_power_matches_band_power():
    """The heads' labels use the periodogram of the objective: the same numbers, per channel."""
    x = torch.randn(2, 3, 250) * 7
    lp = log_band_power(x, 250.0, DEFAULT_BANDS)
    assert lp.shape == (2, 3, len(DEFAULT_BANDS))
    for c in range(3):
        assert torch.allclose(lp[:, c, 3], band_power(x, 250.0, BETA, channels=[c]), atol=1e-5)
    assert band_index(DEFAULT_BANDS, (13, 30)) == 3 and band_index(DEFAULT_BANDS, (12, 31)) is None


def test_config_defaults_and_round_trip(tiny, tmp_path):
    m = _model(tiny)
    assert m.config.biomarker_bands == DEFAULT_BANDS
    save_checkpoint(tmp_path / "m.pt", m)
    m2, _ = load_checkpoint(tmp_path / "m.pt")
    assert m2.config.biomarker_bands == DEFAULT_BANDS and m2.biomarker is not None
    with pytest.raises(Exception, match="Nyquist"):
        ModelConfig(**tiny, stim_feature_names=FEATURE_NAMES, biomarker_hidden=8, biomarker_bands=((13.0, 200.0),))


def test_heads_finite_with_gradients_in_every_continuous_parameter(tiny):
    m = _model(tiny)
    torch.nn.init.normal_(m.biomarker.out[-1].weight, std=0.3)  # the head starts at zero: give it a slope
    sur = _surrogate(m)
    ctx = torch.randn(4, 300) * 10
    F = torch.rand(5, N_FEATURES)
    F[:, IX["on"]] = F[:, IX["electrical"]] = 1.0
    F.requires_grad_(True)
    fc = sur.predict(ctx, F, signal=False)
    assert fc.signal is None and fc.biomarker.shape == (5, 4, len(DEFAULT_BANDS))
    assert torch.isfinite(fc.biomarker).all() and (fc.biomarker_std > 0).all()
    cost = BandPowerObjective(BETA, sur.fs)(fc)
    (g,) = torch.autograd.grad(cost.sum(), F)
    assert torch.isfinite(g).all()
    for name in ("contact_x", "contact_y", "contact_z", "amplitude", "log_frequency", "pulse_width"):
        assert g[:, IX[name]].abs().sum() > 0, name


def test_objective_reads_heads_only_for_their_bands(tiny):
    m = _model(tiny)
    sur = _surrogate(m)
    ctx = torch.randn(4, 300) * 10
    F = torch.rand(3, N_FEATURES)
    fc = sur.predict(ctx, F)
    # at initialisation the head predicts "power as in the context": the cost is the context's beta power (µV²/Hz)
    ctx_beta = band_power(ctx[None, :, -100:], sur.fs, BETA).item()
    head = BandPowerObjective(BETA, sur.fs)
    per_chan = log_band_power(ctx[:, -100:], sur.fs, [BETA])[:, 0]
    expect = math.log10(float((10 ** per_chan).mean()))
    assert torch.allclose(head(fc), torch.full((3,), expect), atol=1e-3)
    assert abs(expect - ctx_beta) < 1e-3  # mean over channels of the band power, as band_power
    signal_path = BandPowerObjective(BETA, sur.fs, use_heads=False)
    assert torch.allclose(signal_path(fc), band_power(fc.signal, sur.fs, BETA))
    assert not head.needs_signal(sur) and signal_path.needs_signal(sur)
    assert BandPowerObjective((12.0, 31.0), sur.fs).needs_signal(sur)  # no head for that band
    nat = BandPowerObjective(BETA, sur.fs, log_base=math.e)
    assert torch.allclose(nat(fc), head(fc) * math.log(10), atol=1e-5)


def test_surrogate_cost_skips_the_signal_and_draws_heads(tiny):
    m = _model(tiny)
    torch.nn.init.normal_(m.biomarker.out[-1].weight, std=0.3)
    sur = _surrogate(m)
    cost = SurrogateCost(sur, torch.randn(4, 300) * 10, BandPowerObjective(BETA, sur.fs))
    assert cost.signal is False
    mean, std = cost.predict(torch.rand(7, N_FEATURES, dtype=torch.float64))
    assert mean.shape == std.shape == (7,) and (std > 0).all() and torch.isfinite(mean).all()


def test_energy_penalized_objective_prefers_less_charge(tiny):
    m = _model(tiny)
    sur = _surrogate(m)
    space = StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))])
    lo = Stimulus.electrical(contact="c0", amplitude_ma=1.0, frequency_hz=60.0, pulse_width_us=60.0)
    hi = Stimulus.electrical(contact="c0", amplitude_ma=3.0, frequency_hz=130.0, pulse_width_us=90.0)
    F = space.to_features([lo, hi])
    fc = sur.predict(torch.randn(4, 300) * 10, F, signal=False)
    base = BandPowerObjective(BETA, sur.fs, log_base=math.e)
    pen = EnergyPenalized(base, 0.01)
    teed = teed_from_features(F)
    want = [s.amplitude_ma ** 2 * s.frequency_hz * s.pulse_width_us / 1000 for s in (lo, hi)]
    assert torch.allclose(teed, torch.tensor(want), rtol=1e-4)
    assert torch.allclose(pen(fc) - base(fc), 0.01 * teed, rtol=1e-4)
    with pytest.raises(Exception, match="energy weight"):
        EnergyPenalized(base, -1.0)


def _toy_series(n: int, seed: int) -> list[PatientSeries]:
    """A declared toy patient: a 20 Hz oscillation in noise that stimulation suppresses in
    proportion to its amplitude feature (gain 1 - 0.9 a): more amplitude, less beta."""
    rng = np.random.default_rng(seed)
    out = []
    fs, t = 250.0, 12_000
    for i in range(n):
        c = 3
        amps = rng.uniform(0.05, 1.0, 24)
        table = np.zeros((25, N_FEATURES), np.float32)
        table[1:, IX["on"]] = table[1:, IX["electrical"]] = 1.0
        table[1:, IX["amplitude"]] = amps
        ids = np.zeros(t, np.int32)
        for k in range(24):
            s = 2000 + k * 400
            ids[s:s + 250] = k + 1
        gain = 1.0 - 0.9 * table[ids, IX["amplitude"]]
        tt = np.arange(t) / fs
        phase = 2 * np.pi * 20 * tt + np.cumsum(rng.normal(0, 0.05, t))
        osc = 20 * gain * np.sin(phase)
        data = (osc[None] * rng.uniform(0.7, 1.3, (c, 1)) + rng.normal(0, 3, (c, t))).astype(np.float32)
        out.append(PatientSeries(data, rng.normal(0, 0.02, (c, 3)).astype(np.float32), ids, table, 2000, i, 0))
    return out


@pytest.mark.slow
def test_trained_head_agrees_in_sign_with_the_measured_change(tiny):
    """On the toy patient the answer is known (amplitude suppresses beta); a briefly trained head's
    band-power objective ranks high amplitude below low amplitude, as the measured trials do."""
    m = _model(tiny)
    series = _toy_series(4, seed=3)
    loss_cfg = LossConfig(masked=False, contrastive=False, biomarker_weight=2.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(150):
        b = sample_batch(series, 16, n_ctx=8, n_hor=4, patch_len=25, rng=rng, onset_frac=0.8)
        loss = compute_losses(m, b, loss_cfg, generator=gen)
        assert "biomarker" in loss and torch.isfinite(loss["total"])
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
    s = series[0]
    sur = Surrogate(m.eval(), positions=s.positions, patient=0)
    ctx = torch.as_tensor(s.data[:, 1000:1200])
    F = torch.zeros(2, N_FEATURES)
    F[:, IX["on"]] = F[:, IX["electrical"]] = 1.0
    F[:, IX["amplitude"]] = torch.tensor([0.1, 1.0])
    pred = BandPowerObjective(BETA, sur.fs)(sur.predict(ctx, F, signal=False))
    # measured: beta power of the response windows of the lowest- and highest-amplitude trials
    on = [(k, float(s.stim_table[k, IX["amplitude"]])) for k in range(1, 25)]
    k_lo, k_hi = min(on, key=lambda v: v[1])[0], max(on, key=lambda v: v[1])[0]
    meas = []
    for k in (k_lo, k_hi):
        st = int(np.flatnonzero(s.stim_ids == k)[0])
        meas.append(band_power(torch.as_tensor(s.data[None, :, st:st + 100]), 250.0, BETA).item())
    assert meas[1] < meas[0]
    assert pred[1] < pred[0], (pred.tolist(), meas)
