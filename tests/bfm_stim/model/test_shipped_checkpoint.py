"""The shipped checkpoint: size, weights_only loading, card/config consistent with the loading code."""

from __future__ import annotations

import json

import numpy as np
import torch

from bfm_stim.model import ModelConfig, load_checkpoint
from bfm_stim.stim_features import FEATURE_NAMES
from bfm_stim.surrogate import Surrogate, default_checkpoint


def test_shipped_checkpoint_matches_its_card_and_config():
    path = default_checkpoint()
    d = path.parent
    assert sum(f.stat().st_size for f in d.iterdir() if f.is_file()) <= 20 * 2**20
    raw = torch.load(path, weights_only=True)  # no pickled objects
    model, info = load_checkpoint(path)
    cfg = json.loads((d / "config.json").read_text())
    assert ModelConfig.from_dict(cfg) == model.config == ModelConfig.from_dict(raw["model_config"])
    assert list(model.config.stim_feature_names) == list(FEATURE_NAMES)
    cal = info["extra"]["calibration"]
    assert cal["signal_scale"] > 0 and cal["latent_scale"] > 0
    card = (d / "MODEL_CARD.md").read_text()
    assert "bfm-stim pretrain --config configs/pretrain-small.toml" in card
    assert f"Steps trained: {info['step']}" in card
    assert json.dumps(info["extra"]["pretrain_config"]["loss"]) in card
    # biomarker heads: the card names the bands the loading code builds, and their calibration
    assert model.biomarker is not None and cal["biomarker_scale"] > 0
    for lo, hi in model.config.biomarker_bands:
        assert f"{lo:g}-{hi:g} Hz" in card
    assert "configs/pretrain-heads.toml" in card and info["extra"]["init_from"]["train_only"] == ["biomarker"]


def test_from_checkpoint_without_path_predicts():
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 0.02, (6, 3))
    rest = rng.normal(0, 10, (6, 3000)).astype(np.float32)
    sur = Surrogate.from_checkpoint(positions=pos, rest=rest)
    fc = sur.predict(rest[:, -600:], torch.zeros(5, sur.cfg.n_stim_features))
    assert fc.signal.shape == (5, 6, sur.horizon * sur.cfg.patch_len) and torch.isfinite(fc.signal_std).all()
    assert fc.biomarker.shape == (5, 6, len(sur.cfg.biomarker_bands)) and torch.isfinite(fc.biomarker_std).all()
