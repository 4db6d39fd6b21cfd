"""Integration kernel of the Epileptor network (numba, batched over patients × trials).

State per node: the fast subsystem (x1, y1), the slow permittivity variable z, the spike-wave
subsystem (x2, y2), the low-pass feedback g (Jirsa et al. 2014) and s, the activation of the
stimulation-evoked inhibition (:mod:`simulators.epileptor.params`).

Scheme: one classical 4th-order Runge–Kutta step of the six Epileptor equations per sample
(``h = dt / time_unit`` ≈ 0.1 model units at fs = 1 kHz; the Epileptor's fastest rate is 1 per
unit, so RK4 is well inside its stability region and matches a ten-times finer step), with the
permittivity coupling and the stimulation current held over the step (both change on the
slow or synaptic time scale), followed by the additive noise increment ``σ √h ξ``
(Euler–Maruyama for the noise, as TVB's stochastic integrators add it). Pulses jump x1 and the
synaptic activation s in the sample in which they fall; s then decays exactly
(``exp(-dt / τ_s)``). The output is the Epileptor's field-potential proxy x2 - x1 (Jirsa 2014;
TVB's default monitor), AC-coupled as by a clinical amplifier (first-order high-pass, exact update).

Two compiled variants share the code: serial (one patient streaming in small blocks) and
parallel over rows (large batches).
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, njit, prange
from simulators._rng import normal_at, sample_seed
from simulators.epileptor.params import (A_F1, AA_F2, B_F1, BB_G, D_Y1, GAMMA, IREST1, IREST2, S_Z, SLOPE,
                                         TAU2, Y0)

# Row parameters (params[b, k]):
P_TU, P_R, P_K, P_SF, P_SW, P_TAUS, P_KAPPA, P_IMAX, P_KICK, P_HP, P_N = range(11)
N_PARAMS = 11
N_STATE = 8  # x1, y1, z, x2, y2, g, s, m (high-pass state)


@njit(cache=True, inline="always")
def _rhs(x1, y1, z, x2, y2, g, x0, r, cpl, cur):
    """Right-hand side of one Epileptor (Jirsa 2014; TVB form) with permittivity coupling ``cpl`` and input ``cur``."""
    if x1 < 0.0:
        f1 = A_F1 * x1 * x1 * x1 - B_F1 * x1 * x1
    else:
        f1 = -(SLOPE - x2 + 0.6 * (z - 4.0) * (z - 4.0)) * x1
    hz = S_Z * (x1 - x0)
    if z < 0.0:
        hz -= 0.1 * z ** 7
    f2 = AA_F2 * (x2 + 0.25) if x2 >= -0.25 else 0.0
    return (y1 - f1 - z + IREST1 + cur,
            Y0 - D_Y1 * x1 * x1 - y1,
            r * (hz - z - cpl),
            -y2 + x2 - x2 * x2 * x2 + IREST2 + BB_G * g - 0.3 * (z - 3.5),
            (-y2 + f2) / TAU2,
            -GAMMA * (g - 0.1 * x1))


def _ep_block(state, params, x0, W, noise_key, t0, kicks, dt, src):
    """Advance the batch by ``T = kicks.shape[1]`` samples, in place.

    Args:
        state: (B, 8, N) float64 — x1, y1, z, x2, y2, g, s, m per node; updated in place.
        params: (B, N_PARAMS) float64 — row parameters (``P_*``); ``P_N`` is the row's node count
            (rows may be zero-padded to N).
        x0: (B, N) float64 — excitability per node.
        W: (B, N, N) float64 — coupling weights (row i receives from node j), row-normalised.
        noise_key: (B,) uint64 process-noise stream per row; sample ``k`` uses normals ``i`` (x1) and
            ``N_row + i`` (x2) of node i (:mod:`simulators._rng`).
        t0: absolute sample index of the first step (the noise counter).
        kicks: (B, T, N) float64 — recruited fraction × pulses per sample per node.
        dt: sample interval, s.
        src: (B, T, N) float64 — output: the LFP proxy x2 - x1 per node, high-passed by the
            amplifier's first-order AC coupling (time constant ``params[b, P_HP]``, s; state m).
    """
    nb = state.shape[0]
    nt = kicks.shape[1]
    for b in prange(nb):
        n = int(params[b, P_N])
        X = state[b]
        h = dt / params[b, P_TU]
        r = params[b, P_R]
        K = params[b, P_K]
        sqh = math.sqrt(h)
        sf = params[b, P_SF] * sqh
        sw = params[b, P_SW] * sqh
        es = math.exp(-dt / params[b, P_TAUS])
        kappa = params[b, P_KAPPA]
        imax = params[b, P_IMAX]
        kick = params[b, P_KICK]
        ahp = 1.0 - math.exp(-dt / params[b, P_HP])
        Wb = W[b]
        xb = x0[b]
        cpl = np.empty(n)
        # transposed copy and row sums: the coupling sums run over j for all i at once (SIMD across i)
        Wt = np.empty((n, n))
        wsum = np.zeros(n)
        for i in range(n):
            for j in range(n):
                Wt[j, i] = Wb[i, j]
                wsum[i] += Wb[i, j]
        cur = np.empty(n)
        key = noise_key[b]
        for t in range(nt):
            seed = sample_seed(key, t0 + t)
            # pulses: depolarising jump of x1 and recruitment of the GABAergic activation
            for i in range(n):
                kk = kicks[b, t, i]
                if kk != 0.0:
                    X[0, i] += kick * kk
                    a = kappa * kk
                    if a > 1.0:
                        a = 1.0
                    X[6, i] += a * (1.0 - X[6, i])
                cur[i] = -imax * X[6, i]
                X[6, i] *= es
            # permittivity coupling K Σ_j W_ij (x1_j - x1_i), held over the step
            for i in range(n):
                cpl[i] = 0.0
            for j in range(n):
                xj = X[0, j]
                for i in range(n):
                    cpl[i] += Wt[j, i] * xj
            for i in range(n):
                cpl[i] = K * (cpl[i] - wsum[i] * X[0, i])
            # RK4 over the six Epileptor equations; with coupling and stimulation held, nodes are independent
            for i in range(n):
                x1, y1, z, x2, y2, g = X[0, i], X[1, i], X[2, i], X[3, i], X[4, i], X[5, i]
                xi, ci, ki = xb[i], cpl[i], cur[i]
                a1, b1, c1, d1, e1, f1 = _rhs(x1, y1, z, x2, y2, g, xi, r, ci, ki)
                a2, b2, c2, d2, e2, f2 = _rhs(x1 + 0.5 * h * a1, y1 + 0.5 * h * b1, z + 0.5 * h * c1,
                                              x2 + 0.5 * h * d1, y2 + 0.5 * h * e1, g + 0.5 * h * f1, xi, r, ci, ki)
                a3, b3, c3, d3, e3, f3 = _rhs(x1 + 0.5 * h * a2, y1 + 0.5 * h * b2, z + 0.5 * h * c2,
                                              x2 + 0.5 * h * d2, y2 + 0.5 * h * e2, g + 0.5 * h * f2, xi, r, ci, ki)
                a4, b4, c4, d4, e4, f4 = _rhs(x1 + h * a3, y1 + h * b3, z + h * c3, x2 + h * d3, y2 + h * e3,
                                              g + h * f3, xi, r, ci, ki)
                c6 = h / 6.0
                X[0, i] = x1 + c6 * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
                X[1, i] = y1 + c6 * (b1 + 2.0 * b2 + 2.0 * b3 + b4)
                X[2, i] = z + c6 * (c1 + 2.0 * c2 + 2.0 * c3 + c4)
                X[3, i] = x2 + c6 * (d1 + 2.0 * d2 + 2.0 * d3 + d4)
                X[4, i] = y2 + c6 * (e1 + 2.0 * e2 + 2.0 * e3 + e4)
                X[5, i] = g + c6 * (f1 + 2.0 * f2 + 2.0 * f3 + f4)
            for i in range(n):
                X[0, i] += sf * normal_at(seed, i)
                X[3, i] += sw * normal_at(seed, n + i)
                lfp = X[3, i] - X[0, i]
                X[7, i] += ahp * (lfp - X[7, i])
                src[b, t, i] = lfp - X[7, i]
            for i in range(n, src.shape[2]):
                src[b, t, i] = 0.0


ep_block_serial, ep_block_parallel = kernel_pair(_ep_block, "ep_block")


def ep_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (ep_block_parallel if args[0].shape[0] >= 8 else ep_block_serial)(*args)
