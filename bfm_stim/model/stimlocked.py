"""The stimulus-locked head: what a periodic stimulus adds to each channel, time-locked to its onset.

A pulse train or flicker at rate ``f`` leaves a periodic trace (artifact, evoked and entrained
activity) made of the harmonics ``k·f`` that lie below the Nyquist rate, on top of a step at onset
(the mean of one-sided pulse artifacts, slow shifts) with fast and slow transients. The head writes it as

    y[c, t] = Σ_r B[c, r] · Σ_j A[p, r, j] φ_j(t)

with the basis ``φ`` = sin and cos of ``2π k f t`` (k = 1..K, below 0.45 fs), 1, ``exp(-t/20 ms)``
and ``exp(-t/200 ms)``,

``t`` the time since onset, ``A`` (per patch ``p``, rank ``r``) from the stimulus code and the
patient, and ``B`` (per channel) from the channel embedding, the patient and the channel's offset
from the stimulating contact. Everything is smooth in the stimulus features, so gradients reach
amplitude, frequency, pulse width and contact position. It starts at zero (last layers zeroed).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["StimLockedHead", "frequency_hz"]

_LOG_FMAX = math.log(251.0)  # bfm_stim.space: log_frequency = log(1 + Hz) / log(1 + 250)
SLOW_TAUS_S = (0.02, 0.2)  # time constants of the onset transients, s


def frequency_hz(log_frequency: Tensor) -> Tensor:
    """Invert the ``log_frequency`` feature to Hz."""
    return torch.expm1(log_frequency * _LOG_FMAX)


class StimLockedHead(nn.Module):
    """Low-rank harmonic response to periodic stimulation.

    Args:
        feature_names: names of the stimulus features (must hold on, electrical, log_frequency, contact_x/y/z).
        d_code: width of the stimulus code; d_patient, d_channel: embedding widths.
        n_harmonics: harmonics of the rate; rank: time-course × spatial-pattern rank.
        patch_len: samples per patch; fs: sampling rate, Hz.
    """

    def __init__(self, feature_names: tuple[str, ...], d_code: int, d_patient: int, d_channel: int,
                 n_harmonics: int, rank: int, patch_len: int, fs: float, hidden: int = 64) -> None:
        super().__init__()
        ix = {n: i for i, n in enumerate(feature_names)}
        self.i_on, self.i_el, self.i_freq = ix["on"], ix["electrical"], ix["log_frequency"]
        self.i_contact = [ix["contact_x"], ix["contact_y"], ix["contact_z"]]
        self.K, self.R, self.L, self.fs = n_harmonics, rank, patch_len, float(fs)
        self.n_basis = 2 * n_harmonics + 1 + len(SLOW_TAUS_S)
        self.time_net = nn.Sequential(nn.Linear(d_code + d_patient + 2, hidden), nn.GELU(),
                                      nn.Linear(hidden, rank * self.n_basis))
        self.space_net = nn.Sequential(nn.Linear(d_channel + d_patient + 5, hidden), nn.GELU(),
                                       nn.Linear(hidden, rank))
        nn.init.zeros_(self.time_net[-1].weight)
        nn.init.zeros_(self.time_net[-1].bias)

    def _time_since_onset(self, on: Tensor) -> Tensor:
        """Samples since the onset of the current stimulus at each horizon sample, assuming onsets
        on patch boundaries (a stimulus on in patch 0 starts there): on (N, H) → (N, H * L), -1 where off."""
        n, h = on.shape
        act = on > 0
        count = torch.zeros(n, dtype=on.dtype, device=on.device)
        out = []
        for p in range(h):
            count = torch.where(act[:, p], count, torch.zeros_like(count))
            out.append(count.clone())
            count = count + 1
        t = (torch.stack(out, 1) * self.L)[..., None] + torch.arange(self.L, device=on.device, dtype=on.dtype)
        return torch.where(act[..., None], t, torch.full_like(t, -1.0)).reshape(n, h * self.L)

    def forward(self, stim: Tensor, code_fn, patient: Tensor, chan_emb: Tensor, positions: Tensor,
                t_on: Tensor | None = None) -> Tensor:
        """Args:
            stim: (N, H, F) per-patch stimulus features of the horizon (patch means: a patch the
                stimulus covers in part holds the features times the covered fraction).
            code_fn: the stimulus encoder (features (..., F) → code (..., d_code)).
            patient: (N or 1, d_patient).
            chan_emb: (N or 1, C, d_channel).
            positions: (N or 1, C, 3) electrode positions, m (NaN where unknown).
            t_on: (N, H * L) samples since the onset of the stimulus acting at each horizon sample
                (-1 where none acts); default: onsets on patch boundaries (see ``_time_since_onset``).

        Returns: (N, C, H * patch_len) normalised signal. One stimulus per horizon: its parameters
        are those of the first patch it covers most (divided by the covered fraction).
        """
        n, h, _ = stim.shape
        L = self.L
        on = stim[..., self.i_on]
        if t_on is None:
            t_on = self._time_since_onset(on.detach())
        t_on = t_on.to(stim.dtype)
        first = on.detach().argmax(1)  # (N,) the first patch the stimulus covers most
        rows = torch.arange(n, device=stim.device)
        frac = on[rows, first].clamp_min(1e-3)
        sel = stim[rows, first] / frac[:, None]  # (N, F) the stimulus' own features
        any_on = (on > 0).any(1).to(stim.dtype)
        code = code_fn(sel)  # (N, d_code)
        tp = (t_on.view(n, h, L)[..., L // 2].clamp_min(0.0) / self.fs)  # (N, H) s since onset, mid-patch
        pe = patient.reshape(-1, patient.shape[-1]).expand(n, -1)
        a_in = torch.cat([code[:, None].expand(-1, h, -1), pe[:, None].expand(-1, h, -1), tp[..., None],
                          (-4.0 * tp[..., None]).exp()], -1)
        A = self.time_net(a_in).view(n, h, self.R, self.n_basis)
        f = frequency_hz(sel[:, self.i_freq].clamp(0.0, 1.0))  # (N,) Hz
        k = torch.arange(1, self.K + 1, device=stim.device, dtype=stim.dtype)
        t = (t_on.clamp_min(0.0) / self.fs).view(n, h, L)  # s
        ph = 2 * math.pi * f[:, None, None, None] * k * t[..., None]  # (N, H, L, K)
        keep = ((k * f[:, None]) < 0.45 * self.fs).to(stim.dtype) * any_on[:, None]  # (N, K)
        live = (t_on.view(n, h, L) >= 0).to(stim.dtype)[..., None]  # (N, H, L, 1)
        slow = [torch.ones_like(t)] + [(-t / tau).exp() for tau in SLOW_TAUS_S]
        basis = torch.cat([ph.sin() * keep[:, None, None, :], ph.cos() * keep[:, None, None, :],
                           torch.stack(slow, -1) * any_on[:, None, None, None]], -1) * live  # (N, H, L, n_basis)
        U = torch.einsum("nhrk,nhlk->nrhl", A, basis).reshape(n, self.R, h * L)
        # spatial pattern: channel embedding, patient and the offset from the contact (cm)
        contact = sel[:, self.i_contact] * 0.01  # features are / 10 mm → m
        pos = torch.nan_to_num(positions, nan=0.0)
        d = (pos - contact[:, None, :]) / 0.01
        dist = d.norm(dim=-1, keepdim=True)
        c = d.shape[1]
        el = sel[:, self.i_el].reshape(n, 1, 1).expand(n, c, 1)
        ce = chan_emb.expand(n, -1, -1) if chan_emb.shape[0] == 1 else chan_emb
        pc = pe[:, None].expand(n, c, -1)
        B = self.space_net(torch.cat([ce, pc, d.clamp(-5, 5), 1.0 / (1.0 + dist), el], -1))  # (N, C, R)
        return torch.bmm(B, U)
