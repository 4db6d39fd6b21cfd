"""Self-supervised objectives of the BFM: multi-step forecast (MSE + spectral + Gaussian NLL),
masked modelling (time and whole-channel masks), contrastive alignment across patients, and the
alignment of inferred patient embeddings with the learned table. Each is switchable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.biomarker import log_band_power
from bfm_stim.model.data import Batch
from bfm_stim.model.response import response_targets

__all__ = ["LossConfig", "LossModule", "compute_losses", "spectral_loss", "supcon_loss", "gaussian_nll"]


@dataclass(frozen=True)
class LossConfig:
    """Which objectives to train and their weights.

    Attributes:
        forecast: multi-step forecast over the horizon (and one-step teacher-forced in the context).
        spectral_weight: weight of the log-magnitude spectrum term of the forecast.
        nll_weight: weight of the Gaussian NLL that trains the predicted variance.
        latent_weight: rolled-out latents match the encoder's latents of the true future.
        response_weight: the response head (models with one) matches the latents that
            ``Surrogate.latents`` reads from the true future alone (what latent objectives measure).
        biomarker_weight: the biomarker heads (models with them) match the log band power of the true
            future per channel and band (squared error plus ``nll_weight`` times the Gaussian NLL of
            their predicted log-variance).
        masked: masked modelling with ``time_mask_ratio`` patches and ``channel_mask_ratio`` channels hidden.
        contrastive: supervised-contrastive alignment of window latents across patients.
        temperature: InfoNCE temperature.
        embed_weight: inferred (rest-data) patient embedding regresses onto the table row.
        p_infer: probability a window uses the inferred embedding instead of the table row.
        bootstrap: per-head keep probability of each window (ensemble diversity).
    """

    forecast: bool = True
    forecast_weight: float = 1.0
    spectral_weight: float = 0.2
    nll_weight: float = 0.1
    latent_weight: float = 0.5
    response_weight: float = 0.5
    biomarker_weight: float = 0.5
    masked: bool = True
    masked_weight: float = 0.5
    time_mask_ratio: float = 0.15
    channel_mask_ratio: float = 0.2
    contrastive: bool = True
    contrastive_weight: float = 0.1
    temperature: float = 0.1
    embed_weight: float = 0.5
    p_infer: float = 0.5
    bootstrap: float = 0.8

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise ValidationError(f.name, v, "true or false")
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
                raise ValidationError(f.name, v, "a non-negative number")
        for name in ("time_mask_ratio", "channel_mask_ratio", "p_infer", "bootstrap"):
            if getattr(self, name) > 1:
                raise ValidationError(name, getattr(self, name), "a probability in [0, 1]")
        if self.temperature <= 0:
            raise ValidationError("temperature", self.temperature, "a positive number")
        if not (self.forecast or self.masked or self.contrastive):
            raise ConfigError("at least one of forecast, masked, contrastive must be enabled")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LossConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ConfigError(f"unknown loss keys {sorted(set(d) - known)}; allowed: {sorted(known)}")
        return cls(**d)


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor, patch_len: int) -> Tensor:
    """Per-element NLL with one log-variance per patch: mean (…, C, P*L), logvar (…, C, P) → (…, C, P*L)."""
    lv = logvar.repeat_interleave(patch_len, dim=-1)
    return 0.5 * (lv + (target - mean.detach()) ** 2 * torch.exp(-lv))


def spectral_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Log-magnitude spectrum mismatch over the last axis: (…, T) → (…,). Keeps oscillations from averaging away."""
    w = torch.hann_window(pred.shape[-1], dtype=pred.dtype, device=pred.device)
    ps = torch.log1p(torch.fft.rfft(pred * w).abs())
    ts = torch.log1p(torch.fft.rfft(target * w).abs())
    return ((ps - ts) ** 2).mean(-1)


def supcon_loss(emb: Tensor, labels: Tensor, owners: Tensor, temperature: float) -> Tensor:
    """Supervised InfoNCE: positives share a label and come from different owners (patients).

    Args: emb (B, D), labels (B,), owners (B,). Returns a scalar (0 when no anchor has a positive).
    """
    e = F.normalize(emb, dim=-1)
    sim = e @ e.T / temperature
    eye = torch.eye(len(e), dtype=torch.bool, device=e.device)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & (owners[:, None] != owners[None, :])
    has = pos.any(1)
    if not has.any():
        return emb.sum() * 0.0
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    per = -(logp * pos).sum(1) / pos.sum(1).clamp_min(1)
    return per[has].mean()


