"""The stimulus-locked head and the model's full forecast path (read-out + stimulus-locked + linear)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.model import BrainFoundationModel, ModelConfig
from bfm_stim.model.linear import fit_forecaster, linear_forecast
from bfm_stim.model.data import PatientSeries, patch_stimulus
from bfm_stim.model.stimlocked import SLOW_TAUS_S, frequency_hz
from bfm_stim.stim_features import FEATURE_NAMES, stimulus_features
from bfm_stim.surrogate import Surrogate

IX = {n: i for i, n in enumerate(FEATURE_NAMES)}
C, K, R = 5, 3, 2  # channels, harmonics, rank


def _config(tiny: dict) -> ModelConfig:
    return ModelConfig(**tiny, n_harmonics=K, stim_rank=R, stim_feature_names=FEATURE_NAMES, ar_lags=50)


@pytest.fixture
def model(tiny) -> BrainFoundationModel:
    torch.manual_seed(0)
    return BrainFoundationModel(_config(tiny)).eval()


NB = 2 * K + 1 + len(SLOW_TAUS_S)  # basis functions: K sines, K cosines, then 1 and the decays
SLOW = tuple(range(2 * K, NB))  # basis indices of the slow functions


def _harm(*ks: int) -> tuple[int, ...]:
    """Basis indices of the sine and cosine of the harmonics ``ks`` (1-based)."""
    return tuple(j for k in ks for j in (k - 1, K + k - 1))


def _perturb(model: BrainFoundationModel, keep: tuple[int, ...] | None = None, seed: int = 1) -> None:
    """Give the head's zero-initialised last layer random weights (only for the basis indices ``keep``, if given)."""
    lin = model.stim_locked.time_net[-1]
    assert lin.out_features == R * NB
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.5)
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.5)
        if keep is not None:  # output index r * NB + j: weight of basis function j in rank r
            mask = torch.zeros(R, NB, dtype=torch.bool)
            mask[:, list(keep)] = True
            lin.weight[~mask.reshape(-1)] = 0.0
            lin.bias[~mask.reshape(-1)] = 0.0


def _constant_a(model: BrainFoundationModel, seed: int = 4) -> None:
    """Make the patch coefficients A constant: last-layer weight zero, bias random."""
    lin = model.stim_locked.time_net[-1]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.5)


def _features(n: int = 1, *, freq: float = 20.0, on: float = 1.0, electrical: float = 1.0, visual: float = 0.0,
              amp: float = 2.0, contact_mm=(1.0, 2.0, 3.0)) -> torch.Tensor:
    def v(x):
        return torch.full((n,), float(x))

    return stimulus_features(on=v(on), electrical=v(electrical), contact_pos_mm=torch.tensor([contact_mm] * n),
                             amplitude_ma=v(amp), frequency_hz=v(freq), pulse_width_us=v(60.0), visual=v(visual),
                             auditory=v(0.0), level=v(visual))


