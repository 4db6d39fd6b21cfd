"""The stimulus-locked head's fast forward (per-patch phases, first layers by parts) against the
direct formulation: the full (N, H, L, n_basis) basis and the nets on concatenated inputs."""

from __future__ import annotations

import math

import pytest
import torch

from bfm_stim.model import load_checkpoint
from bfm_stim.model.stimlocked import SLOW_TAUS_S, StimLockedHead, frequency_hz
from bfm_stim.stim_features import FEATURE_NAMES, stimulus_features
from bfm_stim.surrogate import default_checkpoint

C, N = 7, 24


@pytest.fixture(scope="module")
def shipped():
    """The shipped model (its head has trained, non-zero weights), float64."""
    model, _ = load_checkpoint(default_checkpoint())
    return model.double().eval()


def _reference_t_on(head: StimLockedHead, on: torch.Tensor) -> torch.Tensor:
    """The default time since onset, patch by patch (an onset after an off patch restarts the count at 0)."""
    count, out = torch.zeros(on.shape[0], dtype=on.dtype), []
    for p in range(on.shape[1]):
        out.append(count.clone())
        count = torch.where(on[:, p] > 0, count + 1, torch.zeros_like(count))
    t = (torch.stack(out, 1) * head.L)[..., None] + torch.arange(head.L, dtype=on.dtype)
    return torch.where((on > 0)[..., None], t, torch.full_like(t, -1.0)).reshape(on.shape[0], -1)