def _stim_kind(stim: Tensor, names: tuple[str, ...]) -> Tensor:
    """0 off, 1 electrical, 2 other stimulation, from per-patch features (B, P, F) → (B,)."""
    on = stim.abs().sum(-1).amax(1) > 0
    if "electrical" in names:
        el = stim[..., names.index("electrical")].amax(1) > 0
    else:
        el = torch.zeros_like(on)
    return torch.where(on, torch.where(el, 1, 2), 0)


def compute_losses(model: BrainFoundationModel, batch: Batch, cfg: LossConfig, *,
                   generator: torch.Generator | None = None,
                   patient_override: Tensor | None = None) -> dict[str, Tensor]:
    """All enabled losses for one batch; ``"total"`` is their weighted sum.

    Args:
        model: the BFM (wrap :class:`LossModule` in DDP for data-parallel training).
        batch: training windows; context statistics normalise each channel.
        cfg: switches and weights.
        generator: random source for masks, embedding choice and bootstrap weights.
        patient_override: (d_patient,) embedding used for every window (adaptation to one patient).

    Returns: dict of scalar losses (``masked``, ``forecast``, ``spectral``, ``nll``, ``latent``,
    ``response``, ``biomarker``, ``contrastive``, ``embed`` as enabled) and ``total``.
    """
    m = model
    mc = m.config
    L, ctx = mc.patch_len, batch.n_ctx
    b, c, t = batch.x.shape
    p = t // L
    hor = p - ctx
    dev = batch.x.device
    g = generator

    mean = batch.x[..., : ctx * L].mean(-1, keepdim=True)
    std = batch.x[..., : ctx * L].std(-1, keepdim=True).clamp_min(1e-3)
    x = (batch.x - mean) / std
    valid = batch.valid
    out: dict[str, Tensor] = {}
    total = x.new_zeros(())

    # Patient embedding: the table row, or (sometimes / always without a table) the rest encoder's.
    known = batch.patient >= 0
    if patient_override is not None:
        e = patient_override.reshape(1, -1).expand(b, -1)
    elif mc.n_train_patients > 0 and known.any():
        e_inf = m.infer_patient(batch.rest, batch.positions, valid)
        e_tab = m.patient_table(batch.patient.clamp_min(0))
        out["embed"] = ((e_inf - e_tab.detach()) ** 2).mean(1)[known].mean()
        total = total + cfg.embed_weight * out["embed"]
        use_inf = (torch.rand(b, generator=g, device=dev) < cfg.p_infer) | ~known
        e = torch.where(use_inf[:, None], e_inf, e_tab)
    else:
        e = m.infer_patient(batch.rest, batch.positions, valid)

    time_mask = chan_mask = None
    visible = valid
    if cfg.masked:
        time_mask = torch.rand(b, p, generator=g, device=dev) < cfg.time_mask_ratio
        time_mask[:, ctx - 1:] = False  # the forecast anchor and the future stay unmasked
        chan_mask = (torch.rand(b, c, generator=g, device=dev) < cfg.channel_mask_ratio) & valid
        keep_one = (valid & ~chan_mask).sum(1) == 0
        chan_mask[keep_one] = False
        visible = valid & ~chan_mask

    chan_emb = m.chan_embed(batch.positions)
    z = m.encode(x, batch.positions, batch.stim, e, visible=visible, time_mask=time_mask, chan_emb=chan_emb)
    vmask = valid[:, :, None].to(x.dtype)

    if cfg.masked:
        rec, rec_lv = m.decode(z, e, chan_emb=chan_emb)
        tm = time_mask[:, None, :].repeat_interleave(L, -1) if time_mask is not None else False
        cm = chan_mask[:, :, None]
        w = ((tm | cm) & valid[:, :, None]).to(x.dtype)
        err = (rec - x) ** 2 + cfg.nll_weight * gaussian_nll(rec, rec_lv, x, L)
        out["masked"] = (err * w).sum() / w.sum().clamp_min(1.0)
        total = total + cfg.masked_weight * out["masked"]

    if cfg.forecast and hor > 0:
        k = mc.n_ensemble
        keep = (torch.rand(k, b, generator=g, device=dev) < cfg.bootstrap).to(x.dtype)
        keep[:, 0] = 1.0
        # One-step teacher-forced predictions inside the context.
        z1 = m.dynamics(z[:, : ctx - 1].reshape(1, -1, mc.d_latent).expand(k, -1, -1),
                        m.stim_enc.code(batch.stim[:, 1:ctx]).reshape(-1, m.stim_enc.film.in_features),
                        e[:, None].expand(-1, ctx - 1, -1).reshape(-1, mc.d_patient))
        z1 = z1.reshape(k * b, ctx - 1, -1)
        ek = e.repeat(k, 1)
        one, _ = m.decode(z1, ek, chan_emb=chan_emb.repeat(k, 1, 1))
        tgt1 = x[..., L: ctx * L].repeat(k, 1, 1)
        err1 = ((one - tgt1) ** 2 * vmask.repeat(k, 1, 1)).mean((1, 2)).view(k, b)
        # Multi-step rollout over the horizon from the last context latent.
        zr = m.rollout(z[:, ctx - 1], batch.stim[:, ctx:], e)  # (K, B, H, D)
        pred, lv = m.decode(zr.reshape(k * b, hor, -1), ek, chan_emb=chan_emb.repeat(k, 1, 1))
        extra = m.future_terms(batch.stim[:, ctx:], e, chan_emb, batch.positions, batch.base, batch.t_on)
        if extra is not None:  # stimulus-locked response + linear forecast of the ongoing activity
            pred = pred + extra.repeat(k, 1, 1)
        tgt = x[..., ctx * L:].repeat(k, 1, 1)
        vk = vmask.repeat(k, 1, 1)
        mse = ((pred - tgt) ** 2 * vk).mean((1, 2)).view(k, b)
        spec = (spectral_loss(pred, tgt) * vk[..., 0]).mean(1).view(k, b)
        nll = (gaussian_nll(pred, lv, tgt, L) * vk).mean((1, 2)).view(k, b)
        lat = ((zr - z[None, :, ctx:].detach()) ** 2).mean((2, 3))
        resp = None
        if m.response is not None and cfg.response_weight > 0:
            tgt_r = response_targets(m, batch.x[..., ctx * L:], batch.positions, e.detach(), visible=valid,
                                     chan_emb=chan_emb.detach())
            r = m.response_latents(zr, batch.stim[:, ctx:], e, z[:, ctx - 1])
            resp = ((r - tgt_r[None]) ** 2).mean((2, 3))
        bio = None
        if m.biomarker is not None and cfg.biomarker_weight > 0:
            with torch.no_grad():
                lab = log_band_power(x[..., ctx * L:], mc.fs, mc.biomarker_bands)  # (B, C, NB)
            ctx_pow = m.context_power(x[..., : ctx * L])
            mu_b, lv_b = m.biomarkers(zr, batch.stim[:, ctx:], e, z[:, ctx - 1], chan_emb, batch.positions, ctx_pow)
            vb = valid[None, :, :, None].to(x.dtype)
            err_b = (mu_b - lab[None]) ** 2 + cfg.nll_weight * 0.5 * (lv_b + (lab[None] - mu_b.detach()) ** 2 * torch.exp(-lv_b))
            bio = (err_b * vb).sum((2, 3)) / (vb.sum((2, 3)) * lab.shape[-1]).clamp_min(1.0)  # (K, B)
        wsum = keep.sum().clamp_min(1.0)
        out["forecast"] = ((mse + 0.5 * err1) * keep).sum() / wsum
        out["spectral"] = (spec * keep).sum() / wsum
        out["nll"] = (nll * keep).sum() / wsum
        out["latent"] = (lat * keep).sum() / wsum
        total = total + cfg.forecast_weight * (out["forecast"] + cfg.spectral_weight * out["spectral"]
                                               + cfg.nll_weight * out["nll"] + cfg.latent_weight * out["latent"])
        if resp is not None:
            out["response"] = (resp * keep).sum() / wsum
            total = total + cfg.forecast_weight * cfg.response_weight * out["response"]
        if bio is not None:
            out["biomarker"] = (bio * keep).sum() / wsum
            total = total + cfg.forecast_weight * cfg.biomarker_weight * out["biomarker"]

    if cfg.contrastive:
        labels = batch.group * 3 + _stim_kind(batch.stim, mc.stim_feature_names)
        emb = m.contrast_head(z.mean(1))
        out["contrastive"] = supcon_loss(emb, labels, batch.patient, cfg.temperature)
        total = total + cfg.contrastive_weight * out["contrastive"]

    out["total"] = total
    return out


class LossModule(torch.nn.Module):
    """``forward(batch) → losses``: the unit that DDP wraps, so every parameter use is inside forward."""

    def __init__(self, model: BrainFoundationModel, cfg: LossConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return compute_losses(self.model, batch, self.cfg, generator=generator)