def _inputs(model: BrainFoundationModel, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(1, C, 3, generator=g) * 0.02
    patient = model.patient_table.weight[1:2].detach()
    return patient, model.chan_embed(pos).detach(), pos


def _terms(model: BrainFoundationModel, feats: torch.Tensor, base: torch.Tensor | None = None,
           t_on: torch.Tensor | None = None) -> torch.Tensor:
    """Stimulus-locked (+ base) terms of features (N, F) held over the horizon, or (N, H, F) as given."""
    h = model.config.horizon_patches
    s = feats[:, None, :].expand(-1, h, -1) if feats.dim() == 2 else feats
    patient, chan_emb, pos = _inputs(model)
    return model.future_terms(s, patient, chan_emb, pos, base, t_on)


def _harmonic_fns(*fs: float):
    return [fn for f in fs for fn in (lambda t, f=f: torch.sin(2 * math.pi * f * t),
                                      lambda t, f=f: torch.cos(2 * math.pi * f * t))]


SLOW_FNS = [lambda t: torch.ones_like(t)] + [lambda t, tau=tau: torch.exp(-t / tau) for tau in SLOW_TAUS_S]


def _span_residual(y: torch.Tensor, fns, t: torch.Tensor) -> float:
    """Relative least-squares residual of y (M, L) in span{fn(t) for fn in fns} (t (L,) s)."""
    t = t.double()
    basis = torch.stack([fn(t) for fn in fns], 1)
    yy = y.double().T  # (L, M)
    coef = torch.linalg.lstsq(basis, yy).solution
    return float((basis @ coef - yy).norm() / yy.norm())


# ------------------------------------------------------------------------------- the head
def test_frequency_feature_round_trip():
    hz = torch.tensor([0.0, 1.0, 20.0, 130.0, 250.0])
    logf = stimulus_features(on=torch.ones(5), electrical=torch.ones(5), contact_pos_mm=torch.zeros(5, 3),
                             amplitude_ma=torch.ones(5), frequency_hz=hz, pulse_width_us=torch.ones(5),
                             visual=torch.zeros(5), auditory=torch.zeros(5), level=torch.zeros(5))
    torch.testing.assert_close(frequency_hz(logf[:, IX["log_frequency"]]), hz, rtol=1e-5, atol=1e-4)


def test_head_is_zero_at_init(model):
    assert model.stim_locked is not None
    cfg = model.config
    g = torch.Generator().manual_seed(3)
    feats = torch.cat([_features(2), _features(1, freq=7.0, electrical=0.0, visual=1.0),
                       torch.rand(3, len(FEATURE_NAMES), generator=g)])
    out = _terms(model, feats)
    assert out.shape == (6, C, cfg.horizon_patches * cfg.patch_len)
    assert torch.equal(out, torch.zeros_like(out))
    # with a base, future_terms is then exactly the base
    base = torch.randn(1, C, cfg.horizon_patches * cfg.patch_len, generator=g)
    assert torch.equal(_terms(model, feats, base), base.expand(6, -1, -1))


def test_model_without_harmonics_has_no_head(tiny):
    m = BrainFoundationModel(ModelConfig(**tiny))
    assert m.stim_locked is None
    s = torch.zeros(2, m.config.horizon_patches, len(FEATURE_NAMES))
    pos = torch.zeros(1, C, 3)
    assert m.future_terms(s, torch.tensor([0]), m.chan_embed(pos), pos) is None


def _patch_times(cfg: ModelConfig, p: int) -> torch.Tensor:
    """Seconds since an onset at the horizon start, over patch ``p``."""
    return (p * cfg.patch_len + torch.arange(cfg.patch_len)) / cfg.fs


def test_perturbed_head_is_zero_when_off_and_responds_to_stimulation(model):
    cfg = model.config
    L, n = cfg.patch_len, cfg.horizon_patches * cfg.patch_len
    _perturb(model)
    off = _terms(model, torch.zeros(2, len(FEATURE_NAMES)))
    assert torch.equal(off, torch.zeros_like(off))
    el = _terms(model, _features(3))
    assert el.shape == (3, C, n)
    assert torch.isfinite(el).all() and el.abs().min(-1).values.max() > 0 and el.abs().max() > 1e-3
    # a sensory flicker at the same rate also drives it
    assert _terms(model, _features(1, electrical=0.0, visual=1.0)).abs().max() > 1e-3
    # every harmonic of 200 Hz is above 0.45 fs = 112.5 Hz: with only the harmonics' weights live, nothing is left
    _perturb(model, keep=_harm(*range(1, K + 1)))
    hi = _terms(model, _features(2, freq=200.0))
    assert torch.equal(hi, torch.zeros_like(hi))
    # with every weight live, 200 Hz leaves the slow functions only: the slow-only output, in their span
    _perturb(model)
    hi = _terms(model, _features(2, freq=200.0)).detach()
    assert hi.abs().max() > 1e-3
    _perturb(model, keep=SLOW)
    torch.testing.assert_close(hi, _terms(model, _features(2, freq=200.0)).detach(), rtol=0, atol=1e-7)
    _perturb(model)
    at20 = _terms(model, _features(1, freq=20.0)).detach()[0]
    for p in range(cfg.horizon_patches):
        t = _patch_times(cfg, p)
        assert _span_residual(hi[:, :, p * L:(p + 1) * L].reshape(-1, L), SLOW_FNS, t) < 1e-5
        # a 20 Hz stimulus is not in that span: the check can fail
        assert _span_residual(at20[:, p * L:(p + 1) * L], SLOW_FNS, t) > 0.05


def test_harmonics_above_the_limit_are_masked(model):
    _perturb(model, keep=_harm(3))  # only the third harmonic's weights are non-zero
    assert _terms(model, _features(1, freq=50.0)).abs().max() == 0  # 150 Hz >= 112.5 Hz
    assert _terms(model, _features(1, freq=38.0)).abs().max() == 0  # 114 Hz, just above
    assert _terms(model, _features(1, freq=37.0)).abs().max() > 1e-3  # 111 Hz, just below: kept
    assert _terms(model, _features(1, freq=20.0)).abs().max() > 1e-3  # 60 Hz < 112.5 Hz
    # the slow functions are not masked by the rate
    _perturb(model, keep=SLOW)
    assert _terms(model, _features(1, freq=250.0)).abs().max() > 1e-3


def test_each_patch_oscillates_at_the_harmonic(model):
    cfg = model.config
    L = cfg.patch_len
    f = 17.0
    for k in (1, 2):
        _perturb(model, keep=_harm(k))
        y = _terms(model, _features(1, freq=f)).detach()[0]  # (C, H * L)
        for p in range(cfg.horizon_patches):
            t = _patch_times(cfg, p)
            seg = y[:, p * L:(p + 1) * L]
            assert _span_residual(seg, _harmonic_fns(k * f), t) < 1e-4
            assert _span_residual(seg, _harmonic_fns((k + 1.5) * f), t) > 0.05  # the check can tell rates apart
    # every weight live: each patch is in span{sin, cos 2π k f t : k f < 0.45 fs} ∪ {1, exp(-t/τ)}, and needs both
    _perturb(model)
    for f, kept in ((17.0, (1, 2, 3)), (50.0, (1, 2))):  # 150 Hz is above 112.5 Hz
        y = _terms(model, _features(1, freq=f)).detach()[0]
        for p in range(cfg.horizon_patches):
            t = _patch_times(cfg, p)
            seg = y[:, p * L:(p + 1) * L]
            harm = _harmonic_fns(*(k * f for k in kept))
            assert _span_residual(seg, harm + SLOW_FNS, t) < 1e-4, (f, p)
            assert _span_residual(seg, harm, t) > 0.05, (f, p)  # the slow part is there
            assert _span_residual(seg, _harmonic_fns(*(k * 1.3 * f for k in kept)) + SLOW_FNS, t) > 0.05, (f, p)


def test_phase_is_exact_given_the_time_since_onset(model):
    """An onset d samples into the first horizon patch shifts the response by exactly d samples."""
    cfg = model.config
    L, n = cfg.patch_len, cfg.horizon_patches * cfg.patch_len
    _constant_a(model)  # A the same in every patch, so only the basis' time reference matters
    table = np.vstack([np.zeros(len(FEATURE_NAMES)), _features(1, freq=17.0).numpy()]).astype(np.float32)

    def stim_and_t_on(delay: int):
        ids = np.zeros(n, np.int32)
        ids[delay:] = 1
        s = PatientSeries(np.zeros((C, n), np.float32), np.zeros((C, 3), np.float32), ids, table, 0)
        return torch.from_numpy(patch_stimulus(ids, table, L))[None], torch.from_numpy(s.samples_since_onset())[None]

    s0, t0 = stim_and_t_on(0)
    assert torch.equal(t0[0], torch.arange(n, dtype=torch.float32))
    y0 = _terms(model, s0, t_on=t0).detach()
    torch.testing.assert_close(_terms(model, s0).detach(), y0, rtol=0, atol=0)  # the default: onset at the start
    assert y0[..., :L].abs().max() > 1e-2
    for d in (1, 9, L - 1):
        sd, td = stim_and_t_on(d)
        assert torch.equal(td[0, :d], torch.full((d,), -1.0))
        assert torch.equal(td[0, d:], torch.arange(n - d, dtype=torch.float32))
        yd = _terms(model, sd, t_on=td).detach()
        assert torch.equal(yd[..., :d], torch.zeros_like(yd[..., :d]))
        torch.testing.assert_close(yd[..., d:], y0[..., :n - d], rtol=0, atol=1e-6)
        # without t_on the head assumes the onset at the patch start: the undelayed response, off by d samples
        default = _terms(model, sd).detach()
        torch.testing.assert_close(default, y0, rtol=0, atol=1e-6)
        assert (default - yd).abs().max() > 1e-2


def test_stimulus_switching_off_zeroes_the_following_patches(model):
    cfg = model.config
    h, L = cfg.horizon_patches, cfg.patch_len
    _perturb(model)
    s = _features(1)[:, None, :].repeat(1, h, 1)
    s[:, 2:] = 0.0  # on for two patches, then off
    y = _terms(model, s).detach()
    assert y[..., : 2 * L].abs().max() > 1e-3
    assert torch.equal(y[..., 2 * L:], torch.zeros_like(y[..., 2 * L:]))


def test_gradients_reach_amplitude_frequency_and_contact(model):
    _perturb(model)
    feats = _features(2, freq=23.0).clone().requires_grad_(True)
    w = torch.randn(2, C, model.config.horizon_patches * model.config.patch_len,
                    generator=torch.Generator().manual_seed(5))
    (_terms(model, feats) * w).sum().backward()
    gr = feats.grad
    assert torch.isfinite(gr).all()
    for name in ("amplitude", "log_frequency", "contact_x"):
        assert (gr[:, IX[name]].abs() > 1e-6).all(), (name, gr[:, IX[name]])


# ------------------------------------------------------------------------------- the full forecast path
def _surrogate_inputs(seed: int = 0):
    g = np.random.default_rng(seed)
    pos = (g.normal(size=(C, 3)) * 0.02).astype(np.float32)
    rest = np.cumsum(g.normal(size=(C, 3000)), 1).astype(np.float32) * 3.0 + 50.0
    ctx = torch.from_numpy(rest[:, -400:].copy())  # longer than the model uses: the last 300 samples count
    return pos, rest, ctx


def _normalised_context(sur: Surrogate, ctx: torch.Tensor):
    cfg = sur.cfg
    n = (cfg.max_patches - cfg.horizon_patches) * cfg.patch_len
    x = ctx[:, -n:]
    mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True).clamp_min(1e-3)
    return (x - mean) / std, mean, std


