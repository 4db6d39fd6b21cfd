"""The in-kernel counter-based normal generator: distribution, independence, counter semantics."""

from __future__ import annotations

import numpy as np
from scipy import stats

from simulators._jit import njit
from simulators._rng import normal_at, sample_seed, stream_key


@njit(cache=True)
def _fill(key, t0, out):
    for t in range(out.shape[0]):
        s = sample_seed(key, t0 + t)
        for e in range(out.shape[1]):
            out[t, e] = normal_at(s, e)


def _draw(key, t0, n, m):
    out = np.empty((n, m))
    _fill(key, t0, out)
    return out


def test_standard_normal_distribution():
    x = _draw(stream_key("fam", "process", 3, 0), 0, 20_000, 50).ravel()   # 1e6 values
    assert abs(x.mean()) < 5e-3 and abs(x.var() - 1.0) < 5e-3
    assert abs(stats.skew(x)) < 0.01 and abs(stats.kurtosis(x)) < 0.02
    assert stats.kstest(x, "norm").pvalue > 1e-3
    tail = (np.abs(x) > 3.5).mean()                                       # ziggurat tail branch works
    assert 0.5 < tail / (2 * stats.norm.sf(3.5)) < 1.5


def test_independent_across_elements_samples_and_streams():
    a = _draw(stream_key("fam", "process", 3, 0), 0, 50_000, 4)
    b = _draw(stream_key("fam", "process", 4, 0), 0, 50_000, 4)
    c = _draw(stream_key("fam", "process", 3, 1), 0, 50_000, 4)
    lim = 4.5 / np.sqrt(50_000)
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < lim
    assert abs(np.corrcoef(a[1:, 2], a[:-1, 2])[0, 1]) < lim
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < lim and abs(np.corrcoef(a[:, 0], c[:, 0])[0, 1]) < lim


def test_value_depends_only_on_the_counter():
    key = stream_key("fam", "observation", 9, 2)
    whole = _draw(key, 0, 3000, 7)
    assert np.array_equal(_draw(key, 1234, 500, 7), whole[1234:1734])
    assert np.array_equal(_draw(key, 0, 3000, 3), whole[:, :3])          # padding elements do not move others
    assert stream_key("fam", "observation", 9, 2) == key != stream_key("fam", "observation", 9, 3)

