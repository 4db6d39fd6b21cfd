"""Integration kernel of the cortex–STN–GPe loops (numba, batched over patients × trials).

Each row has ``L`` parallel basal-ganglia territories (motor, associative, limbic), each a
cortex E/I pair driving an STN–GPe pair with transmission delays held in a ring buffer. The
rates are integrated with the exponential Euler scheme (exact for inputs held over a step), so
1 ms steps are stable. Stimulation pulses drive STN through a first-order synaptic filter.
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, njit, prange

# params[b, k]
(P_TS, P_TG, P_TE, P_TI, P_MS, P_BS, P_MG, P_BG, P_ME, P_BE, P_MI, P_BI, P_C, P_STR,
 P_WCC, P_NC, P_NS, P_TSTIM, P_WLAT) = range(19)
N_PARAMS = 19
# delays[b, k] in samples
D_SG, D_GS, D_GG, D_CS, D_SC, D_CC = range(6)
HIST = 32  # ring-buffer length, samples (> longest delay)


@njit(cache=True)
def _F(x: float, m: float, base: float) -> float:
    z = -4.0 * x / m
    if z > 700.0:
        return 0.0
    return m / (1.0 + (m - base) / base * math.exp(z))


def _bg_block(state, hist, pos, params, weights, delays, noise, kicks, dt, src):
    """Advance the batch by ``T = noise.shape[1]`` samples, in place.

    Args:
        state: (B, 5, L) float64 — S, G, E, I rates (spikes/s) and the stimulation filter u.
        hist: (B, HIST, 4, L) float64 — ring buffer of past S, G, E, I; updated in place.
        pos: (B,) int64 — ring-buffer write position (absolute sample count); updated in place.
        params: (B, N_PARAMS) float64 — see the ``P_*`` indices.
        weights: (B, 6, L) float64 — w_GS, w_SG, w_GG, w_CS, w_SC, w_CC per territory.
        delays: (B, 6) int64 — delays in samples (``D_*`` indices), each in [1, HIST).
        noise: (B, T, 2, L) float64 — standard normal input noise to cortex (0) and STN (1).
        kicks: (B, T, L) float64 — stimulation pulses × recruitment per territory.
        dt: step, s.
        src: (B, T, 3, L) float64 — output: S, G, E rate deviations from baseline, spikes/s.
    """
    nb = state.shape[0]
    nl = state.shape[2]
    nt = noise.shape[1]
    for b in prange(nb):
        p = params[b]
        w = weights[b]
        d = delays[b]
        h = hist[b]
        x = state[b]
        es = math.exp(-dt / p[P_TS])
        eg = math.exp(-dt / p[P_TG])
        ee = math.exp(-dt / p[P_TE])
        ei = math.exp(-dt / p[P_TI])
        eu = math.exp(-dt / p[P_TSTIM])
        wl = p[P_WLAT]
        for t in range(nt):
            k = pos[b]
            # delayed values (ring buffer holds samples k-1, k-2, ...)
            gsum = 0.0
            for l in range(nl):
                gsum += h[(k - d[D_GG]) % HIST, 1, l]
            for l in range(nl):
                s_sg = h[(k - d[D_SG]) % HIST, 0, l]
                g_gs = h[(k - d[D_GS]) % HIST, 1, l]
                g_gg = h[(k - d[D_GG]) % HIST, 1, l]
                e_cs = h[(k - d[D_CS]) % HIST, 2, l]
                s_sc = h[(k - d[D_SC]) % HIST, 0, l]
                i_cc = h[(k - d[D_CC]) % HIST, 3, l]
                e_cc = h[(k - d[D_CC]) % HIST, 2, l]
                lat = (gsum - g_gg) / max(nl - 1, 1)
                in_s = (w[3, l] * e_cs - w[0, l] * g_gs + x[4, l]
                        + p[P_NS] * noise[b, t, 1, l])
                in_g = w[1, l] * s_sg - w[2, l] * g_gg - wl * lat - p[P_STR]
                in_e = -w[4, l] * s_sc - w[5, l] * i_cc + p[P_C] + p[P_NC] * noise[b, t, 0, l]
                in_i = w[5, l] * e_cc
                f0 = _F(in_s, p[P_MS], p[P_BS])
                x[0, l] = f0 + (x[0, l] - f0) * es
                f1 = _F(in_g, p[P_MG], p[P_BG])
                x[1, l] = f1 + (x[1, l] - f1) * eg
                f2 = _F(in_e, p[P_ME], p[P_BE])
                x[2, l] = f2 + (x[2, l] - f2) * ee
                f3 = _F(in_i, p[P_MI], p[P_BI])
                x[3, l] = f3 + (x[3, l] - f3) * ei
                x[4, l] = x[4, l] * eu + kicks[b, t, l] / p[P_TSTIM]
            for l in range(nl):
                for q in range(4):
                    h[k % HIST, q, l] = x[q, l]
                src[b, t, 0, l] = x[0, l] - p[P_BS]
                src[b, t, 1, l] = x[1, l] - p[P_BG]
                src[b, t, 2, l] = x[2, l] - p[P_BE]
            pos[b] = k + 1


bg_block_serial, bg_block_parallel = kernel_pair(_bg_block, "bg_block")


def bg_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (bg_block_parallel if args[0].shape[0] >= 8 else bg_block_serial)(*args)
