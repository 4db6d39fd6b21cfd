"""From sources to electrodes: lead field, background activity, noise, line noise, artifact.

``v_c(t) = Σ_m L[c, m] s_m(t) + pink_c(t) + white_c(t) + line_c(t) + artifact_c(t)`` in µV.
The lead field is a smooth point-source falloff ``g / (1 + (d / λ)²)`` whose space constant ``λ``
depends on the channel type (depth/DBS contacts see millimetres, ECoG about a centimetre, scalp
EEG several centimetres: Buzsáki, Anastassiou & Koch 2012, Nat. Rev. Neurosci. 13:407–420).
The 1/f background is a sum of first-order low-pass processes with log-spaced time constants
and gains ∝ √τ, which has a ~1/f spectrum between their corner frequencies. All noise comes from
counter-based blocks (see :func:`noise_block`), so it does not depend on how a run is chunked.
"""

from __future__ import annotations

import hashlib

import numpy as np

from simulators._jit import kernel_pair, prange

__all__ = ["NOISE_BLOCK", "noise_block", "lead_field", "PINK_TAUS_S", "pink_coefficients", "obs_block"]

NOISE_BLOCK = 1000  # samples per counter-based noise block
PINK_TAUS_S = (0.002, 0.008, 0.032, 0.128, 0.512)
SPACE_CONSTANT_MM = {"dbs": 2.5, "seeg": 3.0, "ecog": 10.0, "eeg": 35.0}


def _tag(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def noise_block(family: str, stream: str, seed: int, trial: int, block: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise (``NOISE_BLOCK``, *shape) for one block, from its counter alone."""
    rng = np.random.default_rng([_tag(family), _tag(stream), int(seed), int(trial) % 2**63, int(block)])
    return rng.standard_normal((NOISE_BLOCK, *shape), dtype=np.float32)


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


def _obs_block(src, nsrc, lead, dc, pink_state, pink_a, pink_g, noise, pink_sd, white_sd, line_amp, line_phase,
              line_w, t0, pulses, art_gain, art_state, art_decay, out):
    """Project sources to channels and add background, noise, line noise and artifact, in place.

    Args:
        src: (B, T, M) float64 source signals.
        nsrc: (B,) int64 sources used per row (the rest is padding).
        lead: (B, C, M) float64 lead field, µV per source unit.
        dc: (B, C) float64 offset removing the sources' resting level (AC coupling), µV.
        pink_state: (B, C, P) float64 state of the 1/f filters (updated).
        pink_a, pink_g: (P,) poles and gains.
        noise: (B, T, 2, C) float32 standard normals (1/f drive, white).
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
        for t in range(nt):
            ph = line_w[b] * (t0 + t)
            sp = np.sin(ph)
            cp = np.cos(ph)
            for c in range(nc):
                v = dc[b, c]
                for m in range(nm):
                    v += lead[b, c, m] * src[b, t, m]
                xi = noise[b, t, 0, c]
                pk = 0.0
                for q in range(npk):
                    s = pink_a[q] * pink_state[b, c, q] + pink_s[q] * xi
                    pink_state[b, c, q] = s
                    pk += pink_g[q] * s
                art_state[b, c] = art_state[b, c] * art_decay + art_gain[b, c] * pulses[b, t]
                v += pink_sd[b, c] * pk + white_sd[b, c] * noise[b, t, 1, c] + art_state[b, c]
                v += sp * lc[c] + cp * ls[c]
                out[b, c, t] = v

obs_block_serial, obs_block_parallel = kernel_pair(_obs_block, "obs_block")


def obs_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (obs_block_parallel if args[0].shape[0] >= 8 else obs_block_serial)(*args)
