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

_LOG_FMAX = math.log(251.0)  # bfm_stim.stim_features: log_frequency = log(1 + Hz) / log(1 + 250)
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
        t0, _, live = self._patch_onsets(on)
        t = t0[..., None] + torch.arange(self.L, device=on.device, dtype=on.dtype)
        return torch.where(live[..., None], t, torch.full_like(t, -1.0)).reshape(n, h * self.L)

    def _patch_onsets(self, on: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The default onsets (on patch boundaries), per patch: on (N, H) → ``(t0, t_mid, live)``:
        samples since onset at the first and the middle sample of each patch (N, H) (``t_mid`` 0
        where off), and whether the stimulus acts there (N, H) bool. The count runs from patch 0
        or from the first on patch after the last off patch (an onset after an off patch restarts it)."""
        act = on > 0
        idx = torch.arange(on.shape[1], device=on.device)
        last_off = torch.where(act, torch.full_like(idx, -1), idx).cummax(1).values  # (N, H) last off patch ≤ p
        t0 = (idx - (last_off + 1)).to(on.dtype) * self.L
        return t0, torch.where(act, t0 + self.L // 2, torch.zeros_like(t0)), act

    def _split_onsets(self, t_on: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None] | None:
        """``t_on`` (N, H, L) as per-patch times where that is exact: ``(t0, t_mid, live, mask)`` as
        in :meth:`_patch_onsets`, with ``mask`` (N, H * L) the samples where a stimulus acts when some
        patch is only partly covered (else None). Exact when each patch's live samples are
        ``t0 + l`` (one onset at most per patch, counted in samples); None otherwise."""
        n, h, L = t_on.shape
        live_s = t_on >= 0
        dt = t_on - torch.arange(L, device=t_on.device, dtype=t_on.dtype)
        t0 = dt.masked_fill(~live_s, -math.inf).amax(-1)  # (N, H)
        if not bool(((dt == t0[..., None]) | ~live_s).all()):
            return None
        live = live_s.any(-1)
        mask = live_s.reshape(n, h * L) if bool((live_s != live[..., None]).any()) else None
        return t0.masked_fill(~live, 0.0), t_on[..., L // 2].clamp_min(0.0), live, mask

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
        on = stim[..., self.i_on]
        if t_on is None:
            split = (*self._patch_onsets(on.detach()), None)
        else:
            t_on = t_on.to(stim.dtype).view(n, h, self.L)
            split = self._split_onsets(t_on)  # None: not per patch, the full basis is needed
        first = on.detach().argmax(1)  # (N,) the first patch the stimulus covers most
        rows = torch.arange(n, device=stim.device)
        frac = on[rows, first].clamp_min(1e-3)
        sel = stim[rows, first] / frac[:, None]  # (N, F) the stimulus' own features
        any_on = (on > 0).any(1).to(stim.dtype)
        pe = patient.reshape(-1, patient.shape[-1])  # (N or 1, d_patient)
        t_mid = t_on[..., self.L // 2].clamp_min(0.0) if split is None else split[1]  # (N, H) samples
        A = self._coefficients(code_fn(sel), pe, t_mid / self.fs)  # (N, H, R, n_basis)
        f = frequency_hz(sel[:, self.i_freq].clamp(0.0, 1.0))  # (N,) Hz
        if split is None:
            U = self._time_courses_direct(A, f, any_on, t_on)
        else:
            t0, _, live, mask = split
            U = self._time_courses(A, f, any_on, t0, live, mask)  # (N, R, H * L)
        B = self._patterns(sel, pe, chan_emb, positions)  # (N, C, R)
        return torch.bmm(B, U)

    def _coefficients(self, code: Tensor, pe: Tensor, tp: Tensor) -> Tensor:
        """``time_net`` on [code, patient, tp, exp(-4 tp)] per patch: code (N, d_code), pe (N or 1,
        d_patient), tp (N, H) s since onset at mid-patch → A (N, H, R, n_basis).

        The first layer is applied by parts (slices of its weight): the code and the patient once
        per candidate, only the two time inputs per patch.
        """
        n, h = tp.shape
        lin0, act, lin1 = self.time_net
        dc, dp = code.shape[-1], pe.shape[-1]
        w = lin0.weight  # (hidden, d_code + d_patient + 2)
        per_cand = nn.functional.linear(code, w[:, :dc], lin0.bias) + nn.functional.linear(pe, w[:, dc:dc + dp])
        x = torch.stack([tp, (-4.0 * tp).exp()], -1)  # (N, H, 2)
        pre = torch.baddbmm(per_cand[:, None], x, w[:, dc + dp:].T.expand(n, -1, -1))  # (N, H, hidden)
        return lin1(act(pre)).view(n, h, self.R, self.n_basis)

    def _time_courses(self, A: Tensor, f: Tensor, any_on: Tensor, t0: Tensor, live: Tensor,
                      mask: Tensor | None = None) -> Tensor:
        """Per-rank time courses ``U[n, r, t] = Σ_j A[n, p(t), r, j] φ_j(t)`` for times since onset
        ``t0 + l`` (sample ``l`` of a patch), without building the (N, H, L, n_basis) basis.

        Args:
            A: (N, H, R, n_basis) per-patch coefficients; f: (N,) rate, Hz; any_on: (N,) 1 if the
                stimulus acts in the horizon; t0: (N, H) samples since onset at each patch's first
                sample; live: (N, H) bool, a stimulus acts in the patch; mask: (N, H * L) bool, the
                samples where it acts, if not all of each live patch (see :meth:`_split_onsets`).

        Returns: (N, R, H * L). By angle addition each harmonic at ``t0 + l`` is a rotation by the
        phase at ``t0`` (folded into the coefficients, as complex numbers: ``(A_cos + i A_sin)
        e^{-i a}``) of ``cos, sin`` at ``l`` shared by all patches; each decay factors alike.
        """
        n, h = t0.shape
        K, L = self.K, self.L
        A = A.transpose(1, 2).contiguous()  # (N, R, H, n_basis): U's order
        live = live.to(A.dtype)
        k = torch.arange(1, K + 1, device=f.device, dtype=f.dtype)
        keep = ((k * f[:, None]) < 0.45 * self.fs).to(f.dtype) * any_on[:, None]  # (N, K)
        w = (2 * math.pi / self.fs) * f.double()[:, None] * k.double()  # (N, K) rad / sample
        a = w[:, None] * t0.double()[..., None]  # (N, H, K) rad at each patch's first sample (float64: long onsets)
        mag = (keep[:, None] * live[..., None]).double()
        rot = torch.complex((mag * a.cos()).to(A.dtype), (-mag * a.sin()).to(A.dtype))  # (N, H, K) e^{-i a}, masked
        harm = torch.complex(A[..., K:2 * K], A[..., :K]) * rot[:, None]  # (N, R, H, K) (A_c + i A_s) e^{-i a}
        lag = torch.arange(L, device=f.device, dtype=A.dtype)
        b = w.to(A.dtype)[:, None] * lag[:, None]  # (N, L, K) rad, the phase at sample l of a patch
        # Re[(A_c + i A_s) e^{-ia}] cos b + Im[...] sin b = A_c cos(a + b) + A_s sin(a + b)
        U = torch.bmm(torch.view_as_real(harm).view(n, self.R * h, 2 * K),
                      torch.stack([b.cos(), b.sin()], -1).view(n, L, 2 * K).transpose(1, 2))  # (N, R * H, L)
        taus = torch.tensor(SLOW_TAUS_S, device=f.device, dtype=A.dtype) * self.fs  # samples
        decay = torch.cat([torch.ones_like(t0)[..., None], (-t0[..., None] / taus).exp()], -1)  # (N, H, 1 + n_slow)
        slow = A[..., 2 * K:] * (decay * (live * any_on[:, None])[..., None])[:, None]  # (N, R, H, 1 + n_slow)
        per_lag = torch.cat([torch.ones_like(lag)[:, None], (-lag[:, None] / taus).exp()], -1)  # (L, 1 + n_slow)
        U = U.view(-1, L).addmm_(slow.view(-1, slow.shape[-1]), per_lag.T).view(n, self.R, h * L)
        return U if mask is None else U * mask[:, None].to(U.dtype)

    def _time_courses_direct(self, A: Tensor, f: Tensor, any_on: Tensor, t_on: Tensor) -> Tensor:
        """:meth:`_time_courses` for any ``t_on`` (N, H, L) samples since onset (-1 where none acts),
        from the full basis (N, H, L, n_basis)."""
        n, h, L = t_on.shape
        k = torch.arange(1, self.K + 1, device=f.device, dtype=f.dtype)
        t = t_on.clamp_min(0.0) / self.fs  # (N, H, L) s
        ph = 2 * math.pi * f[:, None, None, None] * k * t[..., None]  # (N, H, L, K)
        keep = ((k * f[:, None]) < 0.45 * self.fs).to(f.dtype) * any_on[:, None]  # (N, K)
        live = (t_on >= 0).to(A.dtype)[..., None]  # (N, H, L, 1)
        slow = [torch.ones_like(t)] + [(-t / tau).exp() for tau in SLOW_TAUS_S]
        basis = torch.cat([ph.sin() * keep[:, None, None, :], ph.cos() * keep[:, None, None, :],
                           torch.stack(slow, -1) * any_on[:, None, None, None]], -1) * live  # (N, H, L, n_basis)
        return torch.einsum("nhrk,nhlk->nrhl", A, basis).reshape(n, self.R, h * L)

    def _patterns(self, sel: Tensor, pe: Tensor, chan_emb: Tensor, positions: Tensor) -> Tensor:
        """Spatial patterns ``B`` (N, C, R): ``space_net`` on [channel embedding, patient, offset from
        the contact (cm, clipped to ±5), 1 / (1 + distance), electrical].

        Args:
            sel: (N, F) the stimulus' features; pe: (N or 1, d_patient); chan_emb: (N or 1, C, d_channel);
                positions: (N or 1, C, 3) m (NaN where unknown).

        The first layer is applied by parts (slices of its weight): the channel and patient part
        once when they are shared by all candidates, only the 5 geometric inputs per candidate.
        """
        n = sel.shape[0]
        lin0, act, lin1 = self.space_net
        dc, dp = chan_emb.shape[-1], pe.shape[-1]
        w = lin0.weight  # (hidden, d_channel + d_patient + 5)
        contact = sel[:, self.i_contact] * 0.01  # features are / 10 mm → m
        pos = torch.nan_to_num(positions, nan=0.0)
        d = (pos - contact[:, None, :]) / 0.01  # (N, C, 3) cm
        dist = d.norm(dim=-1, keepdim=True)
        el = sel[:, self.i_el].reshape(n, 1, 1).expand(-1, d.shape[1], 1)
        geo = torch.cat([d.clamp(-5, 5), 1.0 / (1.0 + dist), el], -1)  # (N, C, 5)
        shared = (nn.functional.linear(chan_emb, w[:, :dc], lin0.bias)
                  + nn.functional.linear(pe, w[:, dc:dc + dp])[:, None])  # (N or 1, C, hidden)
        pre = torch.baddbmm(shared, geo, w[:, dc + dp:].T.expand(n, -1, -1))  # (N, C, hidden)
        return lin1(act(pre))
