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
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.data import Batch, PatientSeries, sample_batch
from bfm_stim.model.evaluate import HeldOut
from bfm_stim.model.losses import LossConfig, compute_losses

__all__ = ["MODES", "AdaptResult", "Fallback", "infer_embedding", "adapt", "forecast_error"]

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


@dataclass(frozen=True)
class Fallback:
    """Why :func:`adapt` did not return its last step.

    Attributes:
        kind: ``"diverged"`` (non-finite or exploding loss, or a held-out error ``explode_factor``
            times zero-shot's) or ``"no_improvement"`` (no held-out evaluation beat zero-shot).
        reason: one sentence for the user.
        step: the optimiser step at which it was detected.
        returned: what the result holds instead: ``"zero_shot"`` or ``"step N"`` (the held-out best).
    """

    kind: str
    reason: str
    step: int
    returned: str

    def __post_init__(self) -> None:
        if self.kind not in ("diverged", "no_improvement"):
            raise ValidationError("kind", self.kind, "'diverged' or 'no_improvement'")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "step": self.step, "returned": self.returned}


@dataclass
class AdaptResult:
    """A model tuned to one patient.

    Attributes:
        model: the adapted copy (the pretrained model is untouched).
        embedding: (d_patient,) the patient's embedding.
        mode: which adaptation ran.
        losses: total loss per step that ran (a diverged run stops early).
        forecaster: (C, ar_lags, H) the patient's linear forecaster (None when the model has no linear path).
        best_step: the step whose weights are returned (0: the zero-shot start); None without held-out data
            and no fallback (the last step).
        evals: held-out R² per evaluation: ``{"step": n, "40ms": r2, "160ms": r2}`` (step 0 is zero-shot).
        fallback: why the last step was not returned, or None.
        heldout: held-out R² per lead of ``"zero_shot"`` and of the returned model (``"adapted"``).
    """

    model: BrainFoundationModel
    embedding: Tensor
    mode: str
    losses: list[float] = field(default_factory=list)
    forecaster: np.ndarray | None = None
    best_step: int | None = None
    evals: list[dict[str, float]] = field(default_factory=list)
    fallback: Fallback | None = None
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)


def _mean_score(sc: dict[str, float]) -> float:
    return float(np.mean(list(sc.values())))


def _exploded(sc: dict[str, float], ref: dict[str, float], factor: float) -> str | None:
    """A reason when a held-out score is non-finite or its error ``factor`` times the reference's."""
    for k, v in sc.items():
        if not math.isfinite(v):
            return f"held-out R² at {k} is {v}"
        ratio = (1.0 - v) / max(1.0 - ref[k], 1e-6)  # forecast error relative to zero-shot's
        if ratio > factor:
            return f"held-out forecast error at {k} is {ratio:.3g}x zero-shot's (R² {v:.3g} vs {ref[k]:.3g})"
    return None


