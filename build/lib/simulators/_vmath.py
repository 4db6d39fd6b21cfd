"""Branch-free ``exp`` over a buffer, so LLVM can vectorise it (numba has no SIMD ``exp`` without SVML).

``exp(x) = 2^n · exp(r)`` with ``n = round(x / ln 2)`` and ``r = x - n ln 2`` (Cody–Waite split of
ln 2, ``|r| <= ln 2 / 2``); ``exp(r)`` is its degree-12 Taylor polynomial in Horner form (relative
error below 2e-16 on that interval, i.e. within an ulp or two of libm) and ``2^n`` is built from
the exponent bits. Inputs are clamped to [-700, 700], far beyond what the sigmoids need.
"""

from __future__ import annotations

import numpy as np

from simulators._jit import njit

__all__ = ["vexp"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@njit(cache=True)
def vexp(x: np.ndarray, bits: np.ndarray, out: np.ndarray) -> None:
    """``out[:k] = exp(x[:k])`` for ``k = x.size``; ``bits`` is an int64 scratch of at least that size."""
    k = x.size
    for i in range(k):
        xi = min(max(x[i], -700.0), 700.0)
        n = np.floor(xi * _LOG2E + 0.5)
        r = (xi - n * _LN2_HI) - n * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[i] = p
        bits[i] = (np.int64(n) + 1023) << 52
    scale = bits[:k].view(np.float64)
    for i in range(k):
        out[i] *= scale[i]