def test_surrogate_needs_a_forecaster_of_the_right_shape(model):
    cfg = model.config
    pos, rest, _ = _surrogate_inputs()
    patient = model.patient_table.weight[0].detach()
    with pytest.raises(ValidationError, match="forecaster"):
        Surrogate(model, positions=pos, patient=patient)
    need = cfg.horizon_patches * cfg.patch_len
    short = fit_forecaster(rest, lags=cfg.ar_lags, horizon=need - 1)
    with pytest.raises(ValidationError, match=f">= {need}"):
        Surrogate(model, positions=pos, patient=patient, forecaster=short)
    wrong_lags = fit_forecaster(rest, lags=cfg.ar_lags - 1, horizon=need)
    with pytest.raises(ValidationError, match="forecaster"):
        Surrogate(model, positions=pos, patient=patient, forecaster=wrong_lags)
    longer = fit_forecaster(rest, lags=cfg.ar_lags, horizon=need + 7)  # cut to the horizon
    sur = Surrogate(model, positions=pos, patient=patient, forecaster=longer)
    assert sur.forecaster.shape == (1, C, cfg.ar_lags, need)


def test_surrogate_forecast_is_readout_plus_stim_locked_plus_linear(model):
    cfg = model.config
    L, h = cfg.patch_len, cfg.horizon_patches
    _perturb(model)
    pos, rest, ctx = _surrogate_inputs()
    patient = model.patient_table.weight[2].detach()
    fc = fit_forecaster(rest, lags=cfg.ar_lags, horizon=h * L)
    sur = Surrogate(model, positions=pos, patient=patient, forecaster=fc)
    feats = torch.cat([torch.zeros(1, len(FEATURE_NAMES)), _features(2, freq=31.0)])
    with torch.no_grad():
        pred = sur.predict(ctx, feats)
        assert pred.signal.shape == (3, C, h * L) and torch.isfinite(pred.signal).all()
        assert torch.isfinite(pred.signal_std).all()
        # by hand: read-out of the ensemble-mean rollout + stimulus-locked head + linear forecast
        xn, mean, std = _normalised_context(sur, ctx)
        p = torch.from_numpy(pos)[None]
        z = model.encode(xn[None], p, torch.zeros(1, xn.shape[1] // L, len(FEATURE_NAMES)), patient[None])[0]
        s = feats[:, None, :].expand(-1, h, -1)
        zk = model.rollout(z[-1][None].expand(3, -1), s, patient[None].expand(3, -1))
        mu, _ = model.decode(zk.mean(0), patient[None], p)
        base = linear_forecast(xn, torch.from_numpy(fc))  # (C, H * L)
        locked = model.stim_locked(s, model.stim_enc.code, patient[None], model.chan_embed(p), p)
    assert torch.equal(locked[0], torch.zeros_like(locked[0])) and locked[1:].abs().max() > 1e-3
    expected = (mu + locked + base) * std + mean
    torch.testing.assert_close(pred.signal, expected, rtol=1e-4, atol=1e-3)
    # the linear part matters: without it the prediction is different
    assert ((mu + locked) * std + mean - pred.signal).abs().max() > 1e-2


def test_changing_the_forecaster_shifts_the_signal_by_the_linear_forecast(model):
    cfg = model.config
    L, h = cfg.patch_len, cfg.horizon_patches
    _perturb(model)
    pos, rest, ctx = _surrogate_inputs(1)
    patient = model.patient_table.weight[3].detach()
    fc1 = fit_forecaster(rest, lags=cfg.ar_lags, horizon=h * L)
    fc2 = fc1 + np.random.default_rng(2).normal(0, 0.05, fc1.shape).astype(np.float32)
    feats = torch.cat([torch.zeros(1, len(FEATURE_NAMES)), _features(1, freq=9.0)])
    s1 = Surrogate(model, positions=pos, patient=patient, forecaster=fc1).predict(ctx, feats)
    s2 = Surrogate(model, positions=pos, patient=patient, forecaster=fc2).predict(ctx, feats)
    xn, _, std = _normalised_context(Surrogate(model, positions=pos, patient=patient, forecaster=fc1), ctx)
    delta = (linear_forecast(xn, torch.from_numpy(fc2)) - linear_forecast(xn, torch.from_numpy(fc1))) * std
    assert delta.abs().max() > 1e-2
    torch.testing.assert_close(s2.signal - s1.signal, delta.expand(2, -1, -1), rtol=1e-4, atol=1e-3)
    # the latents and the uncertainty do not depend on the forecaster
    torch.testing.assert_close(s2.z, s1.z)
    torch.testing.assert_close(s2.signal_std, s1.signal_std)
    # latent-only predictions skip the signal (and the linear path) entirely
    sur = Surrogate(model, positions=pos, patient=patient, forecaster=fc1)
    assert sur.predict(ctx, feats, signal=False).signal is None


def test_default_onset_count_restarts_after_an_off_patch(model):
    """on, on, off, on: the second stimulus starts at 0 samples since onset (not 3 patches)."""
    head, L = model.stim_locked, model.config.patch_len
    on = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    t = head._time_since_onset(on).view(4, L)
    assert torch.equal(t[0], torch.arange(L, dtype=t.dtype)) and torch.equal(t[1], L + torch.arange(L, dtype=t.dtype))
    assert (t[2] == -1).all() and torch.equal(t[3], torch.arange(L, dtype=t.dtype))