def adapt(model: BrainFoundationModel, series: PatientSeries | list[PatientSeries], *, mode: str = "embedding",
          steps: int = 100, lr: float = 3e-3, batch_size: int = 16, n_ctx: int | None = None,
          loss: LossConfig | None = None, seed: int = 0, max_channels: int = 0,
          patient_init: Tensor | None = None, anchor: float = 0.0, tune_weights: bool = True,
          heldout: HeldOut | None = None, eval_every: int = 10, explode_factor: float = 10.0) -> AdaptResult:
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
        heldout: windows of the patient's data never trained on. With them the start (zero-shot) and
            every ``eval_every`` steps are scored (R² per lead), and the best evaluation that is no
            worse than zero-shot at any lead is returned; none better gives the zero-shot start back
            with a ``no_improvement`` fallback.
        eval_every: steps between held-out evaluations (the last step is always evaluated).
        explode_factor: the run counts as diverged (stopped, a ``diverged`` fallback, the best
            evaluation or the start returned) when a loss is non-finite, when the median loss of the
            last ``eval_every`` steps exceeds this factor times that of the first ones, or when the
            held-out forecast error (1 - R²) exceeds this factor times zero-shot's.

    Returns: :class:`AdaptResult`.
    """
    if mode not in MODES:
        raise ValidationError("mode", mode, f"one of {MODES}")
    if not (math.isfinite(anchor) and anchor >= 0):
        raise ValidationError("anchor", anchor, ">= 0 (1/unit; 0: no pull towards the pretrained weights)")
    if mode != "zero_shot" and lr * anchor >= 1:
        raise ValidationError("anchor", anchor, f"< 1 / lr = {1 / lr:g} (larger overshoots the pretrained weights)")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
        raise ValidationError("eval_every", eval_every, "an integer >= 1 (steps)")
    if not (math.isfinite(explode_factor) and explode_factor > 1):
        raise ValidationError("explode_factor", explode_factor, "> 1 and finite")
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
    zs = heldout.score_model(tuned, e0, s0.positions, fc) if heldout is not None else {}
    evals = [{"step": 0, **zs}] if zs else []
    if mode == "zero_shot":
        return AdaptResult(tuned.eval(), e0, mode, forecaster=fc, best_step=0 if zs else None, evals=evals,
                           heldout={"zero_shot": zs, "adapted": zs} if zs else {})
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

    def snapshot() -> tuple[dict[str, Tensor], Tensor]:
        return {k: v.detach().clone() for k, v in tuned.state_dict().items()}, emb.detach().clone()

    best, best_step, best_score = snapshot(), 0, _mean_score(zs) if zs else -math.inf
    fallback = None
    tuned.train()
    hist: list[float] = []
    for step in range(1, steps + 1):
        batch = sample_batch(ser, batch_size, n_ctx=n_ctx, n_hor=cfg.horizon_patches, patch_len=cfg.patch_len,
                             rng=rng, rest_patches=min(n_ctx, s0.rest_samples // cfg.patch_len),
                             max_channels=max_channels)
        out = compute_losses(tuned, batch, loss, generator=gen, patient_override=emb)
        total = float(out["total"].detach())
        why = None
        if not math.isfinite(total):
            why = f"the training loss is {total} at step {step}"
        else:
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if anchor:
                with torch.no_grad():
                    for p, p0 in zip(params, start):
                        p.sub_(p - p0, alpha=lr * anchor)
            hist.append(total)
            k = eval_every
            if len(hist) >= 2 * k and step % k == 0:
                first, last = float(np.median(hist[:k])), float(np.median(hist[-k:]))
                if last > explode_factor * first:
                    why = f"the training loss exploded: median {last:.4g} over steps {step - k + 1}-{step}, {first:.4g} over the first {k}"
            if why is None and heldout is not None and (step % eval_every == 0 or step == steps):
                sc = heldout.score_model(tuned, emb.detach(), s0.positions, fc)
                evals.append({"step": step, **sc})
                why = _exploded(sc, zs, explode_factor)
                if why is None and all(sc[k] >= zs[k] for k in sc) and _mean_score(sc) > best_score:
                    best, best_step, best_score = snapshot(), step, _mean_score(sc)
        if why is not None:
            fallback = Fallback("diverged", why, step, "zero_shot" if best_step == 0 else f"step {best_step}")
            break
    for p in tuned.parameters():
        p.requires_grad_(True)
    if heldout is not None and fallback is None and best_step == 0 and steps > 0:
        fallback = Fallback("no_improvement", f"no held-out evaluation in {steps} steps beat zero-shot at every lead "
                            f"({', '.join(f'{k} R² {v:.3f}' for k, v in zs.items())})", steps, "zero_shot")
    if heldout is not None or fallback is not None:  # return the best evaluation (or the start)
        tuned.load_state_dict(best[0])
        emb = torch.nn.Parameter(best[1])
    else:
        best_step = None
    adapted = next((e for e in evals if e["step"] == best_step), None)
    res = AdaptResult(tuned.eval(), emb.detach().clone(), mode, hist, fc, best_step, evals, fallback,
                      {"zero_shot": zs, "adapted": {k: v for k, v in adapted.items() if k != "step"}} if adapted else {})
    span = f"loss {hist[0]:.4f} -> {hist[-1]:.4f}" if hist else "no finite loss"
    held = ""
    if res.heldout:
        got = res.heldout["adapted"]
        held = f"; held-out R² {', '.join(f'{k} {zs[k]:.3f} -> {got[k]:.3f}' for k in zs)} (kept step {best_step})"
    log.info("adapted (%s%s) in %d steps: %s%s", mode, f", anchor {anchor:g}" if anchor else "", len(hist), span, held)
    if fallback is not None:
        log.warning("adaptation %s: %s; returning %s", "diverged" if fallback.kind == "diverged" else "did not improve",
                    fallback.reason, "the zero-shot model" if fallback.returned == "zero_shot"
                    else f"the held-out best ({fallback.returned})")
    return res


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
