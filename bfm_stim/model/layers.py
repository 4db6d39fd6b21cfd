"""Building blocks of the BFM: electrode read-in, stimulus encoder, latent dynamics, read-out.

Shapes use ``B`` batch, ``C`` channels, ``P`` time patches, ``L`` samples per patch, ``V`` virtual
channels, ``F`` stimulus features, ``K`` ensemble heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ChannelEmbedding", "ReadIn", "StimulusEncoder", "LatentDynamics", "ReadOut", "normalize"]


def normalize(x: Tensor, visible: Tensor | None = None, eps: float = 1e-3) -> tuple[Tensor, Tensor, Tensor]:
    """Standardise each channel over time.

    Args:
        x: (B, C, T) signal, µV.
        visible: optional (B, C) bool; statistics of hidden channels are still computed.
        eps: floor on the standard deviation, µV.

    Returns: normalised x (B, C, T), mean (B, C, 1) µV, std (B, C, 1) µV.
    """
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True).clamp_min(eps) if x.shape[-1] > 1 else torch.ones_like(mean)
    return (x - mean) / std, mean, std


class ChannelEmbedding(nn.Module):
    """Embed each channel from its electrode position: random Fourier features → MLP.

    Unknown positions (NaN) use a learned "unknown" flag input, so any montage works.
    """

    def __init__(self, d_channel: int, n_fourier: int, scale_m: float) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1234)
        self.register_buffer("freqs", torch.randn(3, n_fourier, generator=gen) / scale_m)
        self.mlp = nn.Sequential(nn.Linear(2 * n_fourier + 1, d_channel), nn.GELU(),
                                 nn.Linear(d_channel, d_channel))

    def forward(self, positions: Tensor) -> Tensor:
        """Args: positions (B, C, 3) in m, NaN where unknown. Returns (B, C, d_channel)."""
        unknown = torch.isnan(positions).any(-1, keepdim=True)
        pos = torch.where(unknown, torch.zeros_like(positions), positions)
        proj = 2 * math.pi * pos @ self.freqs
        feats = torch.cat([proj.sin(), proj.cos(), unknown.to(pos.dtype)], dim=-1)
        return self.mlp(feats)


class ReadIn(nn.Module):
    """Cross-attend the channel tokens of every patch into a fixed set of virtual channels.

    Works for any channel count ``C``; padded or masked channels are excluded from attention.
    """

    def __init__(self, patch_len: int, d_channel: int, n_virtual: int, n_heads: int, d_model: int) -> None:
        super().__init__()
        self.patch_proj = nn.Linear(patch_len, d_channel)
        self.mask_token = nn.Parameter(torch.zeros(d_channel))
        self.queries = nn.Parameter(torch.randn(n_virtual, d_channel) / math.sqrt(d_channel))
        self.attn = nn.MultiheadAttention(d_channel, n_heads, batch_first=True)
        self.norm = nn.LayerNorm(d_channel)
        self.out = nn.Linear(n_virtual * d_channel, d_model)

    def forward(self, patches: Tensor, chan_emb: Tensor, visible: Tensor,
                time_mask: Tensor | None = None) -> Tensor:
        """Args:
            patches: (B, C, P, L) normalised signal.
            chan_emb: (B, C, d_channel) channel embeddings.
            visible: (B, C) bool, True for channels the model may read.
            time_mask: optional (B, P) bool, True for patches hidden behind the mask token.

        Returns: (B, P, d_model) one token per patch.
        """
        b, c, p, _ = patches.shape
        tok = self.patch_proj(patches)  # (B, C, P, dc)
        if time_mask is not None:
            tok = torch.where(time_mask[:, None, :, None], self.mask_token.expand_as(tok), tok)
        tok = tok + chan_emb[:, :, None, :]
        tok = tok.permute(0, 2, 1, 3).reshape(b * p, c, -1)  # (B*P, C, dc)
        kpm = (~visible)[:, None, :].expand(b, p, c).reshape(b * p, c)
        q = self.queries.unsqueeze(0).expand(b * p, -1, -1)
        v, _ = self.attn(q, self.norm(tok), self.norm(tok), key_padding_mask=kpm, need_weights=False)
        return self.out(v.reshape(b, p, -1))


class StimulusEncoder(nn.Module):
    """Map per-patch stimulus features to a code and FiLM parameters (all smooth, so gradients exist)."""

    def __init__(self, n_features: int, d_code: int, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, d_code), nn.GELU(), nn.Linear(d_code, d_code), nn.GELU())
        self.film = nn.Linear(d_code, 3 * d_model)
        nn.init.normal_(self.film.weight, std=0.02)
        nn.init.zeros_(self.film.bias)

    def code(self, stim: Tensor) -> Tensor:
        """Args: stim (..., F). Returns (..., d_code)."""
        return self.mlp(stim)

    def modulate(self, h: Tensor, code: Tensor) -> Tensor:
        """FiLM plus additive conditioning: ``h * (1 + g) + b + a``; h, code (..., d)."""
        g, b, a = self.film(code).chunk(3, dim=-1)
        return h * (1 + g) + b + a


class LatentDynamics(nn.Module):
    """Ensemble of residual latent steps ``z' = z + f_k(z, stim code, patient)``."""

    def __init__(self, d_latent: int, d_code: int, d_patient: int, hidden: int, n_heads: int) -> None:
        super().__init__()
        d_in = d_latent + d_code + d_patient
        self.n_heads = n_heads
        # Batched weights: one set per head, applied with einsum for speed.
        self.w1 = nn.Parameter(torch.randn(n_heads, d_in, hidden) / math.sqrt(d_in))
        self.b1 = nn.Parameter(torch.zeros(n_heads, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(n_heads, hidden, d_latent) * (0.1 / math.sqrt(hidden)))
        self.b2 = nn.Parameter(torch.zeros(n_heads, 1, d_latent))
        self.norm = nn.LayerNorm(d_latent)

    def forward(self, z: Tensor, code: Tensor, patient: Tensor) -> Tensor:
        """One step for every head.

        Args:
            z: (K, N, d_latent) current latent per head.
            code: (N, d_code) stimulus code of the next patch.
            patient: (N, d_patient) patient embedding.

        Returns: (K, N, d_latent) next latent.
        """
        return self.step(z, self.condition(code[:, None], patient, z.shape[0])[:, :, 0])

    def condition(self, code: Tensor, patient: Tensor, k: int) -> Tensor:
        """Stimulus and patient part of the first layer, for all steps at once.

        Args: code (N, H, d_code), patient (N, d_patient), k heads. Returns (K, N, H, hidden).
        """
        d = self.norm.normalized_shape[0]
        c = torch.cat([code, patient[:, None, :].expand(-1, code.shape[1], -1)], dim=-1)
        return torch.einsum("nhi,kio->knho", c, self.w1[:k, d:]) + self.b1[:k, None]

    def step(self, z: Tensor, pre: Tensor) -> Tensor:
        """Residual step given the precomputed condition ``pre`` (K, N, hidden); z (K, N, d_latent)."""
        k, d = z.shape[0], z.shape[-1]
        h = torch.nn.functional.gelu(torch.baddbmm(pre, self.norm(z), self.w1[:k, :d]))
        return z + torch.baddbmm(self.b2[:k], h, self.w2[:k])


class ReadOut(nn.Module):
    """Decode latents to any montage: a nonlinear decoder per virtual channel, then a signed linear
    mix of the virtual channels into each channel (as a lead field mixes sources into electrodes).

    The mixing weights depend only on the montage and the patient (channel queries against
    patient-shifted virtual-channel keys), so they are computed once per surrogate; the per-candidate
    cost is the virtual-channel decoder (``V`` tokens per patch, not ``C``) and one matmul.
    """

    def __init__(self, d_latent: int, d_patient: int, d_channel: int, n_virtual: int, patch_len: int) -> None:
        super().__init__()
        self.n_virtual, self.d_channel, self.patch_len = n_virtual, d_channel, patch_len
        self.keys = nn.Parameter(torch.randn(n_virtual, d_channel) / math.sqrt(d_channel))
        self.key_shift = nn.Linear(d_patient, n_virtual * d_channel)
        self.query = nn.Linear(d_channel, d_channel)
        self.values = nn.Linear(d_latent + d_patient, n_virtual * d_channel)
        self.virt = nn.Sequential(nn.LayerNorm(d_channel), nn.GELU(), nn.Linear(d_channel, patch_len + 1))
        self.chan_bias = nn.Linear(d_channel, 2)
        # start near the per-channel mean (0 after normalisation) rather than from random waveforms
        nn.init.normal_(self.virt[-1].weight, std=0.1 / math.sqrt(d_channel))
        nn.init.zeros_(self.virt[-1].bias)

    def mixing(self, patient: Tensor, chan_emb: Tensor) -> Tensor:
        """Signed mixing weights (N or 1, C, V) from patient (N or 1, d_patient) and chan_emb (N or 1, C, dc)."""
        keys = self.keys + self.key_shift(patient).view(-1, self.n_virtual, self.d_channel)
        return torch.matmul(self.query(chan_emb), keys.transpose(1, 2)) / math.sqrt(self.d_channel)

    def forward(self, z: Tensor, patient: Tensor, chan_emb: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            z: (N, P, d_latent) latents.
            patient: (N or 1, d_patient) patient embeddings.
            chan_emb: (N or 1, C, d_channel) channel embeddings.

        Returns: mean (N, C, P * L) normalised signal and log-variance (N, C, P) per patch.
        """
        n, p, _ = z.shape
        L, V = self.patch_len, self.n_virtual
        w = self.mixing(patient, chan_emb)  # (N or 1, C, V)
        vals = self.values(torch.cat([z, patient[:, None, :].expand(n, p, -1)], dim=-1))
        virt = self.virt(vals.view(n, p, V, self.d_channel))  # (N, P, V, L + 1)
        mixed = torch.matmul(w, virt.permute(0, 2, 1, 3).reshape(n, V, p * (L + 1)))  # (N, C, P * (L + 1))
        c = mixed.shape[1]
        mixed = mixed.view(n, c, p, L + 1)
        bias = self.chan_bias(chan_emb)  # (N or 1, C, 2)
        mean = (mixed[..., :L] + bias[..., 0, None, None]).reshape(n, c, p * L)
        logvar = (mixed[..., L] + bias[..., 1, None]).clamp(-8.0, 6.0)
        return mean, logvar
