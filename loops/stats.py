"""Summary statistics of the benchmarks: median, quartiles, IQR and percentile-bootstrap intervals.

Every benchmark reports its figures the same way: the median over runs (or patients) with the
interquartile range, ``[25th, 75th]`` percentile (numpy's default linear interpolation), and, where
a claim rests on a median, a percentile-bootstrap confidence interval of it. Resampling draws from a
seeded :class:`numpy.random.Generator`, so an interval is reproducible from its seed.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from bfm_stim.exceptions import ValidationError

__all__ = ["spearman", "median", "iqr", "median_iqr", "quartiles", "finite_summary", "bootstrap_median_ci",
           "bootstrap_median_diff_ci"]


def _array(x: Iterable[float]) -> np.ndarray:
    return np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float).ravel()


def median(x: Iterable[float]) -> float:
    """Median of ``x`` (``numpy.median``: the mean of the two middle values for an even count); NaN when empty."""
    a = _array(x)
    return float(np.median(a)) if a.size else math.nan


def iqr(x: Iterable[float]) -> list[float]:
    """Interquartile range ``[q25, q75]`` of ``x`` (linear interpolation); ``[nan, nan]`` when empty."""
    a = _array(x)
    if not a.size:
        return [math.nan, math.nan]
    return [float(np.percentile(a, 25)), float(np.percentile(a, 75))]


def median_iqr(x: Iterable[float]) -> tuple[float, list[float]]:
    """``(median, [q25, q75])`` of ``x``; NaNs when empty."""
    a = _array(x)
    return median(a), iqr(a)


def quartiles(x: Iterable[float]) -> dict[str, float]:
    """``{"median", "q25", "q75"}``: the 25th, 50th and 75th percentiles of ``x`` (linear interpolation).

    The 50th percentile is interpolated as the other two are (``b - (b - a) / 2`` between the middle
    values ``a <= b``), which may differ from :func:`median` in the last bit.

    Raises:
        IndexError: ``x`` is empty.
    """
    q = np.percentile(_array(x), [25, 50, 75])
    return {"median": float(q[1]), "q25": float(q[0]), "q75": float(q[2])}


def finite_summary(values: Iterable[float | None], *, empty_iqr: Any = None) -> dict[str, Any]:
    """``{"median", "iqr", "n"}`` over the finite entries of ``values`` (``None``, NaN and ±inf dropped).

    Args:
        values: Numbers, possibly ``None`` or non-finite.
        empty_iqr: What ``"iqr"`` holds when no entry is finite (``"median"`` is then ``None``).
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not len(v):
        return {"median": None, "iqr": empty_iqr, "n": 0}
    return {"median": median(v), "iqr": iqr(v), "n": int(len(v))}


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValidationError("level", level, "a coverage in (0, 1)")


def _percentile_interval(boots: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_median_ci(x: Sequence[float], *, level: float = 0.95, n_boot: int = 2000,
                        seed: int | np.random.Generator = 0) -> tuple[float, float]:
    """Percentile-bootstrap ``level`` interval of the median of ``x``.

    ``n_boot`` resamples of ``len(x)`` values drawn with replacement; the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of their medians.

    Args:
        x: (n,) sample.
        level: Coverage, in (0, 1).
        n_boot: Bootstrap resamples.
        seed: Seed of the resampling (or a Generator, advanced in place).

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` for an empty sample.

    Raises:
        ValidationError: ``level`` outside (0, 1).
    """
    _check_level(level)
    a = _array(x)
    if not a.size:
        return math.nan, math.nan
    idx = _rng(seed).integers(0, a.size, size=(int(n_boot), a.size))
    return _percentile_interval(np.median(a[idx], axis=1), level)


def bootstrap_median_diff_ci(a: Sequence[float], b: Sequence[float], *, paired: bool, level: float = 0.95,
                             n_boot: int = 2000, seed: int | np.random.Generator = 0) -> tuple[float, float]:
    """Percentile-bootstrap ``level`` interval of ``median(a) - median(b)``.

    Paired (``a[i]`` and ``b[i]`` measured on the same unit, e.g. patient): the units are resampled,
    each resample keeping its pairs. Unpaired: ``a`` and ``b`` are resampled independently.

    Args:
        a: (n,) first sample.
        b: (m,) second sample (``m == n`` when paired).
        paired: Whether ``a`` and ``b`` are paired.
        level: Coverage, in (0, 1).
        n_boot: Bootstrap resamples.
        seed: Seed of the resampling (or a Generator, advanced in place).

    Returns:
        ``(lo, hi)``; ``(nan, nan)`` when a sample is empty.

    Raises:
        ValidationError: paired samples of different lengths, or ``level`` outside (0, 1).
    """
    _check_level(level)
    x, y = _array(a), _array(b)
    if paired and x.size != y.size:
        raise ValidationError("len(b)", y.size, f"{x.size} (paired with a)")
    if not x.size or not y.size:
        return math.nan, math.nan
    rng = _rng(seed)
    ix = rng.integers(0, x.size, size=(int(n_boot), x.size))
    iy = ix if paired else rng.integers(0, y.size, size=(int(n_boot), y.size))
    return _percentile_interval(np.median(x[ix], axis=1) - np.median(y[iy], axis=1), level)


def spearman(a: Iterable[float], b: Iterable[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); ``None`` below 3 points or without variation."""
    from scipy.stats import spearmanr

    x, y = _array(a), _array(b)
    if len(x) != len(y) or len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)
