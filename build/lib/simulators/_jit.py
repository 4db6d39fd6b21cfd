"""numba JIT helpers with a graceful fallback when numba is not installed.

The kernels are written as explicit loops; with numba they compile to machine code (cached on
disk, so a fresh process pays the compile once per machine). Without numba they still run as
plain Python, correctly but far slower than real time, and a warning is logged once.
"""

from __future__ import annotations

from typing import Any, Callable

from bfm_stim._logging import get_logger

_log = get_logger("simulators")

try:  # pragma: no cover - exercised by whichever branch is installed
    import numba as _numba

    HAVE_NUMBA = True

    def njit(*args: Any, **kwargs: Any) -> Callable:
        return _numba.njit(*args, **kwargs)

    prange = _numba.prange
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False
    _log.warning("numba is not installed: simulator kernels run in pure Python (slow)")

    def njit(*args: Any, **kwargs: Any) -> Callable:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda f: f

    prange = range


def kernel_pair(func: Callable, name: str) -> tuple[Callable, Callable]:
    """(serial, parallel) compiled variants of ``func`` with distinct on-disk cache entries."""
    import types

    out = []
    for suffix, par in (("serial", False), ("parallel", True)):
        f = types.FunctionType(func.__code__, func.__globals__, f"{name}_{suffix}", func.__defaults__,
                               func.__closure__)
        f.__qualname__ = f"{name}_{suffix}"
        f.__doc__ = func.__doc__
        out.append(njit(cache=True, parallel=par)(f) if HAVE_NUMBA else f)
    return out[0], out[1]
