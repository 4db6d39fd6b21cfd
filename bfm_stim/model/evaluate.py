"""Forecast evaluation: R² at fixed leads, the model's batched forecast, and held-out windows.

Everything is in per-window normalised units: each window's context and future are normalised by the
context's own per-channel mean and standard deviation, as the BFM sees them. The same functions score
the surrogate benchmark (``loops/bench/surrogate.py``), ``bfm-stim adapt``'s held-out check and
``bfm-stim bench real``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.data import PatientSeries, patch_stimulus

__all__ = ["LEADS_S", "r2", "forecast_r2", "normalised", "bfm_predict", "HeldOut", "lead_key"]

LEADS_S = (0.04, 0.16)  # forecast leads scored on held-out data, s


def r2(y: np.ndarray, yhat: np.ndarray, axis_mean: tuple[int, ...] = (0,)) -> float:
    """1 - SSE / SST, with SST about the mean over ``axis_mean`` (per remaining index)."""
    y, yhat = np.asarray(y, np.float64), np.asarray(yhat, np.float64)
    sst = ((y - y.mean(axis=axis_mean, keepdims=True)) ** 2).sum()
    return float(1.0 - ((y - yhat) ** 2).sum() / max(sst, 1e-12))


def forecast_r2(fut_n: np.ndarray, pred_n: np.ndarray, lead: int) -> float:
    """R² at ``lead`` samples after the context over windows and channels: (M, C, T) normalised arrays."""
    return r2(fut_n[..., lead - 1], pred_n[..., lead - 1], (0,))


def lead_key(lead_s: float) -> str:
    """``0.04`` → ``"40ms"``: the key of a lead in result dictionaries."""
    return f"{lead_s * 1000:g}ms"


def normalised(ctx: Tensor, x: Tensor) -> np.ndarray:
    """``x`` (M, C, T) normalised by the per-channel mean and std of its context ``ctx`` (M, C, Tc)."""
    return ((x - ctx.mean(-1, keepdim=True)) / ctx.std(-1, keepdim=True).clamp_min(1e-3)).numpy()


def _off_features(n: int) -> Tensor:
    from bfm_stim.stim_features import features_of
    from bfm_stim.stimulus import Stimulus

    f = features_of([Stimulus.off()], {})[0].float()
    if f.shape[0] != n:
        raise ValidationError("n_stim_features", n, f"{f.shape[0]} (the stimulus features of this package)")
    return f


@torch.no_grad()
def bfm_predict(model: BrainFoundationModel, emb: Tensor, pos: np.ndarray, ctx: Tensor,
                stim: Tensor, forecaster: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """Batched forecast from stimulation-off contexts.

    Args:
        model: the BFM (put in eval mode).
        emb: (d_patient,) patient embedding.
        pos: (C, 3) electrode positions, m (NaN where unknown).
        ctx: (M, C, Tc) contexts, µV; Tc a multiple of the patch length.
        stim: (M, H, F) stimulus features per horizon patch.
        forecaster: (C, lags, >= H * patch_len) the patient's linear forecaster (needed when the model
            has a linear path).

    Returns: normalised ensemble-mean prediction (M, C, H * patch_len), its std (same shape) and the
    context latents (M, Tc / patch_len, d_latent).
    """
    model.eval()
    m, _, tc = ctx.shape
    cfg = model.config
    mean, std = ctx.mean(-1, keepdim=True), ctx.std(-1, keepdim=True).clamp_min(1e-3)
    p = tc // cfg.patch_len
    e = emb.reshape(1, -1).expand(m, -1)
    posb = torch.as_tensor(pos, dtype=torch.float32)[None].expand(m, -1, -1)
    off = _off_features(cfg.n_stim_features)[None, None].expand(m, p, -1)
    z = model.encode((ctx - mean) / std, posb, off, e)
    zr = model.rollout(z[:, -1], stim, e).mean(0)
    ce = model.chan_embed(posb[:1])
    mu, lv = model.read_out(zr, emb.reshape(1, -1), ce)
    base = None
    if forecaster is not None:
        from bfm_stim.model.linear import linear_forecast
        base = linear_forecast((ctx - mean) / std, torch.as_tensor(forecaster)[None, ..., : stim.shape[1] * cfg.patch_len])
    extra = model.future_terms(stim, emb.reshape(1, -1), ce, posb[:1], base)
    if extra is not None:
        mu = mu + extra
    sd = (0.5 * lv).exp().repeat_interleave(cfg.patch_len, -1)
    return mu.numpy(), sd.numpy(), z


@dataclass(frozen=True)
class HeldOut:
    """Forecast windows whose futures lie in a held-out stretch of one patient's recording.

    Attributes:
        ctx: (M, C, Tc) contexts, µV (they may reach back before the stretch: inputs only).
        stim: (M, H, F) stimulus features per horizon patch.
        fut: (M, C, H * patch_len) futures, µV, all inside the held-out stretch.
        fs: sampling rate, Hz.
        start: first held-out sample.
        leads_s: the leads scored, s.
    """

    ctx: Tensor
    stim: Tensor
    fut: Tensor
    fs: float
    start: int
    leads_s: tuple[float, ...] = LEADS_S

    def __post_init__(self) -> None:
        m, c, _ = self.ctx.shape
        if self.fut.shape[:2] != (m, c) or self.stim.shape[0] != m:
            raise ValidationError("held-out windows", (tuple(self.ctx.shape), tuple(self.stim.shape), tuple(self.fut.shape)),
                                  "ctx (M, C, Tc), stim (M, H, F) and fut (M, C, T) with the same M and C")
        if m == 0:
            raise ValidationError("held-out windows", m, "at least one window")
        if max(self.leads) > self.fut.shape[-1]:
            raise ValidationError("leads_s", self.leads_s, f"<= {self.fut.shape[-1] / self.fs:g} s (the future's length)")

    @classmethod
    def from_series(cls, series: PatientSeries, start: int, *, ctx_patches: int, patch_len: int, fs: float,
                    leads_s: tuple[float, ...] = LEADS_S, max_windows: int = 64) -> "HeldOut":
        """Evenly spaced windows whose futures start at or after sample ``start``.

        The horizon is the fewest patches that cover the longest lead, so a short held-out stretch
        still yields windows.

        Raises:
            ValidationError: the stretch after ``start`` is shorter than the longest lead.
        """
        t = series.data.shape[1]
        hor = max(1, math.ceil(max(leads_s) * fs / patch_len))
        c_len, f_len = ctx_patches * patch_len, hor * patch_len
        lo, hi = max(0, start - c_len), t - c_len - f_len
        if hi < lo:
            raise ValidationError("held-out stretch", (t - start) / fs,
                                  f">= {f_len / fs:g} s after {c_len / fs:g} s of context")
        n = min(max_windows, hi - lo + 1)
        starts = np.unique(np.linspace(lo, hi, n).round().astype(np.int64))
        x = torch.from_numpy(np.stack([series.data[:, s:s + c_len + f_len] for s in starts]).astype(np.float32))
        st = np.stack([patch_stimulus(series.stim_ids[s + c_len:s + c_len + f_len], series.stim_table, patch_len)
                       for s in starts])
        return cls(x[..., :c_len], torch.from_numpy(st).float(), x[..., c_len:], float(fs), int(start), tuple(leads_s))

    @property
    def leads(self) -> list[int]:
        """The leads in samples."""
        return [max(1, int(round(s * self.fs))) for s in self.leads_s]

    @property
    def n_windows(self) -> int:
        return int(self.ctx.shape[0])

    def score(self, pred_n: np.ndarray) -> dict[str, float]:
        """R² of a normalised forecast (M, C, >= max lead) at each lead: ``{"40ms": ..., "160ms": ...}``."""
        fut = normalised(self.ctx, self.fut)
        return {lead_key(s): forecast_r2(fut, pred_n, lead) for s, lead in zip(self.leads_s, self.leads)}

    def score_model(self, model: BrainFoundationModel, emb: Tensor, positions: np.ndarray,
                    forecaster: np.ndarray | None = None) -> dict[str, float]:
        """Held-out R² of the BFM's forecast at each lead."""
        was = model.training
        mu, _, _ = bfm_predict(model, emb, positions, self.ctx, self.stim, forecaster)
        model.train(was)
        return self.score(mu)

    def score_linear(self, forecaster: np.ndarray) -> dict[str, float]:
        """Held-out R² of a per-channel linear forecaster (C, lags, >= H) (:mod:`bfm_stim.model.linear`)."""
        from bfm_stim.model.linear import linear_forecast

        ctx_n = torch.from_numpy(normalised(self.ctx, self.ctx)).float()
        fc = torch.as_tensor(forecaster)[None, ..., : self.fut.shape[-1]]
        return self.score(linear_forecast(ctx_n, fc).numpy())

    def score_persistence(self) -> dict[str, float]:
        """Held-out R² of persistence: the last context sample held over the future."""
        last = normalised(self.ctx, self.ctx[..., -1:])
        return self.score(np.repeat(last, self.fut.shape[-1], -1))
