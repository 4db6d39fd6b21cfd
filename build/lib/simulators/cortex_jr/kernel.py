"""Integration kernel of the Jansen–Rit network (numba, batched over patients × trials).

Each synapse of a column is the critically damped second-order filter of Jansen & Rit,
``y'' = G r u - 2 r y' - r² y``. With the firing-rate input ``u`` held over a step, its update
is exact (exponential integrator), so 1 ms steps are accurate and unconditionally stable for
the linear part, with one sigmoid evaluation per population per step. Pulses of electrical
stimulation and auditory clicks are impulses of afferent input (area in pulses), applied as a
jump of the excitatory post-synaptic current ``y4``, so the synapse itself filters them.

Two compiled variants share the code: serial (one patient streaming in 20 ms blocks: no thread
start-up cost) and parallel over rows (large batches).
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, prange
from simulators._rng import normal_at, sample_seed
from simulators._vmath import vexp

# Column parameters per row (params[b, k]):
P_B, P_a, P_b, P_C, P_E0, P_V0, P_R, P_PSD, P_K, P_N = range(10)
N_PARAMS = 10


def _jr_block(state, params, gain_a, pmean, W, noise_key, t0, drive, kicks, dt, src):
    """Advance the batch by ``T = kicks.shape[1]`` samples, in place.

    Args:
        state: (B, 6, N) float64 — y0..y5 per node (mV, mV/s); updated in place.
        params: (B, N_PARAMS) float64 — column parameters (see the ``P_*`` indices); ``P_N`` is
            the row's number of columns (rows may be zero-padded to N).
        gain_a: (B, N) float64 — excitatory gain ``A`` per node, mV.
        pmean: (B, N) float64 — mean extrinsic input per node, pulses/s.
        W: (B, N, N) float64 — coupling weights (row i receives from column j).
        noise_key: (B,) uint64 process-noise stream per row; node ``i`` of sample ``k`` uses
            standard normal ``i`` of that sample (:mod:`simulators._rng`).
        t0: absolute sample index of the first step (the noise counter).
        drive: (B, T, N) float64 — extra extrinsic input rate (flicker), pulses/s.
        kicks: (B, T, N) float64 — impulse input per sample (pulses, stimulation and clicks).
        dt: step, s.
        src: (B, T, N) float64 — output: the pyramidal membrane potential y1 - y2, mV.
    """
    nb = state.shape[0]
    nt = kicks.shape[1]
    for b in prange(nb):
        n = int(params[b, P_N])
        y = state[b]
        A = gain_a[b]
        Bg = params[b, P_B]
        a = params[b, P_a]
        bb = params[b, P_b]
        C = params[b, P_C]
        e0 = params[b, P_E0]
        v0 = params[b, P_V0]
        r = params[b, P_R]
        psd = params[b, P_PSD]
        K = params[b, P_K]
        Wb = W[b]
        Ea = math.exp(-a * dt)
        Eb = math.exp(-bb * dt)
        fire = np.empty(n)
        acc = np.empty(n)
        # the three sigmoids of every node are evaluated together with a vectorisable exp
        arg = np.empty(3 * n)
        ex = np.empty(3 * n)
        bits = np.empty(3 * n, np.int64)
        # transposed copy: the coupling sums run over j for all i at once (independent chains,
        # SIMD across i), each sum in the same j order
        Wt = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                Wt[j, i] = Wb[i, j]
        key = noise_key[b]
        for t in range(nt):
            seed = sample_seed(key, t0 + t)
            for j in range(n):
                arg[j] = r * (v0 - (y[1, j] - y[2, j]))
                arg[n + j] = r * (v0 - C * y[0, j])
                arg[2 * n + j] = r * (v0 - 0.25 * C * y[0, j])
            vexp(arg, bits, ex)
            for j in range(n):
                fire[j] = 2.0 * e0 / (1.0 + ex[j])
            for i in range(n):
                acc[i] = 0.0
            for j in range(n):
                fj = fire[j]
                for i in range(n):
                    acc[i] += Wt[j, i] * fj
            for i in range(n):
                s = acc[i]
                p = pmean[b, i] + psd * normal_at(seed, i) + drive[b, t, i] + K * s
                s1 = 2.0 * e0 / (1.0 + ex[n + i])
                s3 = 2.0 * e0 / (1.0 + ex[2 * n + i])
                # y0: pyramidal output -> interneurons (gain A, rate a)
                yp = A[i] * fire[i] / a
                z = y[0, i] - yp
                c2 = y[3, i] + a * z
                y[0, i] = yp + (z + c2 * dt) * Ea
                y[3, i] = (y[3, i] - a * c2 * dt) * Ea
                # y1: excitatory input to pyramidal cells
                yp = A[i] * (p + 0.8 * C * s1) / a
                z = y[1, i] - yp
                c2 = y[4, i] + a * z
                y[1, i] = yp + (z + c2 * dt) * Ea
                y[4, i] = (y[4, i] - a * c2 * dt) * Ea + A[i] * a * kicks[b, t, i]
                # y2: inhibitory input to pyramidal cells (gain B, rate b)
                yp = Bg * 0.25 * C * s3 / bb
                z = y[2, i] - yp
                c2 = y[5, i] + bb * z
                y[2, i] = yp + (z + c2 * dt) * Eb
                y[5, i] = (y[5, i] - bb * c2 * dt) * Eb
            for i in range(n):
                src[b, t, i] = y[1, i] - y[2, i]
            for i in range(n, src.shape[2]):
                src[b, t, i] = 0.0


jr_block_serial, jr_block_parallel = kernel_pair(_jr_block, "jr_block")


def jr_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (jr_block_parallel if args[0].shape[0] >= 8 else jr_block_serial)(*args)
