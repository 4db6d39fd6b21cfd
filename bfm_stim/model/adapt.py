"""Adapting the pretrained BFM to a new patient.

Three levels, from the cheapest:
- ``"zero_shot"``: the patient embedding is inferred from ~30 s of stimulation-off data;
- ``"embedding"``: the embedding plus the read-in/read-out (electrode) layers are tuned on seconds
  to minutes of the patient's data;
- ``"full"``: every weight is fine-tuned along with the embedding.
The pretrained model is never modified; :func:`adapt` returns a tuned copy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.data import Batch, PatientSeries, sample_batch
from bfm_stim.model.losses import LossConfig, compute_losses

__all__ = ["MODES", "AdaptResult", "infer_embedding", "adapt", "forecast_error"]

log = get_logger("adapt")
MODES = ("zero_shot", "embedding", "full")
_IO_MODULES = ("chan_embed", "read_in", "read_out", "stim_locked", "response")


@torch.no_grad()
def infer_embedding(model: BrainFoundationModel, rest: Tensor | np.ndarray, positions: Tensor | np.ndarray, *,
                    window_patches: int | None = None) -> Tensor:
    """Zero-shot patient embedding: the rest encoder averaged over windows of stimulation-off data.

    Args:
        model: the pretrained BFM.
        rest: (C, T) stimulation-off signal, µV at ``model.config.fs`` (30 s is plenty).
        positions: (C, 3) electrode positions, m.
        window_patches: window length in patches (default ``max_patches - horizon_patches``).

    Returns: (d_patient,) embedding.
    """
    cfg = model.config
    x = torch.as_tensor(np.asarray(rest), dtype=torch.float32)
    pos = torch.as_tensor(np.asarray(positions), dtype=torch.float32)
    if x.dim() != 2 or pos.shape != (x.shape[0], 3):
        raise ValidationError("rest", (tuple(x.shape), tuple(pos.shape)), "rest (C, T) and positions (C, 3)")
    w = (window_patches or max(2, cfg.max_patches - cfg.horizon_patches)) * cfg.patch_len
    n = x.shape[1] // w
    if n == 0:
        raise ValidationError("rest", tuple(x.shape), f"at least {w} samples ({w / cfg.fs:.1f} s at {cfg.fs} Hz)")
    wins = x[:, : n * w].reshape(x.shape[0], n, w).permute(1, 0, 2)
    was = model.training
    model.eval()
    e = model.infer_patient(wins, pos[None].expand(n, -1, -1)).mean(0)
    model.train(was)
    return e


@dataclass
class AdaptResult:
    """A model tuned to one patient.

    Attributes:
        model: the adapted copy (the pretrained model is untouched).
        embedding: (d_patient,) the patient's embedding.
        mode: which adaptation ran.
        forecaster: (C, ar_lags, H) the patient's linear forecaster (None when the model has no linear path).
        losses: total loss per step.
    """

    model: BrainFoundationModel
    embedding: Tensor
    mode: str
    losses: list[float] = field(default_factory=list)
    forecaster: np.ndarray | None = None


def adapt(model: BrainFoundationModel, series: PatientSeries | list[PatientSeries], *, mode: str = "embedding",
          steps: int = 100, lr: float = 3e-3, batch_size: int = 16, n_ctx: int | None = None,
          loss: LossConfig | None = None, seed: int = 0, max_channels: int = 0,
          patient_init: Tensor | None = None, anchor: float = 0.0, tune_weights: bool = True) -> AdaptResult:
    """Adapt the model to a new patient.

    Args:
        model: pretrained BFM (not modified).
        series: the patient's data at the model rate; its first ``rest_samples`` are stimulation-off.
        mode: ``"zero_shot"``, ``"embedding"`` (embedding + read-in/out) or ``"full"``.
        steps: optimiser steps (ignored for zero-shot).
        lr: learning rate.
        batch_size: windows per step.
        n_ctx: context patches (default ``max_patches - horizon_patches``).
        loss: objectives (default: forecast, NLL and latent terms only; one patient).
        seed: random seed for windows and masks. Dropout draws from torch's global generator: seed
            it too (``torch.manual_seed``) for a result that does not depend on what ran before;
            ``bfm-stim adapt`` does so from its ``--seed``.
        max_channels: random channel subset per training window (0: all; faster steps).
        patient_init: starting embedding (default: inferred zero-shot from the rest data).
        anchor: pull towards the starting point, 1/unit: after each optimiser step every tuned value
            ``p`` moves by ``-lr * anchor * (p - p_start)`` (decoupled, as AdamW's weight decay, but
            towards the pretrained weights and zero-shot embedding instead of zero). With Adam's
            steps of about ``lr`` this bounds each value's drift near ``1 / anchor``; 0: none. It
            keeps a few seconds of probes from undoing what pretraining learnt
            (``bench/adapt_tuning_*.json``: settings with ``+a``).
        tune_weights: False leaves every network weight as pretrained and tunes the embedding alone.

    Returns: :class:`AdaptResult`.
    """
    if mode not in MODES:
        raise ValidationError("mode", mode, f"one of {MODES}")
    if not (math.isfinite(anchor) and anchor >= 0):
        raise ValidationError("anchor", anchor, ">= 0 (1/unit; 0: no pull towards the pretrained weights)")
    if mode != "zero_shot" and lr * anchor >= 1:
        raise ValidationError("anchor", anchor, f"< 1 / lr = {1 / lr:g} (larger overshoots the pretrained weights)")
    ser = [series] if isinstance(series, PatientSeries) else list(series)
    if not ser:
        raise ValidationError("series", ser, "at least one PatientSeries")
    s0 = ser[0]
    cfg = model.config
    e0 = patient_init if patient_init is not None else infer_embedding(model, s0.data[:, : s0.rest_samples], s0.positions)
    tuned = copy.deepcopy(model)
    fc = None
    if cfg.ar_lags:  # closed form, from the stimulation-off stretches of the adaptation data
        for s in ser:
            s.with_forecaster(cfg.ar_lags, cfg.horizon_patches * cfg.patch_len, cfg.fs)
        fc = s0.forecaster
    if mode == "zero_shot":
        return AdaptResult(tuned.eval(), e0, mode, forecaster=fc)
    n_ctx = n_ctx or max(2, cfg.max_patches - cfg.horizon_patches)
    # one patient: forecast objectives only (no contrastive, masked or spectral terms), which is
    # what the surrogate is used for; measured to adapt faster than the pretraining mix
    loss = loss or LossConfig(contrastive=False, masked=False, spectral_weight=0.0, embed_weight=0.0, p_infer=0.0)
    emb = torch.nn.Parameter(e0.clone())
    for name, p in tuned.named_parameters():
        p.requires_grad_(tune_weights and (mode == "full" or name.split(".")[0] in _IO_MODULES))
    params = [emb] + [p for p in tuned.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params] if anchor else []
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, foreach=True)  # one fused update, not per tensor
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    tuned.train()
    hist = []
    for _ in range(steps):
        batch = sample_batch(ser, batch_size, n_ctx=n_ctx, n_hor=cfg.horizon_patches, patch_len=cfg.patch_len,
                             rng=rng, rest_patches=min(n_ctx, s0.rest_samples // cfg.patch_len),
                             max_channels=max_channels)
        out = compute_losses(tuned, batch, loss, generator=gen, patient_override=emb)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if anchor:
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.sub_(p - p0, alpha=lr * anchor)
        hist.append(float(out["total"].detach()))
    for p in tuned.parameters():
        p.requires_grad_(True)
    log.info("adapted (%s%s) in %d steps: loss %.4f -> %.4f", mode, f", anchor {anchor:g}" if anchor else "", steps,
             hist[0], hist[-1])
    return AdaptResult(tuned.eval(), emb.detach().clone(), mode, hist, fc)


@torch.no_grad()
def forecast_error(model: BrainFoundationModel, batch: Batch, embedding: Tensor) -> float:
    """Mean squared forecast error over the horizon, in context-normalised units (ensemble mean)."""
    cfg = model.config
    L, ctx = cfg.patch_len, batch.n_ctx
    was = model.training
    model.eval()
    x = batch.x
    mean = x[..., : ctx * L].mean(-1, keepdim=True)
    std = x[..., : ctx * L].std(-1, keepdim=True).clamp_min(1e-3)
    xn = (x - mean) / std
    b = x.shape[0]
    e = embedding.reshape(1, -1).expand(b, -1)
    z = model.encode(xn[..., : ctx * L], batch.positions, batch.stim[:, :ctx], e, visible=batch.valid)
    zr = model.rollout(z[:, -1], batch.stim[:, ctx:], e).mean(0)
    ce = model.chan_embed(batch.positions)
    pred, _ = model.decode(zr, e, chan_emb=ce)
    extra = model.future_terms(batch.stim[:, ctx:], e, ce, batch.positions, batch.base, batch.t_on)
    if extra is not None:
        pred = pred + extra
    v = batch.valid[:, :, None].to(x.dtype)
    err = (((pred - xn[..., ctx * L:]) ** 2) * v).sum() / (v.sum() * pred.shape[-1])
    model.train(was)
    return float(err)
