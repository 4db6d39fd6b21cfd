"""The brain foundation model: architecture, objectives, data, checkpoints and adaptation."""

from __future__ import annotations

from bfm_stim.model.adapt import MODES, AdaptResult, adapt, forecast_error, infer_embedding
from bfm_stim.model.bfm import BrainFoundationModel, normalize
from bfm_stim.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from bfm_stim.model.config import ModelConfig
from bfm_stim.model.data import Batch, CorpusStream, PatientSeries, ShardWriter, load_manifest, sample_batch
from bfm_stim.model.losses import LossConfig, LossModule, compute_losses

__all__ = [
    "ModelConfig", "BrainFoundationModel", "normalize",
    "LossConfig", "LossModule", "compute_losses",
    "PatientSeries", "Batch", "sample_batch", "ShardWriter", "CorpusStream", "load_manifest",
    "save_checkpoint", "load_checkpoint", "read_checkpoint",
    "MODES", "AdaptResult", "adapt", "infer_embedding", "forecast_error",
]