def _reference(head: StimLockedHead, stim, code_fn, patient, chan_emb, positions, t_on=None) -> torch.Tensor:
    """The head's output written out directly: nets on concatenated inputs, the full basis."""
    n, h, _ = stim.shape
    L = head.L
    on = stim[..., head.i_on]
    t_on = (_reference_t_on(head, on.detach()) if t_on is None else t_on).to(stim.dtype)
    first = on.detach().argmax(1)
    rows = torch.arange(n)
    sel = stim[rows, first] / on[rows, first].clamp_min(1e-3)[:, None]
    any_on = (on > 0).any(1).to(stim.dtype)
    tp = t_on.view(n, h, L)[..., L // 2].clamp_min(0.0) / head.fs
    pe = patient.reshape(-1, patient.shape[-1]).expand(n, -1)
    a_in = torch.cat([code_fn(sel)[:, None].expand(-1, h, -1), pe[:, None].expand(-1, h, -1), tp[..., None],
                      (-4.0 * tp[..., None]).exp()], -1)
    A = head.time_net(a_in).view(n, h, head.R, head.n_basis)
    f = frequency_hz(sel[:, head.i_freq].clamp(0.0, 1.0))
    k = torch.arange(1, head.K + 1, dtype=stim.dtype)
    t = (t_on.clamp_min(0.0) / head.fs).view(n, h, L)
    ph = 2 * math.pi * f[:, None, None, None] * k * t[..., None]
    keep = ((k * f[:, None]) < 0.45 * head.fs).to(stim.dtype) * any_on[:, None]
    live = (t_on.view(n, h, L) >= 0).to(stim.dtype)[..., None]
    slow = torch.stack([torch.ones_like(t)] + [(-t / tau).exp() for tau in SLOW_TAUS_S], -1)
    basis = torch.cat([ph.sin() * keep[:, None, None], ph.cos() * keep[:, None, None],
                       slow * any_on[:, None, None, None]], -1) * live
    U = torch.einsum("nhrk,nhlk->nrhl", A, basis).reshape(n, head.R, h * L)
    d = (torch.nan_to_num(positions, nan=0.0) - sel[:, None, head.i_contact] * 0.01) / 0.01
    el = sel[:, head.i_el].reshape(n, 1, 1).expand(n, C, 1)
    ce = chan_emb.expand(n, -1, -1)
    B = head.space_net(torch.cat([ce, pe[:, None].expand(n, C, -1), d.clamp(-5, 5),
                                  1.0 / (1.0 + d.norm(dim=-1, keepdim=True)), el], -1))
    return torch.bmm(B, U)


def _inputs(model, seed: int = 0):
    """Features of N stimuli (electrical and visual, rates 1-250 Hz) and a montage with one unknown position."""
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(N, generator=g, dtype=torch.float64)  # noqa: E731
    el = (torch.rand(N, generator=g) < 0.6).double()
    feats = stimulus_features(on=torch.ones(N), electrical=el, contact_pos_mm=torch.randn(N, 3, generator=g) * 20,
                              amplitude_ma=u(0, 5) * el, frequency_hz=u(1, 250), pulse_width_us=u(30, 200) * el,
                              visual=1 - el, auditory=torch.zeros(N), level=(1 - el) * u(0, 1)).double()
    pos = torch.randn(1, C, 3, generator=g, dtype=torch.float64) * 0.02
    chan_emb = model.chan_embed(pos).detach()
    pos[0, -1] = float("nan")
    return feats, model.patient_table.weight[1:2].detach(), chan_emb, pos, g


def _stimuli(feats: torch.Tensor, h: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-patch features: held, partly covered patches, on-off-on gaps, and some candidates off."""
    frac = torch.rand(N, h, generator=g, dtype=torch.float64)
    frac = torch.where(frac < 0.3, 0.0, torch.where(frac > 0.6, 1.0, frac))
    held = feats[:, None].expand(-1, h, -1)
    mixed = held.clone()
    mixed[::3] = 0.0
    return {"held": held, "partial": feats[:, None] * frac[..., None], "mixed_off": mixed}


def test_head_matches_the_direct_formulation(shipped):
    head, h = shipped.stim_locked, shipped.config.horizon_patches
    L = head.L
    feats, patient, chan_emb, pos, g = _inputs(shipped)
    code = shipped.stim_enc.code
    delay = torch.randint(0, h * L, (N,), generator=g)
    t_mid_patch = torch.arange(h * L)[None] - delay[:, None]  # onsets within a patch: the per-patch form, masked
    t_mid_patch = torch.where(t_mid_patch >= 0, t_mid_patch, -1).double()
    t_any = torch.randint(-1, 300, (N, h * L), generator=g).double()  # not per patch: the full basis
    with torch.no_grad():
        for name, stim in _stimuli(feats, h, g).items():
            for t_on in (None, t_mid_patch, t_any):
                ref = _reference(head, stim, code, patient, chan_emb, pos, t_on)
                got = head(stim, code, patient, chan_emb, pos, t_on)
                assert ref.abs().max() > 0.1, name
                torch.testing.assert_close(got, ref, rtol=0, atol=1e-9 * float(ref.abs().max()), msg=name)
        # per-candidate patient and channel embeddings
        stim = _stimuli(feats, h, g)["partial"]
        got = head(stim, code, patient.expand(N, -1), chan_emb.expand(N, -1, -1), pos.expand(N, -1, -1))
        torch.testing.assert_close(got, _reference(head, stim, code, patient, chan_emb, pos), rtol=0, atol=1e-9)


def test_float32_matches_the_direct_formulation_to_rounding():
    model, _ = load_checkpoint(default_checkpoint())
    head, h = model.stim_locked, model.config.horizon_patches
    feats, patient, chan_emb, pos, g = _inputs(model.double())
    model.float()
    with torch.no_grad():
        for name, stim in _stimuli(feats, h, g).items():
            args = (stim.float(), model.stim_enc.code, patient.float(), chan_emb.float(), pos.float())
            ref, got = _reference(head, *args), head(*args)
            assert (got - ref).abs().max() < 1e-4, name


def test_default_onsets_are_the_explicit_ones(shipped):
    head, h = shipped.stim_locked, shipped.config.horizon_patches
    on = torch.tensor([[1.0] * h, [0.0] * h, [0.0, 1.0] + [0.5] * (h - 2), [1.0, 0.0, 0.0, 1.0, 1.0] + [0.0] * (h - 5)],
                      dtype=torch.float64)
    torch.testing.assert_close(head._time_since_onset(on), _reference_t_on(head, on), rtol=0, atol=0)
    feats, patient, chan_emb, pos, _ = _inputs(shipped)
    stim = feats[: len(on), None] * on[..., None]
    with torch.no_grad():
        default = head(stim, shipped.stim_enc.code, patient, chan_emb, pos)
        explicit = head(stim, shipped.stim_enc.code, patient, chan_emb, pos, head._time_since_onset(on))
    assert torch.equal(default, explicit) and default[0].abs().max() > 0.1
    assert torch.equal(default[1], torch.zeros_like(default[1]))


def test_gradients_match_the_direct_formulation(shipped):
    head, h = shipped.stim_locked, shipped.config.horizon_patches
    feats, patient, chan_emb, pos, g = _inputs(shipped)
    stim = _stimuli(feats, h, g)["partial"].clone().requires_grad_(True)
    w = torch.randn(N, C, h * head.L, generator=g, dtype=torch.float64)
    params = list(head.parameters())
    got = torch.autograd.grad((head(stim, shipped.stim_enc.code, patient, chan_emb, pos) * w).sum(), [stim] + params)
    ref = torch.autograd.grad((_reference(head, stim, shipped.stim_enc.code, patient, chan_emb, pos) * w).sum(),
                              [stim] + params)
    acting = (stim[..., FEATURE_NAMES.index("on")] > 0).any(1)
    cols = [FEATURE_NAMES.index(n) for n in ("amplitude", "log_frequency", "contact_x")]
    assert acting.sum() > N // 2 and (ref[0].sum(1)[acting][:, cols].abs() > 0).all()
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))
