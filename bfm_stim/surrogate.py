"""The BFM as a differentiable surrogate of a patient's response to stimulation.

``Surrogate.predict(context, stimuli)`` encodes the context once, then rolls every candidate
stimulus forward in one batch through the ensemble of latent dynamics heads, and reads the
trajectories out to the patient's channels. The spread of the heads plus the predicted noise
variance give the uncertainty, rescaled by a conformal factor fitted on held-out windows
(:meth:`Surrogate.calibrate`) so that ``level`` intervals cover about ``level`` of outcomes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from bfm_stim.exceptions import ModelError, ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.checkpoint import load_checkpoint
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["Forecast", "Prepared", "Surrogate", "default_checkpoint"]


class Prepared(NamedTuple):
    """A context encoded for :meth:`Surrogate.predict` (see :meth:`Surrogate.prepare`)."""

    z0: Tensor
    mean: Tensor
    std: Tensor
    base: Tensor | None
    power: Tensor | None


def default_checkpoint() -> Path:
    """Path of the checkpoint shipped with the package (``bfm_stim/checkpoints/default/model.pt``)."""
    from importlib.resources import files

    path = Path(str(files("bfm_stim") / "checkpoints" / "default" / "model.pt"))
    if not path.is_file():
        raise ModelError(f"the shipped checkpoint is missing at {path}; reinstall bfm-stim or pass a path")
    return path


def _z_quantile(level: float) -> float:
    return float(torch.special.ndtri(torch.tensor((1.0 + level) / 2.0, dtype=torch.float64)))


@dataclass(frozen=True)
class Forecast:
    """Predicted response to N candidate stimuli over H patches of ``patch_len`` samples.

    Attributes:
        z: (N, H, d_latent) ensemble-mean latent trajectory.
        z_std: (N, H, d_latent) calibrated latent standard deviation.
        signal: (N, C, H * patch_len) predicted signal, µV.
        signal_std: (N, C, H * patch_len) calibrated predictive standard deviation, µV.
        fs: sampling rate of ``signal``, Hz.
        response: (N, H, d_latent) the encoder latents the recorded response is predicted to have
            (what :meth:`Surrogate.latents` will read from it, so what a latent objective
            measures); None for a model without a response head.
        response_std: (N, H, d_latent) calibrated standard deviation of ``response`` (or None).
        biomarker: (N, C, NB) predicted log10 band power of the response window (the horizon after
            onset) per channel and band, µV²/Hz (the biomarker heads; None for a model without them).
        biomarker_std: (N, C, NB) its calibrated standard deviation, log10 units (or None).
        bands: (low, high) Hz of the NB bands of ``biomarker``.
        features: (N, H, F) the candidates' per-patch stimulus features (for energy penalties).
    """

    z: Tensor
    z_std: Tensor
    signal: Tensor | None
    signal_std: Tensor | None
    fs: float
    response: Tensor | None = None
    response_std: Tensor | None = None
    biomarker: Tensor | None = None
    biomarker_std: Tensor | None = None
    bands: tuple[tuple[float, float], ...] = ()
    features: Tensor | None = None

    def interval(self, level: float = 0.9) -> tuple[Tensor, Tensor]:
        """Central ``level`` predictive interval of the signal, µV: (lower, upper), each (N, C, T)."""
        if self.signal is None or self.signal_std is None:
            raise ModelError("this forecast was made with signal=False")
        q = _z_quantile(level)
        return self.signal - q * self.signal_std, self.signal + q * self.signal_std


class Surrogate:
    """A pretrained (or adapted) BFM bound to one patient's montage and embedding.

    Args:
        model: the BFM (put in eval mode here).
        positions: (C, 3) electrode positions of the montage, m.
        patient: (d_patient,) embedding (e.g. from :func:`bfm_stim.model.adapt.infer_embedding`),
            or an int row of the training table.
        space: stimulus space used to turn :class:`Stimulus` objects into features.
        horizon_patches: forecast horizon (default the model's).
        signal_scale, latent_scale, response_scale, biomarker_scale: conformal scale factors (1.0
            until :meth:`calibrate`).
        forecaster: (C, ar_lags, >= H * patch_len) the patient's linear forecaster of ongoing
            activity (:func:`bfm_stim.model.linear.fit_forecaster`); required when the model has a
            linear path (``config.ar_lags > 0``), else ignored.
    """

    def __init__(self, model: BrainFoundationModel, *, positions: Tensor | np.ndarray, patient: Tensor | int,
                 space: StimulusSpace | None = None, horizon_patches: int | None = None,
                 signal_scale: float = 1.0, latent_scale: float = 1.0,
                 forecaster: Tensor | np.ndarray | None = None, response_scale: float = 1.0,
                 biomarker_scale: float = 1.0) -> None:
        self.model = model.eval()
        self.cfg = model.config
        pos = torch.as_tensor(np.asarray(positions), dtype=torch.float32)
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValidationError("positions", tuple(pos.shape), "shape (C, 3) in m")
        self.positions = pos
        if isinstance(patient, int):
            patient = model.patient_embedding(torch.tensor([patient]))[0].detach()
        self.patient = torch.as_tensor(patient, dtype=torch.float32).reshape(-1)
        if self.patient.numel() != self.cfg.d_patient:
            raise ValidationError("patient", tuple(self.patient.shape), f"an embedding of width {self.cfg.d_patient}")
        self.space = space
        self.horizon = int(horizon_patches or self.cfg.horizon_patches)
        self.signal_scale, self.latent_scale = float(signal_scale), float(latent_scale)
        self.response_scale = float(response_scale)
        self.biomarker_scale = float(biomarker_scale)
        self.ch_names: list[str] = []
        self.forecaster = None
        if self.cfg.ar_lags:
            if forecaster is None:
                raise ValidationError("forecaster", None, "(C, ar_lags, H) coefficients: this model has a linear "
                                      "path; fit them with PatientSeries.with_forecaster or use from_checkpoint(rest=...)")
            fc = torch.as_tensor(np.asarray(forecaster), dtype=torch.float32)
            need = self.horizon * self.cfg.patch_len
            if fc.shape[:2] != (pos.shape[0], self.cfg.ar_lags) or fc.shape[2] < need:
                raise ValidationError("forecaster", tuple(fc.shape),
                                      f"({pos.shape[0]}, {self.cfg.ar_lags}, >= {need})")
            self.forecaster = fc[None, :, :, :need]
        with torch.no_grad():
            self._chan_emb = model.chan_embed(pos[None])

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, *, positions: Tensor | np.ndarray,
                        rest: Tensor | np.ndarray, space: StimulusSpace | None = None) -> "Surrogate":
        """Load a checkpoint (default: the shipped one) and infer the patient embedding zero-shot.

        Args:
            path: checkpoint file; None loads :func:`default_checkpoint` (shipped with the package).
            positions: (C, 3) electrode positions, m.
            rest: (C, T) stimulation-off signal, µV at the model rate (about 30 s).
            space: stimulus space for :class:`Stimulus` candidates.
        """
        from bfm_stim.model.adapt import infer_embedding

        from bfm_stim.model.linear import fit_forecaster

        model, info = load_checkpoint(default_checkpoint() if path is None else path)
        cal = info["extra"].get("calibration", {})
        e = infer_embedding(model, rest, positions)
        cfg = model.config
        fc = (fit_forecaster(np.asarray(rest), lags=cfg.ar_lags, horizon=cfg.horizon_patches * cfg.patch_len)
              if cfg.ar_lags else None)
        return cls(model, positions=positions, patient=e, space=space, forecaster=fc,
                   signal_scale=cal.get("signal_scale", 1.0), latent_scale=cal.get("latent_scale", 1.0),
                   response_scale=cal.get("response_scale", 1.0), biomarker_scale=cal.get("biomarker_scale", 1.0))

    @classmethod
    def from_patient_file(cls, path: str | Path, *, space: StimulusSpace | None = None) -> "Surrogate":
        """Load a patient file written by ``bfm-stim adapt`` (``weights_only=True``)."""
        from bfm_stim.model.checkpoint import load_patient

        model, info = load_patient(path)
        cal = info["meta"].get("calibration", {})
        sur = cls(model, positions=info["positions"], patient=info["embedding"], space=space,
                  forecaster=info.get("forecaster"), signal_scale=cal.get("signal_scale", 1.0),
                  latent_scale=cal.get("latent_scale", 1.0), response_scale=cal.get("response_scale", 1.0),
                  biomarker_scale=cal.get("biomarker_scale", 1.0))
        sur.ch_names = list(info["meta"].get("ch_names", []))
        return sur

    # ------------------------------------------------------------------ inputs
    @property
    def fs(self) -> float:
        """Model sampling rate, Hz."""
        return self.cfg.fs

    def _context(self, context: Tensor | np.ndarray) -> Tensor:
        x = torch.as_tensor(np.asarray(context) if not isinstance(context, Tensor) else context, dtype=torch.float32)
        if x.dim() != 2 or x.shape[0] != self.positions.shape[0]:
            raise ValidationError("context", tuple(x.shape), f"shape (C={self.positions.shape[0]}, T) in µV at {self.fs} Hz")
        L = self.cfg.patch_len
        p = min(x.shape[1] // L, max(2, self.cfg.max_patches - self.cfg.horizon_patches))  # as in training
        if p < 2:
            raise ValidationError("context", tuple(x.shape), f"at least {2 * L} samples ({2 * L / self.fs:.2f} s)")
        return x[:, x.shape[1] - p * L:]

    def stimulus_tensor(self, stimuli: Sequence[Stimulus] | Tensor) -> Tensor:
        """Per-patch features (N, H, F) of the candidates.

        A tensor (N, F) is held for the whole horizon; (N, H, F) is used as given (gradients flow);
        :class:`Stimulus` objects are on for ``duration_s`` (rounded to patches), then off.
        """
        f, h = self.cfg.n_stim_features, self.horizon
        if isinstance(stimuli, Tensor):
            if stimuli.dim() == 2 and stimuli.shape[1] == f:
                return stimuli[:, None, :].expand(-1, h, -1)
            if stimuli.dim() == 3 and stimuli.shape[1:] == (h, f):
                return stimuli
            raise ValidationError("stimuli", tuple(stimuli.shape), f"(N, {f}) or (N, {h}, {f}) features")
        stims = list(stimuli)
        if self.space is None:
            from bfm_stim.stim_features import features_of
            feats = features_of(stims, {})
        else:
            feats = self.space.to_features(stims)
        dur = torch.tensor([s.duration_s for s in stims]) * self.fs / self.cfg.patch_len
        on = (torch.arange(h)[None, :] < dur.round().clamp_min(1)[:, None]).to(feats.dtype)
        return feats[:, None, :] * on[..., None]

    # ------------------------------------------------------------------ prediction
    def encode(self, context: Tensor | np.ndarray, context_stim: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Latents of a context: (P, d_latent), with its per-channel mean and std (C, 1) µV."""
        x = self._context(context)
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True).clamp_min(1e-3)
        p = x.shape[1] // self.cfg.patch_len
        stim = context_stim if context_stim is not None else torch.zeros(1, p, self.cfg.n_stim_features)
        z = self.model.encode(((x - mean) / std)[None], self.positions[None], stim.reshape(1, p, -1),
                              self.patient[None], chan_emb=self._chan_emb)
        return z[0], mean, std

    def prepare(self, context: Tensor | np.ndarray, *, signal: bool = True, biomarkers: bool = True) -> "Prepared":
        """What :meth:`predict` needs of a context besides the candidates, to reuse across calls.

        Returns: :class:`Prepared` ``(z0, mean, std, base, power)``: the last context latent
        (d_latent,), the context's per-channel mean and std (C, 1) µV, the linear forecast of the
        ongoing activity (1, C, H * patch_len) normalised (None without a linear path or when
        ``signal`` is False), and the context's log10 band powers (1, C, NB) normalised (the
        biomarker heads' reference; None without heads or when ``biomarkers`` is False: the forecasts
        made with it then skip the heads).
        """
        z_ctx, mean, std = self.encode(context)
        xn = (self._context(context) - mean) / std
        base = power = None
        if signal and self.forecaster is not None:
            from bfm_stim.model.linear import linear_forecast
            base = linear_forecast(xn[None], self.forecaster[..., : self.horizon * self.cfg.patch_len])
        if biomarkers and self.model.biomarker is not None:
            power = self.model.context_power(xn[None])
        return Prepared(z_ctx[-1], mean, std, base, power)

    def predict(self, context: Tensor | np.ndarray, stimuli: Sequence[Stimulus] | Tensor, *,
                signal: bool = True, chunk: int = 512,
                prepared: "Prepared | None" = None, biomarkers: bool = True) -> Forecast:
        """Forecast the response to each candidate stimulus.

        Args:
            context: (C, T) recent stimulation-off signal, µV at ``fs``; the last
                ``max_patches * patch_len`` samples (a multiple of ``patch_len``) are used.
            stimuli: N :class:`Stimulus` objects, or features (N, F) / (N, H, F) (differentiable).
            signal: also read out the channel signal (skip for latent-only objectives: faster).
            chunk: candidates per internal batch.
            prepared: :meth:`prepare` of this ``context`` (same ``signal``), to skip re-encoding it.
            biomarkers: also run the biomarker heads (where the model has them; skip for latent-only objectives).

        Returns: :class:`Forecast` with N candidates.
        """
        s = self.stimulus_tensor(stimuli)
        z0, mean, std, base, power = (prepared if prepared is not None
                                      else self.prepare(context, signal=signal, biomarkers=biomarkers))
        parts = [self._rollout(z0, s[i:i + chunk], mean, std, signal, base, power) for i in range(0, len(s), chunk)]
        cat = [torch.cat([p[j] for p in parts]) if parts[0][j] is not None else None for j in range(8)]
        return Forecast(cat[0], cat[1], cat[2], cat[3], self.fs, cat[4], cat[5], cat[6], cat[7],
                        self.cfg.biomarker_bands if cat[6] is not None else (), s)

    def _rollout(self, z0: Tensor, s: Tensor, mean: Tensor, std: Tensor, signal: bool, base: Tensor | None = None,
                 power: Tensor | None = None):
        # The ensemble runs in latent space only; the signal is read out once, from the ensemble
        # mean (K times cheaper than decoding every head). Its predictive variance is the read-out's
        # noise variance, rescaled by the conformal factor fitted in :meth:`calibrate`.
        n = len(s)
        zk = self.model.rollout(z0[None].expand(n, -1), s, self.patient[None].expand(n, -1))  # (K, N, H, D)
        z = zk.mean(0)
        z_std = ((zk - z).square().mean(0) + 1e-8).sqrt() * self.latent_scale  # = var(0), far faster on CPU
        r = r_std = None
        if self.model.response is not None:  # one response prediction per dynamics head: its spread
            rk = self.model.response_latents(zk, s, self.patient[None], z0[None])
            r = rk.mean(0)
            r_std = ((rk - r).square().mean(0) + 1e-8).sqrt() * self.response_scale
        b = b_std = None
        if self.model.biomarker is not None and power is not None:  # ensemble spread + predicted noise
            bk, blv = self.model.biomarkers(zk, s, self.patient[None], z0[None], self._chan_emb, self.positions[None], power)
            b = bk.mean(0)
            b_std = ((bk - b).square().mean(0) + blv.exp().mean(0)).sqrt() * self.biomarker_scale
            b = b + 2.0 * torch.log10(std)[None]  # normalised -> µV²/Hz: (C, 1) std broadcast over bands
        if not signal:
            return z, z_std, None, None, r, r_std, b, b_std
        mu, lv = self.model.read_out(z, self.patient[None], self._chan_emb)
        extra = self.model.future_terms(s, self.patient[None], self._chan_emb, self.positions[None], base)
        if extra is not None:
            mu = mu + extra
        sig = mu * std + mean
        sig_std = (0.5 * lv).exp().repeat_interleave(self.cfg.patch_len, -1) * (std * self.signal_scale)
        return z, z_std, sig, sig_std, r, r_std, b, b_std

    # ------------------------------------------------------------------ calibration
    @torch.no_grad()
    def calibrate(self, contexts: Tensor, stimuli: Tensor, futures: Tensor, *, level: float = 0.9) -> dict[str, float]:
        """Fit the conformal scales on held-out windows so ``level`` intervals cover ``level``.

        Args:
            contexts: (M, C, T_ctx) µV.
            stimuli: (M, H, F) per-patch features of what was delivered after each context.
            futures: (M, C, H * patch_len) µV, what was then recorded.
            level: target coverage in (0, 1).

        Returns: ``{"signal_scale", "latent_scale", "level"}`` and, for a model with a response head,
        ``"response_scale"`` (against :meth:`latents` of each future), for one with biomarker heads
        ``"biomarker_scale"`` (against the log band powers of each future); also stored on the surrogate.
        """
        if not 0 < level < 1:
            raise ValidationError("level", level, "a coverage in (0, 1)")
        q = _z_quantile(level)
        self.signal_scale = self.latent_scale = self.response_scale = self.biomarker_scale = 1.0
        r_sig, r_lat, r_resp, r_bio = [], [], [], []
        for ctx, s, fut in zip(contexts, stimuli, futures):
            fc = self.predict(ctx, s[None])
            r_sig.append(((fut[None] - fc.signal).abs() / fc.signal_std).flatten())
            cx = self._context(ctx)
            full = torch.cat([cx, fut], dim=-1)
            stim_all = torch.cat([torch.zeros(cx.shape[1] // self.cfg.patch_len, s.shape[-1]), s])[None]
            keep = min(full.shape[1] // self.cfg.patch_len, self.cfg.max_patches) * self.cfg.patch_len
            z_true = self._encode_full(full[:, -keep:], stim_all[:, -keep // self.cfg.patch_len:],
                                       cx.mean(-1, keepdim=True), cx.std(-1, keepdim=True).clamp_min(1e-3))
            r_lat.append(((z_true[-self.horizon:] - fc.z[0]).abs() / fc.z_std[0]).flatten())
            if fc.response is not None:
                r_true = self.latents(fut)
                h = min(len(r_true), self.horizon)
                r_resp.append(((r_true[:h] - fc.response[0, :h]).abs() / fc.response_std[0, :h]).flatten())
            if fc.biomarker is not None:
                from bfm_stim.model.biomarker import log_band_power
                b_true = log_band_power(fut[:, : self.horizon * self.cfg.patch_len], self.fs, fc.bands)
                r_bio.append(((b_true - fc.biomarker[0]).abs() / fc.biomarker_std[0]).flatten())
        k = math.ceil((len(torch.cat(r_sig)) + 1) * level) / len(torch.cat(r_sig))
        self.signal_scale = float(torch.quantile(torch.cat(r_sig), min(k, 1.0)) / q)
        self.latent_scale = float(torch.quantile(torch.cat(r_lat), level) / q)
        out = {"signal_scale": self.signal_scale, "latent_scale": self.latent_scale, "level": level}
        if r_resp:
            self.response_scale = out["response_scale"] = float(torch.quantile(torch.cat(r_resp), level) / q)
        if r_bio:
            self.biomarker_scale = out["biomarker_scale"] = float(torch.quantile(torch.cat(r_bio), level) / q)
        return out

    def _encode_full(self, x: Tensor, stim: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return self.model.encode(((x - mean) / std)[None], self.positions[None], stim, self.patient[None],
                                 chan_emb=self._chan_emb)[0]

    @torch.no_grad()
    def latents(self, data: Tensor | np.ndarray) -> Tensor:
        """Encoder latents (P, d_latent) of stimulation-off data (C, T) µV, in consecutive context windows."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32)
        L = self.cfg.patch_len
        w = max(2, self.cfg.max_patches - self.cfg.horizon_patches) * L  # the context length encode() uses
        out = []
        for start in range(0, max(x.shape[1] - 2 * L, 1), w):
            seg = x[:, start:start + w]
            if seg.shape[1] >= 2 * L:
                out.append(self.encode(seg)[0])
        if not out:
            raise ValidationError("data", tuple(x.shape), f"at least {2 * L} samples")
        return torch.cat(out)
