"""Held-out forecast scoring (bfm_stim.model.evaluate) and adaptation that keeps its held-out best."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.model import BrainFoundationModel, ModelConfig, adapt
from bfm_stim.model.data import PatientSeries
from bfm_stim.model.evaluate import HeldOut, forecast_r2, r2
from tiny_bfm import synthetic_series


@pytest.fixture(scope="module")
def patient():
    s = next(synthetic_series(1, rest_s=16.0, n_trials=2, seed=5))
    s.patient = -1
    return s


def _split(s: PatientSeries, at: int) -> PatientSeries:
    return PatientSeries(s.data[:, :at], s.positions, s.stim_ids[:at], s.stim_table, min(s.rest_samples, at))


def test_r2_and_lead():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(20, 3, 10))
    assert r2(y, y) == 1.0
    assert abs(r2(y, np.broadcast_to(y.mean(0, keepdims=True), y.shape))) < 1e-12  # the mean scores 0
    yhat = y.copy()
    yhat[..., 4] = 0.0
    assert forecast_r2(y, yhat, 4) == 1.0 and forecast_r2(y, yhat, 5) < 1.0  # lead 5 is index 4


def test_heldout_windows_lie_after_the_split_and_score_forecasters(patient):
    start = 3000
    h = HeldOut.from_series(patient, start, ctx_patches=8, patch_len=25, fs=250.0, max_windows=16)
    assert h.n_windows == 16 and h.fut.shape[-1] == 50  # 2 patches cover 160 ms
    assert h.leads == [10, 40]
    # the first window's future starts at the split, the last one ends at the recording's end
    first = torch.from_numpy(patient.data[:, start:start + 50])
    torch.testing.assert_close(h.fut[0], first)
    torch.testing.assert_close(h.fut[-1], torch.from_numpy(patient.data[:, -50:]))
    from bfm_stim.model.evaluate import normalised
    perfect = h.score(normalised(h.ctx, h.fut))
    assert perfect == {"40ms": 1.0, "160ms": 1.0}
    pers = h.score_persistence()
    assert set(pers) == {"40ms", "160ms"} and pers["40ms"] > pers["160ms"]
    with pytest.raises(ValidationError, match="held-out"):
        HeldOut.from_series(patient, patient.data.shape[1] - 10, ctx_patches=8, patch_len=25, fs=250.0)


def _model(tiny):
    torch.manual_seed(0)
    return BrainFoundationModel(ModelConfig(**{**tiny, "ar_lags": 0}))


def test_adapt_keeps_its_held_out_best_never_worse_than_zero_shot(patient, tiny):
    m = _model(tiny)
    split = 3000
    held = HeldOut.from_series(patient, split, ctx_patches=8, patch_len=25, fs=250.0, max_windows=24)
    res = adapt(m, _split(patient, split), mode="full", steps=30, lr=3e-3, batch_size=8, n_ctx=8, seed=1,
                heldout=held, eval_every=10)
    assert [e["step"] for e in res.evals] == [0, 10, 20, 30]
    zs, got = res.heldout["zero_shot"], res.heldout["adapted"]
    assert all(got[k] >= zs[k] for k in zs)
    best = next(e for e in res.evals if e["step"] == res.best_step)
    assert {k: best[k] for k in zs} == got
    # the returned weights are the ones scored at best_step
    again = held.score_model(res.model, res.embedding, patient.positions, res.forecaster)
    assert again == pytest.approx(got, abs=1e-6)
    # a kept step after zero-shot is no fallback; keeping zero-shot itself is the no-improvement fallback
    assert res.fallback is None if res.best_step > 0 else res.fallback.kind == "no_improvement"


def test_a_diverging_run_falls_back_and_says_why(patient, tiny, caplog):
    m = _model(tiny)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    split = 3000
    held = HeldOut.from_series(patient, split, ctx_patches=8, patch_len=25, fs=250.0, max_windows=16)
    with caplog.at_level(logging.WARNING, logger="bfm_stim"):
        res = adapt(m, _split(patient, split), mode="full", steps=40, lr=1e3, batch_size=8, n_ctx=8, seed=1,
                    heldout=held, eval_every=5)
    assert res.fallback is not None and res.fallback.kind == "diverged"
    assert res.fallback.step < 40 and len(res.losses) <= res.fallback.step  # stopped early
    assert res.fallback.returned == "zero_shot" and res.best_step == 0
    for k, v in res.model.state_dict().items():  # the zero-shot weights came back
        torch.testing.assert_close(v, start[k])
    assert res.heldout["adapted"] == res.heldout["zero_shot"]
    assert any("diverged" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # without held-out data a non-finite loss still returns the start
    bad = _split(patient, split)
    bad = PatientSeries(bad.data * np.float32(np.inf), bad.positions, bad.stim_ids, bad.stim_table, bad.rest_samples)
    res = adapt(m, bad, mode="full", steps=5, lr=1e-3, batch_size=8, n_ctx=8, patient_init=torch.zeros(8))
    assert res.fallback is not None and res.fallback.kind == "diverged" and "loss" in res.fallback.reason
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(v, start[k])


def test_a_run_that_never_beats_zero_shot_returns_it(patient, tiny):
    m = _model(tiny)
    split = 3000
    held = HeldOut.from_series(patient, split, ctx_patches=8, patch_len=25, fs=250.0, max_windows=8)
    res = adapt(m, _split(patient, split), mode="embedding", steps=4, lr=1e-30, batch_size=4, n_ctx=8,
                heldout=held, eval_every=2)
    assert res.fallback is not None and res.fallback.kind == "no_improvement" and res.best_step == 0
    assert res.fallback.to_dict()["returned"] == "zero_shot"
    with pytest.raises(ValidationError, match="eval_every"):
        adapt(m, _split(patient, split), mode="full", steps=2, heldout=held, eval_every=0)
