"""Counter-based standard normal noise generated inside the numba kernels.

Every noise value is a pure function of ``(key, sample, element)``: ``key`` names the stream
(family, noise stream, patient seed, trial), ``sample`` is the absolute sample index and
``element`` the position inside one sample (node, channel, ...). Nothing is carried between
calls, so a run in chunks of any size is bit-identical to one long run, rows of a batch never
share a stream, and padding a batch does not move any row's noise.

Uniform bits come from the SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast splittable
pseudorandom number generators", OOPSLA): a per-sample seed ``mix(key ^ mix(sample))`` and then
``mix(seed + element · γ)``. Normals come from the 256-layer ziggurat of Marsaglia & Tsang (2000),
"The ziggurat method for generating random variables", J. Stat. Softw. 5(8), with 52-bit
uniforms as in NumPy's ``standard_normal``; the rare wedge and tail branches draw further words
from the same counter.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from simulators._jit import njit

__all__ = ["stream_key", "normal_at", "sample_seed", "ZIG_K", "ZIG_W", "ZIG_F"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S8, _S9 = np.uint64(8), np.uint64(9)
_MASK8 = np.uint64(0xFF)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_ONE = np.uint64(1)
_ZIG_R = 3.6541528853610088   # start of the tail, 256 layers
_ZIG_V = 0.00492867323399     # area of each layer


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = float(2**52)
    k = np.zeros(256, np.uint64)
    w = np.zeros(256)
    f = np.zeros(256)
    dn = tn = _ZIG_R
    q = _ZIG_V / math.exp(-0.5 * dn * dn)
    k[0] = np.uint64(int((dn / q) * m))
    k[1] = np.uint64(0)
    w[0] = q / m
    w[255] = dn / m
    f[0] = 1.0
    f[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_ZIG_V / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = np.uint64(int((dn / tn) * m))
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = _tables()


def stream_key(*parts: int | str) -> np.uint64:
    """64-bit key of one noise stream from its names and integers (family, stream, seed, trial)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x00")
    return np.uint64(int.from_bytes(h.digest(), "little"))


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def sample_seed(key, sample):
    """Per-sample seed of stream ``key`` (uint64) at absolute sample index ``sample`` (int)."""
    return _mix(key ^ _mix(np.uint64(sample) * _GAMMA + _GAMMA))


@njit(cache=True, inline="always")
def _uniform(seed, j):
    # 53-bit uniform in (0, 1)
    return ((_mix(seed + np.uint64(j) * _GAMMA) >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _normal_slow(seed, r, idx, rabs, x):
    # wedge / tail of the ziggurat; extra words come from element slots above 2**32
    j = 1 << 32
    while True:
        if idx == 0:
            while True:
                xx = -math.log(_uniform(seed, j)) / _ZIG_R
                yy = -math.log(_uniform(seed, j + 1))
                j += 2
                if yy + yy > xx * xx:
                    break
            x = _ZIG_R + xx
            return -x if (r >> _S8) & _ONE else x
        if (ZIG_F[idx - 1] - ZIG_F[idx]) * _uniform(seed, j) + ZIG_F[idx] < math.exp(-0.5 * x * x):
            return x
        r = _mix(seed + np.uint64(j + 1) * _GAMMA)
        j += 2
        idx = np.int64(r & _MASK8)
        rabs = (r >> _S9) & _MASK52
        x = float(rabs) * ZIG_W[idx]
        if (r >> _S8) & _ONE:
            x = -x
        if rabs < ZIG_K[idx]:
            return x


@njit(cache=True, inline="always")
def normal_at(seed, element):
    """Standard normal number ``element`` (0 <= element < 2**32) of a sample with ``seed``."""
    r = _mix(seed + np.uint64(element) * _GAMMA)
    idx = np.int64(r & _MASK8)
    rabs = (r >> _S9) & _MASK52
    x = float(rabs) * ZIG_W[idx]
    if (r >> _S8) & _ONE:
        x = -x
    if rabs < ZIG_K[idx]:
        return x
    return _normal_slow(seed ^ np.uint64(element + 1) * _M1, r, idx, rabs, x)

