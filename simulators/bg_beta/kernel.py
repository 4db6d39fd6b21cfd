"""Integration kernel of the cortex–STN–GPe loops (numba, batched over patients × trials).

Each row has ``L`` parallel basal-ganglia territories (motor, associative, limbic), each a
cortex E/I pair driving an STN–GPe pair with transmission delays held in a ring buffer. The
rates are integrated with the exponential Euler scheme (exact for inputs held over a step), so
1 ms steps are stable.

Electrical stimulation acts on a territory through two pathways (``kicks`` carry the recruited
fraction ρ of the territory in each sample that holds a pulse):

* **Afferent (orthodromic) synaptic input.** Each pulse activates the afferent terminals of the
  recruited fraction and drives STN through a first-order synaptic filter. These synapses
  depress (Tsodyks & Markram 1997, PNAS 94:719–723; resources ``x`` used by a fraction ``U``
  per pulse, recovering with ``τ_rec``), so at ≥ 100 Hz the transmitted volleys saturate at
  about ``1 / τ_rec`` fresh-synapse equivalents per second and almost no tonic excitation is added, while a 10–20 Hz train delivers large
  phasic volleys that entrain the loop (Rosenbaum et al. 2014, Neurobiol. Dis. 62:86–99;
  Milosevic et al. 2018, Brain 141:177–190: synaptic depression grows with stimulation rate).
* **Efferent informational lesion.** The axons of recruited STN neurons fire locked to the
  pulses (McIntyre et al. 2004, J. Neurophysiol. 91:1457–1469; Grill, Snyder & Miocinovic 2004,
  NeuroReport 15:1137–1140). An intrinsic, beta-modulated spike of such a neuron escapes only if
  the neuron recovers from the previous pulse (collision, refractoriness, post-pulse suppression
  and the HFS-induced block of its voltage-gated currents: Beurrier et al. 2001, J. Neurophysiol.
  85:1351–1356; Filali et al. 2004, Exp. Brain Res. 156:274–281) before the next one arrives, so a
  neuron with recovery time ``T_i`` is fully pulse-driven once ``1 / f < T_i``. With ``T_i``
  log-normal around ``T_50`` (spread ``σ``), the blocked fraction of a territory's output is
  ``b = ρ · Φ(ln(f · T_50) / σ)`` — nil at 10–20 Hz, most at ≥ 100 Hz, the sigmoidal frequency
  dependence of clinical benefit (Rizzone et al. 2001, J. Neurol. Neurosurg. Psychiatry
  71:215–219; Moro et al. 2002, Neurology 59:706–713). ``f`` is a filtered pulse rate (state), so
  the block builds up and fades over tens of ms. GPe and the cortical return path receive
  ``(1 - b) · S + b · S_tonic`` from STN: the blocked part carries a tonic, depressed,
  pulse-locked rate instead of the oscillation (Hashimoto et al. 2003, J. Neurosci.
  23:1916–1923: regular, stimulus-locked pallidal firing under STN HFS). High-frequency trains
  with enough recruitment thus open the STN–GPe and cortico-basal-ganglia loops and beta
  collapses, in proportion to the recruited fraction (a dose–response in amplitude); 10–20 Hz
  trains block essentially nothing (Φ < 1e-3) and only entrain the loop through the afferent volleys.

Slow loop-gain modulation (``bg-beta-v1``; off in v0). Parkinsonian beta comes in bursts whose
durations (100 ms to > 1 s) and growth of amplitude with duration (Tinkhauser et al. 2017, Brain
140:1053–1067 and 140:2968–2981) follow the slow drive of the loop, not fast noise: beta bursts
build up across the cortex–STN–GPe network with cortex leading (Cagnan et al. 2019, PNAS
116:16095–16104), and OFF dopamine the beta generator sits near and transiently beyond an
oscillatory instability, which stretches the bursts (Duchet et al. 2021, PLoS Comput. Biol.
17:e1009116; West et al. 2023, Prog. Neurobiol. 221:102397: burst statistics set by slowly
modulated network gain). Each territory's loop gain — the hyperdirect and STN–GPe weights
``w_CS``, ``w_GS``, ``w_SG`` together — is multiplied by ``exp(m)``, ``m`` an Ornstein–Uhlenbeck
process (s.d. ``σ_m``, time constant ``τ_m`` of a few hundred ms, i.e. fluctuations at
0.1–2 Hz) drawn from its own noise elements, so the loop drifts back and forth across its Hopf
bifurcation: beta waxes while the gain is above it and the longer the excursion, the larger the
oscillation grows. Stimulation acts as above (the informational lesion opens the loop at any gain).
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, njit, prange
from simulators._rng import normal_at, sample_seed

# params[b, k]
(P_TS, P_TG, P_TE, P_TI, P_MS, P_BS, P_MG, P_BG, P_ME, P_BE, P_MI, P_BI, P_C, P_STR,
 P_WCC, P_NC, P_NS, P_TSTIM, P_WLAT, P_KICK, P_USE, P_TREC, P_T50, P_BSPREAD, P_TRATE, P_STONIC) = range(26)
N_PARAMS = 26
# state[b, k, l]
(X_S, X_G, X_E, X_I, X_U, X_RATE, X_RHO, X_RES, X_MOD) = range(9)
N_STATE = 9
# mod[b, k]: slow loop-gain modulation (bg-beta-v1; zeros = off, the v0 physics bit for bit)
M_SD, M_TAU = range(2)
N_MOD = 2
# delays[b, k] in samples
D_SG, D_GS, D_GG, D_CS, D_SC, D_CC = range(6)
HIST = 32  # ring-buffer length, samples (> longest delay)


@njit(cache=True)
def _F(x: float, m: float, base: float) -> float:
    z = -4.0 * x / m
    if z > 700.0:
        return 0.0
    return m / (1.0 + (m - base) / base * math.exp(z))


def _bg_block(state, hist, pos, params, weights, delays, mod, noise_key, t0, kicks, dt, src):
    """Advance the batch by ``T = kicks.shape[1]`` samples, in place.

    Args:
        state: (B, N_STATE, L) float64 — S, G, E, I rates (spikes/s), the afferent stimulation
            filter u (spikes/s), the filtered pulse rate (Hz), the latched recruited
            fraction ρ, the afferent synaptic resources x in [0, 1] and the log loop-gain
            modulation m (``X_*`` indices).
        hist: (B, HIST, 4, L) float64 — ring buffer of past STN output (after the informational
            lesion), G, E, I; updated in place.
        pos: (B,) int64 — ring-buffer write position (absolute sample count); updated in place.
        params: (B, N_PARAMS) float64 — see the ``P_*`` indices.
        weights: (B, 6, L) float64 — w_GS, w_SG, w_GG, w_CS, w_SC, w_CC per territory.
        delays: (B, 6) int64 — delays in samples (``D_*`` indices), each in [1, HIST).
        mod: (B, N_MOD) float64 — s.d. σ_m (dimensionless, log gain) and time constant τ_m (s)
            of the loop-gain modulation; σ_m = 0 switches it off (v0).
        noise_key: (B,) uint64 process-noise stream per row; sample ``k`` gives territory ``l``
            standard normals ``l`` (cortex), ``L + l`` (STN) and ``2L + l`` (gain modulation)
            (:mod:`simulators._rng`).
        t0: absolute sample index of the first step (the noise counter).
        kicks: (B, T, L) float64 — pulses in the sample × recruited fraction ρ per territory.
        dt: step, s.
        src: (B, T, 3, L) float64 — output: S, G, E rate deviations from baseline, spikes/s.
    """
    nb = state.shape[0]
    nl = state.shape[2]
    nt = kicks.shape[1]
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
        er = math.exp(-dt / p[P_TRATE])
        erec = math.exp(-dt / p[P_TREC])
        wl = p[P_WLAT]
        msd = mod[b, M_SD]
        em = 0.0
        mkick = 0.0
        if msd > 0.0:
            em = math.exp(-dt / mod[b, M_TAU])
            mkick = msd * math.sqrt(1.0 - em * em)
        key = noise_key[b]
        for t in range(nt):
            k = pos[b]
            seed = sample_seed(key, t0 + t)
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
                w_gs, w_sg, w_cs = w[0, l], w[1, l], w[3, l]
                if msd > 0.0:
                    x[X_MOD, l] = x[X_MOD, l] * em + mkick * normal_at(seed, 2 * nl + l)
                    gain = math.exp(x[X_MOD, l])
                    w_gs *= gain
                    w_sg *= gain
                    w_cs *= gain
                in_s = (w_cs * e_cs - w_gs * g_gs + x[X_U, l]
                        + p[P_NS] * normal_at(seed, nl + l))
                in_g = w_sg * s_sg - w[2, l] * g_gg - wl * lat - p[P_STR]
                in_e = -w[4, l] * s_sc - w[5, l] * i_cc + p[P_C] + p[P_NC] * normal_at(seed, l)
                in_i = w[5, l] * e_cc
                f0 = _F(in_s, p[P_MS], p[P_BS])
                x[X_S, l] = f0 + (x[X_S, l] - f0) * es
                f1 = _F(in_g, p[P_MG], p[P_BG])
                x[X_G, l] = f1 + (x[X_G, l] - f1) * eg
                f2 = _F(in_e, p[P_ME], p[P_BE])
                x[X_E, l] = f2 + (x[X_E, l] - f2) * ee
                f3 = _F(in_i, p[P_MI], p[P_BI])
                x[X_I, l] = f3 + (x[X_I, l] - f3) * ei
                # stimulation: depressing afferent volley, pulse-rate tracker, informational lesion
                kq = kicks[b, t, l]
                x[X_RES, l] = 1.0 - (1.0 - x[X_RES, l]) * erec
                vol = 0.0
                if kq > 0.0:
                    vol = p[P_USE] * x[X_RES, l]
                    x[X_RES, l] -= vol
                    x[X_RHO, l] = kq
                x[X_U, l] = x[X_U, l] * eu + p[P_KICK] * kq * vol / p[P_TSTIM]
                x[X_RATE, l] = x[X_RATE, l] * er + (1.0 if kq > 0.0 else 0.0) / p[P_TRATE]
                blk = 0.0
                if x[X_RATE, l] > 1e-3:
                    z = math.log(x[X_RATE, l] * p[P_T50]) / p[P_BSPREAD]
                    blk = x[X_RHO, l] * 0.5 * math.erfc(-z * 0.7071067811865476)
                h[k % HIST, 0, l] = (1.0 - blk) * x[X_S, l] + blk * p[P_STONIC]
            for l in range(nl):
                for q in range(1, 4):
                    h[k % HIST, q, l] = x[q, l]
                src[b, t, 0, l] = x[X_S, l] - p[P_BS]
                src[b, t, 1, l] = x[X_G, l] - p[P_BG]
                src[b, t, 2, l] = x[X_E, l] - p[P_BE]
            pos[b] = k + 1


bg_block_serial, bg_block_parallel = kernel_pair(_bg_block, "bg_block")


def bg_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (bg_block_parallel if args[0].shape[0] >= 8 else bg_block_serial)(*args)
