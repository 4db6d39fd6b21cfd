"""From sources to electrodes: lead field, background activity, noise, line noise, artifact.

``v_c(t) = Σ_m L[c, m] s_m(t) + pink_c(t) + white_c(t) + line_c(t) + artifact_c(t)`` in µV.
The lead field is a smooth point-source falloff ``g / (1 + (d / λ)²)`` whose space constant ``λ``
depends on the channel type (depth/DBS contacts see millimetres, ECoG about a centimetre, scalp
EEG several centimetres: Buzsáki, Anastassiou & Koch 2012, Nat. Rev. Neurosci. 13:407–420).
The 1/f background is a sum of first-order low-pass processes with log-spaced time constants
and gains ∝ √τ, which has a ~1/f spectrum between their corner frequencies. All noise comes from
counter-based generator inside the kernel (:mod:`simulators._rng`): each value is a function of
the stream, the absolute sample index and the channel, so it does not depend on how a run is chunked.
"""

from __future__ import annotations

import hashlib

import numpy as np

from simulators._jit import kernel_pair, prange
from simulators._rng import normal_at, sample_seed

__all__ = ["SEGMENT", "lead_field", "PINK_TAUS_S", "pink_coefficients", "obs_block"]

SEGMENT = 1000  # most samples per kernel call (bounds temporary memory; results do not depend on it)
PINK_TAUS_S = (0.002, 0.008, 0.032, 0.128, 0.512)
SPACE_CONSTANT_MM = {"dbs": 2.5, "seeg": 3.0, "ecog": 10.0, "eeg": 35.0}


def _tag(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def lead_field(source_pos_mm: np.ndarray, channel_pos_mm: np.ndarray, channel_types: list[str],
               gains: np.ndarray) -> np.ndarray:
    """(n_channels, n_sources) gains, µV per source unit, from positions (mm) and channel types."""
    d = np.linalg.norm(channel_pos_mm[:, None, :] - source_pos_mm[None, :, :], axis=-1)
    lam = np.array([SPACE_CONSTANT_MM[t] for t in channel_types])[:, None]
    return gains[None, :] / (1.0 + (d / lam) ** 2)


def pink_coefficients(fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(poles, gains) of the 1/f background filters at ``fs`` Hz."""
    taus = np.asarray(PINK_TAUS_S)
    a = np.exp(-1.0 / (fs * taus))
    # Each branch y = a y + sqrt(1 - a²) ξ has unit variance; weight by sqrt(τ) for ~1/f.
    g = np.sqrt(taus / taus.max())
    return a, g / np.sqrt((g**2).sum())


def _obs_block(src, nsrc, lead, dc, pink_state, pink_a, pink_g, noise_key, pink_sd, white_sd, line_amp,
               line_phase, line_w, t0, pulses, art_gain, art_state, art_decay, out):
    """Project sources to channels and add background, noise, line noise and artifact, in place.

    Args:
        src: (B, T, M) float64 source signals.
        nsrc: (B,) int64 sources used per row (the rest is padding).
        lead: (B, C, M) float64 lead field, µV per source unit.
        dc: (B, C) float64 offset removing the sources' resting level (AC coupling), µV.
        pink_state: (B, C, P) float64 state of the 1/f filters (updated).
        pink_a, pink_g: (P,) poles and gains.
        noise_key: (B,) uint64 observation-noise stream per row; channel ``c`` of sample ``k`` uses
            normals ``2c`` (1/f drive) and ``2c + 1`` (white) of sample ``k`` (:mod:`simulators._rng`).
        pink_sd, white_sd, line_amp, line_phase: (B, C) µV, µV, µV, rad.
        line_w: (B,) angular line frequency per row, rad/sample.
        t0: absolute index of the first sample.
        pulses: (B, T) stimulation pulses per sample; art_gain (B, C) µV per pulse.
        art_state: (B, C) artifact state (updated); art_decay: per-sample decay factor.
        out: (B, C, T) float32 output, µV.
    """
    nb = src.shape[0]
    nt = src.shape[1]
    nc = lead.shape[1]
    npk = pink_a.shape[0]
    for b in prange(nb):
        nm = nsrc[b]
        pink_s = np.sqrt(1.0 - pink_a**2)
        lc = np.empty(nc)
        ls = np.empty(nc)
        for c in range(nc):
            lc[c] = line_amp[b, c] * np.cos(line_phase[b, c])
            ls[c] = line_amp[b, c] * np.sin(line_phase[b, c])
        # lead field transposed (M, C): the projection runs over m for all channels at once
        # (independent sums, SIMD across channels, each in the same m order)
        lt = np.empty((nm, nc))
        for c in range(nc):
            for m in range(nm):
                lt[m, c] = lead[b, c, m]
        # channel-contiguous working copies (SIMD across channels); written back at the end
        v = np.empty(nc)
        xi = np.empty(nc)
        wn = np.empty(nc)
        pk = np.empty(nc)
        ps = np.empty((npk, nc))
        for c in range(nc):
            for q in range(npk):
                ps[q, c] = pink_state[b, c, q]
        ast = art_state[b].copy()
        ag = art_gain[b]
        dcb = dc[b]
        psd = pink_sd[b]
        wsd = white_sd[b]
        key = noise_key[b]
        for t in range(nt):
            ph = line_w[b] * (t0 + t)
            sp = np.sin(ph)
            cp = np.cos(ph)
            seed = sample_seed(key, t0 + t)
            for c in range(nc):
                xi[c] = normal_at(seed, 2 * c)
                wn[c] = normal_at(seed, 2 * c + 1)
            for c in range(nc):
                v[c] = dcb[c]
                pk[c] = 0.0
            for m in range(nm):
                sm = src[b, t, m]
                for c in range(nc):
                    v[c] += lt[m, c] * sm
            for q in range(npk):
                aq = pink_a[q]
                sq = pink_s[q]
                gq = pink_g[q]
                for c in range(nc):
                    s = aq * ps[q, c] + sq * xi[c]
                    ps[q, c] = s
                    pk[c] += gq * s
            pu = pulses[b, t]
            for c in range(nc):
                ast[c] = ast[c] * art_decay + ag[c] * pu
                out[b, c, t] = v[c] + psd[c] * pk[c] + wsd[c] * wn[c] + ast[c] + sp * lc[c] + cp * ls[c]
        for c in range(nc):
            art_state[b, c] = ast[c]
            for q in range(npk):
                pink_state[b, c, q] = ps[q, c]


obs_block_serial, obs_block_parallel = kernel_pair(_obs_block, "obs_block")


def obs_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (obs_block_parallel if args[0].shape[0] >= 8 else obs_block_serial)(*args)
