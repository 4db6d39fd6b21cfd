"""loops.stats: medians, quartiles and bootstrap intervals against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bfm_stim.exceptions import ValidationError
from loops import stats


def test_median_and_iqr_by_hand():
    # sorted 1 2 3 4 5 6 7 8: median (4 + 5) / 2; q25 at rank 0.25 * 7 = 1.75 -> 2 + 0.75 = 2.75; q75 at 5.25 -> 6.25
    x = [8, 1, 7, 2, 6, 3, 5, 4]
    assert stats.median(x) == 4.5
    assert stats.iqr(x) == [2.75, 6.25]
    assert stats.median_iqr(x) == (4.5, [2.75, 6.25])
    # odd count: the middle value; q25 at rank 1 exactly, q75 at rank 3
    assert stats.median_iqr([10, 0, 30, 20, 40]) == (20.0, [10.0, 30.0])
    assert stats.quartiles([10, 0, 30, 20, 40]) == {"median": 20.0, "q25": 10.0, "q75": 30.0}
    assert math.isnan(stats.median([]))
    assert all(math.isnan(v) for v in stats.iqr([]))
    assert isinstance(stats.median(np.array([1, 2], np.int64)), float)


def test_quartiles_interpolate_the_middle_as_percentiles_do():
    # numpy's lerp at t = 0.5 is b - (b - a) / 2, which is not always (a + b) / 2 in floating point
    x = [0.1, 0.7, 0.2, 0.3]
    assert stats.quartiles(x)["median"] == float(np.percentile(x, 50))
    assert stats.median(x) == float(np.median(x))


def test_finite_summary_drops_missing_and_non_finite():
    s = stats.finite_summary([3.0, None, float("nan"), 1.0, float("inf"), 2.0])
    assert s == {"median": 2.0, "iqr": [1.5, 2.5], "n": 3}
    assert stats.finite_summary([None, float("nan")]) == {"median": None, "iqr": None, "n": 0}
    assert stats.finite_summary([], empty_iqr=[None, None])["iqr"] == [None, None]


def test_bootstrap_median_ci_covers_the_true_median_and_is_seeded():
    rng = np.random.default_rng(7)
    x = rng.exponential(1.0, 2000)  # true median ln 2
    lo, hi = stats.bootstrap_median_ci(x, seed=1)
    assert lo < math.log(2) < hi
    # the interval of a median of 2000 draws: about 2 * 1.96 * sqrt(0.25 / n) / f(m) = 0.088 wide (f(m) = 0.5)
    assert 0.05 < hi - lo < 0.13
    assert lo <= stats.median(x) <= hi
    assert stats.bootstrap_median_ci(x, seed=1) == (lo, hi)
    assert stats.bootstrap_median_ci(x, seed=2) != (lo, hi)
    # a wider level gives a wider interval from the same resamples
    lo99, hi99 = stats.bootstrap_median_ci(x, level=0.99, seed=1)
    assert lo99 <= lo and hi <= hi99 and (lo99, hi99) != (lo, hi)


def test_bootstrap_median_ci_of_a_constant_and_of_nothing():
    assert stats.bootstrap_median_ci([3.0] * 5, n_boot=50) == (3.0, 3.0)
    assert all(math.isnan(v) for v in stats.bootstrap_median_ci([]))
    with pytest.raises(ValidationError, match="level"):
        stats.bootstrap_median_ci([1.0, 2.0], level=1.0)


def test_bootstrap_median_diff_ci_paired_and_unpaired():
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 5.0, 400)  # a large shared patient effect
    a, b = base + 1.0 + rng.normal(0, 0.1, 400), base + rng.normal(0, 0.1, 400)
    lo_p, hi_p = stats.bootstrap_median_diff_ci(a, b, paired=True, seed=0)
    lo_u, hi_u = stats.bootstrap_median_diff_ci(a, b, paired=False, seed=0)
    # pairing removes the shared effect: a narrow interval around the shift of 1 (about 0.32 wide here)
    assert lo_p < 1.0 < hi_p and hi_p - lo_p < 0.45
    # unpaired, its width is that of a difference of two medians of 400 N(0, 5) draws: 2 * 1.96 * 0.44 = 1.7
    assert lo_u < 1.0 < hi_u and hi_u - lo_u > 3 * (hi_p - lo_p)
    assert stats.bootstrap_median_diff_ci(a, b, paired=True, seed=0) == (lo_p, hi_p)
    # unpaired samples may differ in length; paired ones may not
    assert all(math.isfinite(v) for v in stats.bootstrap_median_diff_ci(a, b[:50], paired=False, seed=0))
    with pytest.raises(ValidationError, match="paired"):
        stats.bootstrap_median_diff_ci(a, b[:50], paired=True)
    assert all(math.isnan(v) for v in stats.bootstrap_median_diff_ci([], b, paired=False))


def test_bootstrap_accepts_a_generator_and_advances_it():
    g = np.random.default_rng(5)
    first = stats.bootstrap_median_ci(np.arange(20.0), n_boot=200, seed=g)
    second = stats.bootstrap_median_ci(np.arange(20.0), n_boot=200, seed=g)
    assert first == stats.bootstrap_median_ci(np.arange(20.0), n_boot=200, seed=5)
    assert second != first
