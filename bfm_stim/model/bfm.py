"""The brain foundation model: read-in → stimulus-conditioned causal transformer → latent z →
residual latent dynamics → channel read-out.

The model works on signals normalised per channel (see :func:`~bfm_stim.model.layers.normalize`);
callers keep the statistics to return to µV.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bfm_stim.exceptions import ModelError
from bfm_stim.model.biomarker import BiomarkerHead, log_band_power
from bfm_stim.model.config import ModelConfig
from bfm_stim.model.layers import ChannelEmbedding, LatentDynamics, ReadIn, ReadOut, StimulusEncoder, normalize
from bfm_stim.model.response import ResponseHead
from bfm_stim.model.stimlocked import StimLockedHead

__all__ = ["BrainFoundationModel", "normalize"]


class BrainFoundationModel(nn.Module):
    """Stimulation-conditioned model of multichannel neural dynamics.

    Args:
        config: Architecture, see :class:`ModelConfig`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d_code = cfg.d_model // 2
        self.chan_embed = ChannelEmbedding(cfg.d_channel, cfg.n_fourier, cfg.fourier_scale_m)
        self.read_in = ReadIn(cfg.patch_len, cfg.d_channel, cfg.n_virtual, cfg.n_heads, cfg.d_model)
        self.stim_enc = StimulusEncoder(cfg.n_stim_features, d_code, cfg.d_model)
        self.patient_proj = nn.Linear(cfg.d_patient, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.max_patches, cfg.d_model))
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.to_latent = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.d_latent))
        self.dynamics = LatentDynamics(cfg.d_latent, d_code, cfg.d_patient, cfg.dyn_hidden, cfg.n_ensemble)
        self.read_out = ReadOut(cfg.d_latent, cfg.d_patient, cfg.d_channel, cfg.n_virtual, cfg.patch_len)
        # Patient embeddings: a table for training patients and an encoder from rest data.
        self.patient_table = nn.Embedding(max(cfg.n_train_patients, 1), cfg.d_patient)
        nn.init.normal_(self.patient_table.weight, std=0.1)
        rest_layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 2 * cfg.d_model, 0.0,
                                                activation="gelu", batch_first=True, norm_first=True)
        self.rest_encoder = nn.TransformerEncoder(rest_layer, 1, enable_nested_tensor=False)
        self.rest_head = nn.Sequential(nn.LayerNorm(cfg.d_model + 1), nn.Linear(cfg.d_model + 1, cfg.d_patient))
        self.contrast_head = nn.Sequential(nn.Linear(cfg.d_latent, cfg.d_latent), nn.GELU(),
                                           nn.Linear(cfg.d_latent, 32))
        self.stim_locked = (StimLockedHead(cfg.stim_feature_names, d_code, cfg.d_patient, cfg.d_channel,
                                           cfg.n_harmonics, cfg.stim_rank, cfg.patch_len, cfg.fs)
                            if cfg.n_harmonics else None)
        self.response = (ResponseHead(cfg.d_latent, d_code, cfg.d_patient, cfg.response_hidden)
                         if cfg.response_hidden else None)
        if cfg.biomarker_hidden:
            ix = {n: i for i, n in enumerate(cfg.stim_feature_names)}
            self.biomarker = BiomarkerHead(cfg.d_latent, d_code, cfg.d_patient, cfg.d_channel,
                                           len(cfg.biomarker_bands), cfg.biomarker_hidden,
                                           [ix["contact_x"], ix["contact_y"], ix["contact_z"]], ix["electrical"])
        else:
            self.biomarker = None

    # ------------------------------------------------------------------ helpers
    def get_offset(self) -> int:
        """Receptive field: samples of input each latent may depend on (CEBRA's ``get_offset``)."""
        return self.config.receptive_field

    @property
    def samples_per_latent(self) -> int:
        """Samples of signal summarised by one latent (the patch length)."""
        return self.config.patch_len

    def patchify(self, x: Tensor) -> Tensor:
        """(B, C, T) → (B, C, P, L); T must be a multiple of ``patch_len``."""
        b, c, t = x.shape
        L = self.config.patch_len
        if t % L:
            raise ModelError(f"signal length must be a multiple of patch_len; got {t=} and patch_len={L}")
        return x.reshape(b, c, t // L, L)

    def patient_embedding(self, patient: Tensor) -> Tensor:
        """Ids (B,) long → table rows, or pass through an embedding (B, d_patient)."""
        if patient.dtype in (torch.int64, torch.int32):
            if self.config.n_train_patients == 0:
                raise ModelError("this model has no patient table (n_train_patients=0); pass embeddings")
            return self.patient_table(patient)
        if patient.shape[-1] != self.config.d_patient:
            raise ModelError(f"patient embedding must have width {self.config.d_patient}; got {tuple(patient.shape)}")
        return patient

    def _check(self, x: Tensor, positions: Tensor) -> None:
        if x.dim() != 3 or positions.dim() != 3 or positions.shape[:2] != x.shape[:2] or positions.shape[-1] != 3:
            raise ModelError(f"expected x (B, C, T) and positions (B, C, 3); got {tuple(x.shape)=} "
                             f"and {tuple(positions.shape)=}")

    # ------------------------------------------------------------------ encoder
    def encode(self, x: Tensor, positions: Tensor, stim: Tensor, patient: Tensor, *,
               visible: Tensor | None = None, time_mask: Tensor | None = None,
               chan_emb: Tensor | None = None) -> Tensor:
        """Encode a normalised signal into one latent per patch (causal).

        Args:
            x: (B, C, T) normalised signal, T = P * patch_len, P <= max_patches.
            positions: (B, C, 3) electrode positions, m (NaN where unknown).
            stim: (B, P, F) stimulus features active during each patch.
            patient: (B,) training-patient ids or (B, d_patient) embeddings.
            visible: (B, C) bool channels the model reads (default all).
            time_mask: (B, P) bool patches replaced by the mask token.
            chan_emb: precomputed channel embeddings (B, C, d_channel).

        Returns: z (B, P, d_latent); z[:, t] depends only on patches <= t.
        """
        self._check(x, positions)
        patches = self.patchify(x)
        b, c, p, _ = patches.shape
        if p > self.config.max_patches:
            raise ModelError(f"context of {p} patches exceeds max_patches={self.config.max_patches} "
                             f"(receptive field {self.get_offset()} samples)")
        if stim.shape != (b, p, self.config.n_stim_features):
            raise ModelError(f"stim must be (B, P, F)=({b}, {p}, {self.config.n_stim_features}); got {tuple(stim.shape)}")
        if visible is None:
            visible = torch.ones(b, c, dtype=torch.bool, device=x.device)
        if chan_emb is None:
            chan_emb = self.chan_embed(positions)
        h = self.read_in(patches, chan_emb, visible, time_mask)
        e = self.patient_embedding(patient)
        h = h + self.patient_proj(e)[:, None, :] + self.pos[:p]  # positions count from the window start
        h = self.stim_enc.modulate(h, self.stim_enc.code(stim))
        causal = nn.Transformer.generate_square_subsequent_mask(p, device=x.device, dtype=h.dtype)
        h = self.transformer(h, mask=causal, is_causal=True)
        return self.to_latent(h)

    def infer_patient(self, x: Tensor, positions: Tensor, visible: Tensor | None = None) -> Tensor:
        """Patient embedding from stimulation-off data.

        Args:
            x: (B, C, T) raw signal, µV (normalised here; its log-scale is a feature).
            positions: (B, C, 3), m.
            visible: optional (B, C) bool.

        Returns: (B, d_patient).
        """
        self._check(x, positions)
        xn, _, std = normalize(x)
        if visible is None:
            visible = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        h = self.read_in(self.patchify(xn), self.chan_embed(positions), visible)
        h = self.rest_encoder(h).mean(1)
        w = visible.to(x.dtype)
        logscale = ((std[..., 0].log() * w).sum(1) / w.sum(1).clamp_min(1)).unsqueeze(-1) / 5.0
        return self.rest_head(torch.cat([h, logscale], dim=-1))

    # ------------------------------------------------------------------ dynamics and read-out
    def rollout(self, z0: Tensor, stim: Tensor, patient: Tensor, n_heads: int | None = None) -> Tensor:
        """Roll the latent forward with every dynamics head.

        Args:
            z0: (N, d_latent) latent at the last context patch.
            stim: (N, H, F) stimulus features per future patch.
            patient: (N,) ids or (N, d_patient).
            n_heads: heads to use (default all ``n_ensemble``).

        Returns: (K, N, H, d_latent) latents for future patches 1..H.
        """
        k = n_heads or self.config.n_ensemble
        e = self.patient_embedding(patient)
        h = stim.shape[1]
        held = h > 1 and stim.stride(1) == 0  # one stimulus held (expanded) over the horizon
        s_in = stim[:, :1] if held else stim
        pre = self.dynamics.condition(self.stim_enc.code(s_in), e, k)  # (K, N, H or 1, hidden)
        z = z0.unsqueeze(0).expand(k, -1, -1)
        out = []
        for t in range(h):
            z = self.dynamics.step(z, pre[:, :, 0 if held else t])
            out.append(z)
        return torch.stack(out, dim=2)

    def decode(self, z: Tensor, patient: Tensor, positions: Tensor | None = None, *,
               chan_emb: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Read latents out to channels.

        Args:
            z: (N, P, d_latent).
            patient: (N,) ids or (N, d_patient).
            positions: (N or 1, C, 3) m, or give ``chan_emb``.

        Returns: mean (N, C, P * patch_len) normalised signal, log-variance (N, C, P).
        """
        if chan_emb is None:
            if positions is None:
                raise ModelError("decode needs positions or chan_emb")
            chan_emb = self.chan_embed(positions)
        return self.read_out(z, self.patient_embedding(patient), chan_emb)

    def future_terms(self, stim: Tensor, patient: Tensor, chan_emb: Tensor, positions: Tensor,
                     base: Tensor | None = None, t_on: Tensor | None = None) -> Tensor | None:
        """What is added to the read-out of the rolled-out latents: the stimulus-locked response
        (where the model has that head) and ``base``, the linear forecast of the ongoing activity
        (:func:`bfm_stim.model.linear.linear_forecast` of the normalised context).

        Args:
            stim: (N, H, F) per-patch stimulus features of the horizon.
            patient: (N or 1,) ids or (N or 1, d_patient).
            chan_emb: (N or 1, C, d_channel); positions: (N or 1, C, 3) m.
            base: (N or 1, C, H * patch_len) normalised linear forecast, or None.
            t_on: (N, H * patch_len) samples since the acting stimulus' onset (-1 where none);
                default: onsets on patch boundaries (what :class:`~bfm_stim.surrogate.Surrogate` proposes).

        Returns: (N or 1, C, H * patch_len) normalised signal, or None when there is nothing to add.
        """
        out = base
        if self.stim_locked is not None:
            e = self.patient_embedding(patient)
            locked = self.stim_locked(stim, self.stim_enc.code, e, chan_emb, positions, t_on)
            out = locked if out is None else locked + out
        return out

    def response_latents(self, zk: Tensor, stim: Tensor, patient: Tensor, z0: Tensor) -> Tensor:
        """The encoder latents the recorded response will have (:class:`~bfm_stim.model.response.ResponseHead`).

        Args:
            zk: (K, N, H, d_latent) rolled-out latents of every dynamics head (:meth:`rollout`).
            stim: (N, H, F) stimulus features of the horizon.
            patient: (N or 1,) ids or (N or 1, d_patient).
            z0: (N or 1, d_latent) last context latent.

        Returns: (K, N, H, d_latent), one prediction per dynamics head.
        """
        if self.response is None:
            raise ModelError("this model has no response head (config.response_hidden = 0)")
        k, n, h, d = zk.shape
        held = h > 1 and stim.stride(1) == 0
        code = self.stim_enc.code(stim[:, :1] if held else stim)  # (N, 1 or H, d_code)
        code = code[None].expand(k, -1, -1, -1).reshape(k * n, code.shape[1], -1)
        e = self.patient_embedding(patient).reshape(-1, self.config.d_patient)
        e = e.expand(n, -1)[None].expand(k, -1, -1).reshape(k * n, -1)
        z0 = z0.reshape(-1, d).expand(n, -1)[None].expand(k, -1, -1).reshape(k * n, d)
        return self.response(zk.reshape(k * n, h, d), code, e, z0).view(k, n, h, d)

    def context_power(self, xn: Tensor) -> Tensor:
        """log10 band powers (…, C, NB) of the last horizon-length of a normalised context (…, C, T):
        the biomarker heads' reference (their prediction is a change from it)."""
        n = min(xn.shape[-1], self.config.horizon_patches * self.config.patch_len)
        return log_band_power(xn[..., -n:], self.config.fs, self.config.biomarker_bands)

    def biomarkers(self, zk: Tensor, stim: Tensor, patient: Tensor, z0: Tensor, chan_emb: Tensor,
                   positions: Tensor, ctx_power: Tensor) -> tuple[Tensor, Tensor]:
        """Predicted log10 band power of the response window (:class:`~bfm_stim.model.biomarker.BiomarkerHead`).

        Args:
            zk: (K, N, H, d_latent) rolled-out latents of every dynamics head (:meth:`rollout`).
            stim: (N, H, F) stimulus features of the horizon.
            patient: (N or 1,) ids or (N or 1, d_patient); z0: (N or 1, d_latent) last context latent.
            chan_emb: (N or 1, C, d_channel); positions: (N or 1, C, 3) m.
            ctx_power: (N or 1, C, NB) :meth:`context_power` of the normalised context.

        Returns: mean and log-variance (K, N, C, NB), in log10 of the power of the response normalised
        by the context's per-channel statistics (add ``2 log10(std)`` for µV²/Hz).
        """
        if self.biomarker is None:
            raise ModelError("this model has no biomarker heads (config.biomarker_hidden = 0)")
        n, h = stim.shape[:2]
        held = h > 1 and stim.stride(1) == 0
        code = self.stim_enc.code(stim[:, :1] if held else stim).mean(1)  # (N, d_code)
        sel = stim[:, 0] if held else stim.mean(1)
        e = self.patient_embedding(patient)
        return self.biomarker(zk.mean(2), code, e, z0, chan_emb, positions, ctx_power, sel)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
