"""Integration kernel of the Wilson–Cowan sheet (numba, batched over patients × trials).

Each 1 ms sample is split into ``n_sub`` explicit-midpoint (second-order Runge–Kutta) sub-steps
(h = 0.5 ms at the default 2): the E–I loop at 35–50 Hz needs a second-order scheme or
sub-millisecond Euler steps, and RK2 at h = 0.5 ms is stable with margin (the linear rates are at
most 2/τ_E, so h · 2/τ_E ≤ 0.31) and keeps the gamma frequency within ~1 Hz of a 0.025 ms
reference (checked in ``tests/simulators/test_wilson_cowan.py``; forward Euler at h = 0.25 ms,
for the same cost, was up to 8 % off). Lateral (column-to-column) input and the input noise are
held over the sample, i.e. horizontal connections act with a ≤ 1 ms conduction delay. Both
sigmoids of every column are evaluated together by the vectorisable :func:`simulators._vmath.vexp`.

Electrical pulses (and clicks) are impulses of afferent input: each jumps the synaptic inputs
``u_E += k_E ρ`` and ``u_I += k_I ρ`` (ρ the recruited fraction), which decay with ``τ_syn``. At
high rates their sum is a tonic input, mostly to the interneurons, that moves a column out of the
oscillatory range; at low rates each pulse evokes a damped gamma-band response (:mod:`.params`).

Recorded source: the synaptic currents onto the pyramidal (E) population, not its firing
fraction (the ECoG/LFP reflects transmembrane synaptic currents: Buzsáki, Anastassiou & Koch
2012, Nat. Rev. Neurosci. 13:407–420). The excitatory presynaptic drive of the E cells
(``c_EE E`` + lateral + afferent input, held over each sub-step at its midpoint value) passes
through an AMPA kernel and the inhibitory drive ``c_IE I`` through a GABA_A kernel, both
unit-area difference-of-exponentials (rise/decay 0.1/2 ms and 0.5/10 ms, the kernels of Gao,
Peterson & Voytek 2017, NeuroImage 158:70–78), advanced exactly for inputs held over the
sub-step (two first-order stages per current, state carried across blocks). The pulse-evoked
input ``u_E`` already is a synaptic current (``τ_syn``) and is added unfiltered. The source is
the sum of the two current magnitudes, ``I_AMPA + I_GABA`` (Mazzoni, Panzeri, Logothetis &
Brunel 2008, PLoS Comput. Biol. 4:e1000239: excitatory currents on the apical dendrites and
inhibitory currents at the soma give dipoles of the same sign), in the units of the sigmoid's
argument; the dynamics of E and I are unchanged by it.

Two compiled variants share the code: serial (one patient streaming) and parallel over rows.
"""

from __future__ import annotations

import math

import numpy as np

from simulators._jit import kernel_pair, njit, prange
from simulators._rng import normal_at, sample_seed
from simulators._vmath import vexp

# Row parameters (params[b, k]):
(P_TE, P_TI, P_CEE, P_CIE, P_CEI, P_CII, P_AE, P_ME, P_AI, P_MI, P_Q, P_SIG, P_K, P_KE, P_KI, P_TSYN,
 P_TAR, P_TAD, P_TGR, P_TGD, P_SUB, P_N) = range(22)
N_PARAMS = 22
# State (state[b, k, i]): E, I, pulse-evoked inputs, then the rise and decay stages of the AMPA and
# GABA_A currents onto the E cells (the recorded source, :func:`_wc_block`)
X_E, X_I, X_UE, X_UI, X_AR, X_AMPA, X_GR, X_GABA = range(8)
N_STATE = 8


@njit(cache=True, inline="always")
def _psc_coefficients(h, tau_r, tau_d):
    """(a_r, a_d, c) of the exact step ``h`` of a unit-area difference-of-exponentials kernel.

    The kernel is the cascade ``τ_r r' = u − r``, ``τ_d y' = r − y``; for ``u`` held over the step,
    ``r ← u + (r − u) a_r`` and ``y ← u + (y − u) a_d + (r_old − u) c`` with
    ``c = τ_r (a_r − a_d) / (τ_r − τ_d)`` (τ_r ≠ τ_d).
    """
    a_r = math.exp(-h / tau_r)
    a_d = math.exp(-h / tau_d)
    return a_r, a_d, tau_r * (a_r - a_d) / (tau_r - tau_d)


