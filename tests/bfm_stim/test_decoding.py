"""Blocked cross-validation, label budgets, rest alignment and the saved state decoder."""

from __future__ import annotations

import numpy as np
import pytest

from bfm_stim.decoding import RestAlignment, StateDecoder, blocked_folds, cross_validate, fit_decoder, label_subset
from bfm_stim.exceptions import ValidationError


def test_blocked_folds_keep_blocks_together_and_cover_everything():
    g = np.repeat(np.arange(10), 4)
    folds = blocked_folds(len(g), 5, g)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(40))
    for tr, te in folds:
        assert not set(g[tr]) & set(g[te])
        assert np.all(np.diff(te) == 1)  # contiguous in time
    with pytest.raises(ValidationError, match="n_folds"):
        blocked_folds(40, 11, g)


def test_label_subset_takes_the_first_balanced_blocks():
    g = np.repeat(np.arange(8), 5)
    y = np.repeat([0, 0, 1, 0, 1, 1, 0, 1], 5)
    idx = np.arange(40)
    sub = label_subset(idx, y, 10, "classification", g)
    assert len(sub) == 10 and sorted(set(y[sub])) == [0, 1]
    assert set(g[sub]) == {0, 2}  # block 1 (a second class-0 block) is skipped for balance
    assert label_subset(idx, y, 7, "regression", g).tolist() == list(range(7))


def test_blocked_cv_does_not_leak_autocorrelated_noise():
    """Labels that follow slow drift only: shuffled CV would find them, blocked CV must not."""
    rng = np.random.default_rng(0)
    n = 200
    drift = np.cumsum(rng.normal(size=(n, 3)), axis=0)
    y = (np.arange(n) // 20) % 2  # blocks of 20
    g = np.arange(n) // 20
    r = cross_validate(drift, y, groups=g, n_folds=5)
    assert r["score"] < 0.75
    # a real signal is found
    F = drift + 3.0 * y[:, None]
    F[:, 0] = y + rng.normal(0, 0.3, n)
    assert cross_validate(F, y, groups=g, n_folds=5)["score"] > 0.9


def test_regression_and_label_budget():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 5))
    y = X @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + rng.normal(0, 0.1, 120)
    r = cross_validate(X, y, "regression", n_folds=4, n_train=30)
    assert r["n_train"] == 30 and r["score"] > 0.9 and r["task"] == "regression"


def test_fit_decoder_refuses_one_class_and_nan():
    with pytest.raises(ValidationError, match="one class"):
        fit_decoder(np.zeros((6, 2)), np.zeros(6))
    F = np.zeros((6, 2))
    F[0, 0] = np.nan
    with pytest.raises(ValidationError, match="non-finite"):
        fit_decoder(F, np.array([0, 1] * 3))


def test_rest_alignment_whitens_rest():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    rest = rng.normal(size=(2000, 4)) @ A + 5.0
    al = RestAlignment(shrink=0.0).fit(rest)  # no shrinkage: exactly white
    Z = al.transform(rest)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-6)


def test_state_decoder_roundtrip_matches_sklearn(tmp_path):
    rng = np.random.default_rng(4)
    F = rng.normal(size=(80, 6))
    y = np.where(F[:, 0] + 0.2 * rng.normal(size=80) > 0, "pathological", "healthy")
    est = fit_decoder(F, y)
    al = RestAlignment().fit(rng.normal(size=(50, 6)))
    dec = StateDecoder.from_pipeline(est, 1.0, None, {"features": "latent mean+scale"})
    np.testing.assert_allclose(dec.probability(F), est.predict_proba(F)[:, 1], atol=1e-9)
    assert dec.classes == ("healthy", "pathological")
    back = StateDecoder.load(dec.save(tmp_path / "dec.npz"))
    np.testing.assert_allclose(back.probability(F), dec.probability(F))
    assert back.meta == {"features": "latent mean+scale"}
    aligned = StateDecoder.from_pipeline(est, 1.0, al)
    np.testing.assert_allclose(StateDecoder.load(aligned.save(tmp_path / "a.npz")).probability(F),
                               est.predict_proba(al.transform(F))[:, 1], atol=1e-9)
    with pytest.raises(ValidationError, match="features"):
        dec.probability(np.zeros((1, 5)))
    (tmp_path / "junk.npz").write_bytes(b"not a decoder")
    with pytest.raises(Exception):
        StateDecoder.load(tmp_path / "junk.npz")
