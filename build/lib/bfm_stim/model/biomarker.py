"""Biomarker heads: the expected log band power of the response window, per channel and band.

A band-power objective measures a trial as the power of the *recorded* response in a band. The
signal forecast is the model's conditional mean of the response; its power is not the expected
power of the response (the mean of oscillations with unknown phase fades over the horizon, whatever
the stimulus), so ranking stimuli by the power of the mean forecast ranks them by how fast the
forecast loses phase, not by what the trial will measure (``bfm-stim bench ranking``; README).

This head predicts the measured quantity directly: for every candidate stimulus and channel, the
log10 band power (Hann periodogram, µV²/Hz, the units of :func:`bfm_stim.objectives.band_power`)
of the horizon after onset, for a declared set of bands, with a predicted log-variance. Labels are
cheap: the corpus' own response windows (:func:`log_band_power` of the true future), so the head
trains in pretraining with every other objective and adapts with the rest of the model.

The head works in the context's normalised units and predicts the *change* from the context's own
band power (a residual that starts at zero: "the power stays as it was"); the surrogate adds back
``2 log10(std)`` of each channel to return to µV²/Hz.

Inputs per candidate: the rolled-out latents of each dynamics head pooled over the horizon, the
stimulus code, the patient embedding and the last context latent. Per channel: its embedding and
the context's log band powers. Per (candidate, channel): the offset from the stimulating contact
(as the stimulus-locked head). The first layer is applied by parts, so the (candidate x channel)
work is one addition and two small layers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DEFAULT_BANDS", "BAND_NAMES", "BiomarkerHead", "log_band_power", "band_index"]

#: Bands of the shipped heads, Hz: delta, theta, alpha, beta, low beta, high beta, gamma.
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0),
                                                   (13.0, 20.0), (20.0, 30.0), (30.0, 80.0))
BAND_NAMES: dict[tuple[float, float], str] = dict(zip(DEFAULT_BANDS, ("delta", "theta", "alpha", "beta", "low_beta",
                                                                       "high_beta", "gamma")))


def log_band_power(x: Tensor, fs: float, bands: Sequence[tuple[float, float]], eps: float = 1e-12) -> Tensor:
    """log10 of the mean Hann-periodogram power in each band, per channel.

    Args:
        x: (..., C, T) signal (µV gives µV²/Hz; normalised units give normalised power).
        fs: sampling rate, Hz.
        bands: (low, high) Hz pairs; a band with no frequency bin at this length uses the nearest bin.
        eps: floor on the power before the log.

    Returns: (..., C, NB) log10 power; the same periodogram as :func:`bfm_stim.objectives.band_power`.
    """
    x = x - x.mean(-1, keepdim=True)
    t = x.shape[-1]
    w = torch.hann_window(t, dtype=x.dtype, device=x.device)
    psd = torch.fft.rfft(x * w).abs().square() / (fs * w.square().sum())
    f = torch.fft.rfftfreq(t, 1.0 / fs).to(device=x.device, dtype=x.dtype)
    cols = []
    for lo, hi in bands:
        sel = (f >= lo) & (f <= hi)
        if not bool(sel.any()):
            sel = (f - 0.5 * (lo + hi)).abs() == (f - 0.5 * (lo + hi)).abs().min()
        cols.append(psd[..., sel].mean(-1))
    return torch.log10(torch.stack(cols, -1) + eps)


def band_index(bands: Sequence[tuple[float, float]], band: tuple[float, float], tol_hz: float = 0.5) -> int | None:
    """Index of ``band`` in ``bands`` (edges within ``tol_hz``), or None."""
    for i, (lo, hi) in enumerate(bands):
        if abs(lo - band[0]) <= tol_hz and abs(hi - band[1]) <= tol_hz:
            return i
    return None


class BiomarkerHead(nn.Module):
    """``(pooled rollout, code, patient, z0) x (channel, context power) x offset -> (mean, log-variance)``.

    Args:
        d_latent, d_code, d_patient, d_channel: widths of the latent, stimulus code, patient and
            channel embeddings.
        n_bands: number of bands NB.
        hidden: hidden width.
        i_contact: indices of contact_x/y/z among the stimulus features (positions / 10 mm).
        i_electrical: index of the ``electrical`` feature.
    """

    def __init__(self, d_latent: int, d_code: int, d_patient: int, d_channel: int, n_bands: int, hidden: int,
                 i_contact: Sequence[int], i_electrical: int) -> None:
        super().__init__()
        self.n_bands = n_bands
        self.i_contact, self.i_el = list(i_contact), int(i_electrical)
        self.cand = nn.Sequential(nn.LayerNorm(2 * d_latent + d_code + d_patient),
                                  nn.Linear(2 * d_latent + d_code + d_patient, hidden))
        self.chan = nn.Linear(d_channel + n_bands, hidden, bias=False)
        self.geo = nn.Linear(5, hidden, bias=False)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 * n_bands))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _geometry(self, sel: Tensor, positions: Tensor) -> Tensor:
        """(N, C, 5): offset from the contact (cm, clipped to ±5), 1 / (1 + distance), electrical."""
        contact = sel[:, self.i_contact] * 0.01  # features are / 10 mm -> m
        pos = torch.nan_to_num(positions, nan=0.0)
        d = (pos - contact[:, None, :]) / 0.01
        dist = d.norm(dim=-1, keepdim=True)
        el = sel[:, self.i_el].reshape(-1, 1, 1).expand(-1, d.shape[1], 1)
        return torch.cat([d.clamp(-5, 5), 1.0 / (1.0 + dist), el], -1)

    def forward(self, zk: Tensor, code: Tensor, patient: Tensor, z0: Tensor, chan_emb: Tensor, positions: Tensor,
                ctx_power: Tensor, sel: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            zk: (K, N, D) rolled-out latents of each dynamics head, pooled over the horizon.
            code: (N, d_code) stimulus code (pooled over the horizon).
            patient: (N or 1, d_patient); z0: (N or 1, D) last context latent.
            chan_emb: (N or 1, C, d_channel); positions: (N or 1, C, 3) m (NaN where unknown).
            ctx_power: (N or 1, C, NB) log10 band power of the normalised context.
            sel: (N, F) the stimulus' features (pooled over the horizon).

        Returns: mean and log-variance (K, N, C, NB) of the log10 band power of the normalised
        response window.
        """
        k, n, _ = zk.shape
        e = patient.reshape(-1, patient.shape[-1]).expand(n, -1)
        z0 = z0.reshape(-1, z0.shape[-1]).expand(n, -1)
        a = self.cand(torch.cat([zk, code[None].expand(k, -1, -1), e[None].expand(k, -1, -1),
                                 z0[None].expand(k, -1, -1)], -1))  # (K, N, hidden)
        b = self.chan(torch.cat([chan_emb, ctx_power], -1))  # (N or 1, C, hidden)
        g = self.geo(self._geometry(sel, positions.expand(n, -1, -1) if positions.shape[0] == 1 else positions))
        o = self.out(a[:, :, None] + (b + g)[None])  # (K, N, C, 2 NB)
        mu, lv = o.split(self.n_bands, -1)
        return ctx_power[None] + mu, lv.clamp(-10.0, 6.0)