def _wc_block(state, params, pdrive, W, noise_key, t0, kicks, drive, dt, src):
    """Advance the batch by ``T = kicks.shape[1]`` samples, in place.

    Args:
        state: (B, N_STATE, N) float64 — E, I (fractions active), u_E, u_I (pulse-evoked input),
            AMPA rise stage, AMPA current, GABA_A rise stage, GABA_A current per column; updated in place.
        params: (B, N_PARAMS) float64 — row parameters (``P_*`` indices); ``P_N`` is the row's
            column count (rows may be zero-padded to N), ``P_SUB`` the sub-steps per sample.
        pdrive: (B, N) float64 — tonic excitatory drive P per column.
        W: (B, N, N) float64 — lateral coupling (row i receives from column j), row-normalised.
        noise_key: (B,) uint64 process-noise stream per row; column ``i`` of sample ``k`` uses
            standard normal ``i`` (:mod:`simulators._rng`).
        t0: absolute sample index of the first step (the noise counter).
        kicks: (B, T, N) float64 — pulses (or clicks) in the sample × recruited fraction.
        drive: (B, T, N) float64 — extra excitatory drive (visual flicker ON phases).
        dt: sample step, s.
        src: (B, T, N) float64 — output per column: ``I_AMPA + I_GABA`` (synaptic currents onto the
            E cells, units of the sigmoid argument; module docstring).
    """
    nb = state.shape[0]
    nt = kicks.shape[1]
    for b in prange(nb):
        n = int(params[b, P_N])
        p = params[b]
        s = state[b]
        nsub = int(p[P_SUB])
        h = dt / nsub
        he = h / p[P_TE]
        hi = h / p[P_TI]
        esyn = math.exp(-h / p[P_TSYN])
        esyn2 = math.exp(-0.5 * h / p[P_TSYN])
        cee, cie, cei, cii = p[P_CEE], p[P_CIE], p[P_CEI], p[P_CII]
        ar_a, ad_a, cc_a = _psc_coefficients(h, p[P_TAR], p[P_TAD])
        ar_g, ad_g, cc_g = _psc_coefficients(h, p[P_TGR], p[P_TGD])
        ae, me, ai, mi = p[P_AE], p[P_ME], p[P_AI], p[P_MI]
        K = p[P_K]
        Wb = W[b]
        Wt = np.empty((n, n))
        for i in range(n):
            for j in range(n):
                Wt[j, i] = Wb[i, j]
        ext = np.empty(n)
        em = np.empty(n)
        im = np.empty(n)
        arg = np.empty(2 * n)
        ex = np.empty(2 * n)
        bits = np.empty(2 * n, np.int64)
        key = noise_key[b]
        for t in range(nt):
            seed = sample_seed(key, t0 + t)
            for i in range(n):
                ext[i] = 0.0
            for j in range(n):
                ej = s[X_E, j]
                for i in range(n):
                    ext[i] += Wt[j, i] * ej
            for i in range(n):
                kq = kicks[b, t, i]
                s[X_UE, i] += p[P_KE] * kq
                s[X_UI, i] += p[P_KI] * kq
                ext[i] = K * ext[i] + pdrive[b, i] + drive[b, t, i] + p[P_SIG] * normal_at(seed, i)
            for _ in range(nsub):
                # explicit midpoint (RK2): half step to (em, im), full step with the slopes there
                for i in range(n):
                    e = s[X_E, i]
                    q = s[X_I, i]
                    arg[i] = -ae * (cee * e - cie * q + ext[i] + s[X_UE, i] - me)
                    arg[n + i] = -ai * (cei * e - cii * q + p[P_Q] + s[X_UI, i] - mi)
                vexp(arg, bits, ex)
                for i in range(n):
                    e = s[X_E, i]
                    q = s[X_I, i]
                    em[i] = e + 0.5 * he * (-e + (1.0 - e) / (1.0 + ex[i]))
                    im[i] = q + 0.5 * hi * (-q + (1.0 - q) / (1.0 + ex[n + i]))
                    arg[i] = -ae * (cee * em[i] - cie * im[i] + ext[i] + s[X_UE, i] * esyn2 - me)
                    arg[n + i] = -ai * (cei * em[i] - cii * im[i] + p[P_Q] + s[X_UI, i] * esyn2 - mi)
                vexp(arg, bits, ex)
                for i in range(n):
                    s[X_E, i] += he * (-em[i] + (1.0 - em[i]) / (1.0 + ex[i]))
                    s[X_I, i] += hi * (-im[i] + (1.0 - im[i]) / (1.0 + ex[n + i]))
                    s[X_UE, i] *= esyn
                    s[X_UI, i] *= esyn
                    # synaptic currents onto the E cells, presynaptic drive held at the midpoint
                    ua = cee * em[i] + ext[i]
                    r = s[X_AR, i]
                    s[X_AR, i] = ua + (r - ua) * ar_a
                    s[X_AMPA, i] = ua + (s[X_AMPA, i] - ua) * ad_a + (r - ua) * cc_a
                    ug = cie * im[i]
                    r = s[X_GR, i]
                    s[X_GR, i] = ug + (r - ug) * ar_g
                    s[X_GABA, i] = ug + (s[X_GABA, i] - ug) * ad_g + (r - ug) * cc_g
            for i in range(n):
                src[b, t, i] = s[X_AMPA, i] + s[X_UE, i] + s[X_GABA, i]
            for i in range(n, src.shape[2]):
                src[b, t, i] = 0.0


wc_block_serial, wc_block_parallel = kernel_pair(_wc_block, "wc_block")


def wc_block(*args) -> None:
    """Dispatch to the parallel variant for batches of 8 rows or more."""
    (wc_block_parallel if args[0].shape[0] >= 8 else wc_block_serial)(*args)
