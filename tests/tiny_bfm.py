"""Test data of the BFM tests, built from the core library alone: synthetic patients and a tiny checkpoint.

Importable as ``tiny_bfm`` from any test module (``tests/`` is on ``sys.path`` as the folder of the
suite's root ``conftest.py``). ``synthetic_series`` draws the same patients as the pretraining
corpus' ``source = "synthetic"`` (damped stochastic oscillators mixed into channels; probes entrain or
suppress them), so core-library tests need no application code; ``train_tiny`` trains the model of
``pretrain-tiny.toml`` for a few steps on eight of them, as ``bfm-stim pretrain`` would (same
optimiser, schedule and losses), and writes ``model.pt``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bfm_stim.model.synthetic import synthetic_series  # noqa: F401  (re-exported for the tests)

# The [model] section of pretrain-tiny.toml: a ~50k-parameter BFM with every head (seconds on CPU).
TINY_MODEL = dict(fs=250.0, patch_len=25, d_model=32, d_latent=16, d_channel=16, n_virtual=4, d_patient=8,
                  n_layers=1, n_heads=2, n_fourier=8, dyn_hidden=32, n_ensemble=2, max_patches=16,
                  horizon_patches=4, dropout=0.0, ar_lags=50, n_harmonics=3, stim_rank=4, response_hidden=32)
# Its [train] section (8 patients, 8 context patches per window).
TINY_TRAIN = dict(batch_size=8, ctx_patches=8, lr=2e-3, weight_decay=0.01, warmup=2, grad_clip=1.0, seed=0)
# Its [corpus] section: 8 synthetic patients, 8 s of rest and 6 probes each.
TINY_PATIENTS = 8
TINY_CORPUS = dict(rest_s=8.0, n_trials=6, trial_pre_s=0.5, trial_post_s=1.5)


def tiny_config():
    """The tiny model's :class:`~bfm_stim.model.ModelConfig` (every stimulus feature, 8 training patients)."""
    from bfm_stim.model import ModelConfig
    from bfm_stim.stim_features import FEATURE_NAMES

    return ModelConfig.from_dict({**TINY_MODEL, "n_stim_features": len(FEATURE_NAMES),
                                  "stim_feature_names": tuple(FEATURE_NAMES), "n_train_patients": TINY_PATIENTS})


def train_tiny(out_dir: str | Path, *, steps: int = 4) -> Path:
    """Train the tiny BFM ``steps`` steps on the synthetic patients; write and return ``out_dir/model.pt``.

    AdamW with a linear warm-up then cosine decay to 10 %, gradient clipping, every loss on
    (forecast, masked, contrastive): the pretraining driver's recipe at ``pretrain-tiny.toml``'s settings.
    """
    import torch

    from bfm_stim.model import BrainFoundationModel, LossConfig, sample_batch, save_checkpoint
    from bfm_stim.model.losses import LossModule

    cfg, t = tiny_config(), TINY_TRAIN
    series = [s.with_forecaster(cfg.ar_lags, cfg.horizon_patches * cfg.patch_len, cfg.fs)
              for s in synthetic_series(TINY_PATIENTS, seed=0, **TINY_CORPUS)]
    torch.manual_seed(t["seed"])
    model = BrainFoundationModel(cfg)
    unit = LossModule(model, LossConfig(forecast=True, masked=True, contrastive=True))
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    rng, gen = np.random.default_rng([t["seed"], 0]), torch.Generator().manual_seed(t["seed"] * 1000)
    model.train()
    for step in range(steps):
        frac = max(0, step - t["warmup"]) / max(1, steps - t["warmup"])
        lr = t["lr"] * ((step + 1) / t["warmup"] if step < t["warmup"]
                        else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = sample_batch(series, t["batch_size"], n_ctx=t["ctx_patches"], n_hor=cfg.horizon_patches,
                             patch_len=cfg.patch_len, rng=rng)
        loss = unit(batch, gen)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
    model.eval()
    return save_checkpoint(Path(out_dir) / "model.pt", model, step=steps, extra={"source": "tests/tiny_bfm.py"})
