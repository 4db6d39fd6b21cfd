"""Integration kernel of the Wendling hippocampal network (numba, batched over patients × trials).

State per node: the five post-synaptic potentials of the Wendling et al. (2002) population and
their derivatives (``y0 … y4``, ``y5 … y9``: pyramidal output onto interneurons, excitatory input,
slow dendritic inhibition and fast somatic inhibition onto pyramidal cells, and slow inhibition
onto the fast interneurons), plus four stimulation states: ``sa`` and ``sb``, the GABA_A and GABA_B
activations evoked by pulses, ``xb``, the available fraction of the GABA store behind the GABA_B
response, and ``k``, the activity-dependent extracellular-potassium depolarisation
(:mod:`simulators.wendling.params`).

Scheme: every synapse is the second-order filter ``y'' = W w u − 2 w y' − w² y`` (gain W, rate w,
firing-rate input u). With u held over a sub-step its update is exact (exponential integrator), so
the linear part is unconditionally stable whatever the step; the only error is holding the sigmoid
inputs over the sub-step. The fastest synapse (somatic GABA_A, w = 500 /s, 2 ms) is thus integrated
exactly for its input; what holding the input costs was measured against finer steps
(:data:`simulators.wendling.params.SUBSTEPS`: 1 ms steps bias the spike rate by ≈ 4 % against eight
sub-steps and leave the background spectrum unchanged), so ``n_sub`` defaults to 1. Extrinsic input
(noise) and the network coupling are held over the 1 ms sample, i.e. the coupling acts with a
≤ 1 ms conduction delay. All sigmoids of a sub-step are evaluated together by the vectorisable
:func:`simulators._vmath.vexp`.

Pulses act in the sample in which they fall (recruited fraction ρ): ``sa += κ_A ρ (1 − sa)``,
``sb += κ_B ρ xb (1 − sb)`` with the store ``xb`` depleting by the same release, and
``k += κ_K ρ (1 − k)``; between pulses ``sa``, ``sb`` and ``k`` decay and ``xb`` recovers, each exactly
(exponential factors per sample). They shift the pyramidal membrane potential by
``d = −I_A sa − I_B sb + D_K k`` mV. The output is the pyramidal membrane potential
``y1 − y2 − y3 + d`` (mV), the usual LFP proxy of these models, plus ``u``, an Ornstein–Uhlenbeck
component (time constant τ_u, exact update) standing for the slow synaptic currents the mass does not
model; it shapes the aperiodic spectrum and does not act on the dynamics.

Two compiled variants share the code: serial (one patient streaming in small blocks) and
parallel over rows (large batches).
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, prange
from simulators._rng import normal_at, sample_seed
from simulators._vmath import vexp

# Row parameters (params[b, k]):
(P_a, P_b, P_g, P_C, P_E0, P_V0, P_R, P_PSD, P_K, P_SUB, P_KA, P_TA, P_IA, P_KB, P_TB, P_TRB, P_IB, P_KK, P_TK,
 P_DK, P_TU, P_SU, P_N) = range(23)
N_PARAMS = 23
# Node parameters (node[b, k, i]):
NP_A, NP_B, NP_G, NP_P = range(4)
N_NODE = 4
# State (state[b, k, i]): y0..y9, then sa, sb, xb, k, u (aperiodic field component)
S_SA, S_SB, S_XB, S_K, S_U = 10, 11, 12, 13, 14
N_STATE = 15
# Connectivity constants of Wendling et al. (2002) as fractions of C
C1F, C2F, C3F, C4F, C5F, C6F, C7F = 1.0, 0.8, 0.25, 0.25, 0.3, 0.1, 0.8


def _wd_block(state, params, node, W, noise_key, t0, kicks, dt, src):
    """Advance the batch by ``T = kicks.shape[1]`` samples, in place.

    Args:
        state: (B, N_STATE, N) float64 — y0..y9 (mV, mV/s), sa, sb, xb, k, u per node; updated in place.
        params: (B, N_PARAMS) float64 — row parameters (``P_*`` indices); ``P_N`` is the row's node
            count (rows may be zero-padded to N), ``P_SUB`` the sub-steps per sample.
        node: (B, N_NODE, N) float64 — A, B, G (mV) and mean extrinsic input p (pulses/s) per node.
        W: (B, N, N) float64 — coupling weights (row i receives from node j), row-normalised.
        noise_key: (B,) uint64 process-noise stream per row; node ``i`` of sample ``k`` uses standard
            normals ``i`` (extrinsic input) and ``N_row + i`` (aperiodic field component) of that sample
            (:mod:`simulators._rng`).
        t0: absolute sample index of the first step (the noise counter).
        kicks: (B, T, N) float64 — recruited fraction × pulses per sample per node.
        dt: sample interval, s.
        src: (B, T, N) float64 — output: pyramidal membrane potential plus the aperiodic component u
            per node, mV.
    """
    nb = state.shape[0]
    nt = kicks.shape[1]
    for b in prange(nb):
        n = int(params[b, P_N])
        p = params[b]
        y = state[b]
        nsub = int(p[P_SUB])
        h = dt / nsub
        a, bb, g = p[P_a], p[P_b], p[P_g]
        C, e0, v0, r = p[P_C], p[P_E0], p[P_V0], p[P_R]
        psd, K = p[P_PSD], p[P_K]
        kA, IA, kB, IB, kK, DK = p[P_KA], p[P_IA], p[P_KB], p[P_IB], p[P_KK], p[P_DK]
        dec_a = math.exp(-dt / p[P_TA])
        dec_b = math.exp(-dt / p[P_TB])
        rec_b = 1.0 - math.exp(-dt / p[P_TRB])
        dec_k = math.exp(-dt / p[P_TK])
        dec_u = math.exp(-dt / p[P_TU])
        sd_u = p[P_SU] * math.sqrt(1.0 - dec_u * dec_u)
        Ea, Eb, Eg = math.exp(-a * h), math.exp(-bb * h), math.exp(-g * h)
        An = node[b, NP_A]
        Bn = node[b, NP_B]
        Gn = node[b, NP_G]
        Pn = node[b, NP_P]
        Wb = W[b]
        Wt = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                Wt[j, i] = Wb[i, j]
        ext = np.empty(n)
        vb = np.empty(n)
        arg = np.empty(4 * n)
        ex = np.empty(4 * n)
        bits = np.empty(4 * n, np.int64)
        key = noise_key[b]
        for t in range(nt):
            seed = sample_seed(key, t0 + t)
            # pulses: GABA_A and GABA_B activation (depleting store), potassium depolarisation
            for i in range(n):
                kk = kicks[b, t, i]
                if kk != 0.0:
                    q = kk if kk < 1.0 else 1.0
                    y[S_SA, i] += kA * q * (1.0 - y[S_SA, i])
                    rel = kB * q * y[S_XB, i]
                    y[S_SB, i] += rel * (1.0 - y[S_SB, i])
                    y[S_XB, i] -= rel * y[S_XB, i]
                    y[S_K, i] += kK * q * (1.0 - y[S_K, i])
                vb[i] = DK * y[S_K, i] - IA * y[S_SA, i] - IB * y[S_SB, i]
            for sub in range(nsub):
                for i in range(n):
                    y0 = y[0, i]
                    arg[i] = r * (v0 - (y[1, i] - y[2, i] - y[3, i] + vb[i]))
                    arg[n + i] = r * (v0 - C1F * C * y0)
                    arg[2 * n + i] = r * (v0 - C3F * C * y0)
                    arg[3 * n + i] = r * (v0 - (C5F * C * y0 - C6F * C * y[4, i]))
                vexp(arg, bits, ex)
                if sub == 0:
                    # network input: the other populations' pyramidal firing at the sample start, held
                    for i in range(n):
                        ext[i] = 0.0
                    for j in range(n):
                        fj = 2.0 * e0 / (1.0 + ex[j])
                        for i in range(n):
                            ext[i] += Wt[j, i] * fj
                    for i in range(n):
                        ext[i] = Pn[i] + psd * normal_at(seed, i) + K * ext[i]
                for i in range(n):
                    s_p = 2.0 * e0 / (1.0 + ex[i])
                    s_e = 2.0 * e0 / (1.0 + ex[n + i])
                    s_s = 2.0 * e0 / (1.0 + ex[2 * n + i])
                    s_f = 2.0 * e0 / (1.0 + ex[3 * n + i])
                    A = An[i]
                    # y0: pyramidal output -> interneurons (gain A, rate a)
                    yp = A * s_p / a
                    z = y[0, i] - yp
                    c2 = y[5, i] + a * z
                    y[0, i] = yp + (z + c2 * h) * Ea
                    y[5, i] = (y[5, i] - a * c2 * h) * Ea
                    # y1: excitatory input to pyramidal cells (extrinsic + excitatory interneurons)
                    yp = A * (ext[i] + C2F * C * s_e) / a
                    z = y[1, i] - yp
                    c2 = y[6, i] + a * z
                    y[1, i] = yp + (z + c2 * h) * Ea
                    y[6, i] = (y[6, i] - a * c2 * h) * Ea
                    # y2: slow dendritic GABA_A inhibition of pyramidal cells (gain B, rate b)
                    yp = Bn[i] * C4F * C * s_s / bb
                    z = y[2, i] - yp
                    c2 = y[7, i] + bb * z
                    y[2, i] = yp + (z + c2 * h) * Eb
                    y[7, i] = (y[7, i] - bb * c2 * h) * Eb
                    # y3: fast somatic GABA_A inhibition of pyramidal cells (gain G, rate g)
                    yp = Gn[i] * C7F * C * s_f / g
                    z = y[3, i] - yp
                    c2 = y[8, i] + g * z
                    y[3, i] = yp + (z + c2 * h) * Eg
                    y[8, i] = (y[8, i] - g * c2 * h) * Eg
                    # y4: slow inhibition of the fast interneurons (gain B, rate b)
                    yp = Bn[i] * s_s / bb
                    z = y[4, i] - yp
                    c2 = y[9, i] + bb * z
                    y[4, i] = yp + (z + c2 * h) * Eb
                    y[9, i] = (y[9, i] - bb * c2 * h) * Eb
            for i in range(n):
                y[S_SA, i] *= dec_a
                y[S_SB, i] *= dec_b
                y[S_XB, i] += rec_b * (1.0 - y[S_XB, i])
                y[S_K, i] *= dec_k
                y[S_U, i] = dec_u * y[S_U, i] + sd_u * normal_at(seed, n + i)
                src[b, t, i] = y[1, i] - y[2, i] - y[3, i] + vb[i] + y[S_U, i]
            for i in range(n, src.shape[2]):
                src[b, t, i] = 0.0


wd_block_serial, wd_block_parallel = kernel_pair(_wd_block, "wd_block")


def wd_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (wd_block_parallel if args[0].shape[0] >= 8 else wd_block_serial)(*args)
