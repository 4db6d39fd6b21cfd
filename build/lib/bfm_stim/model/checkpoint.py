"""Checkpoint I/O for the BFM.

A checkpoint is a plain dict of tensors and JSON-able values (the model config as a dict, never a
pickled object), read back with ``torch.load(weights_only=True)``. Anything that does not match the
code loading it raises :class:`~bfm_stim.exceptions.CheckpointError` saying what differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from bfm_stim.exceptions import CheckpointError, ConfigError, ValidationError
from bfm_stim.model.bfm import BrainFoundationModel
from bfm_stim.model.config import ModelConfig

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "save_patient", "load_patient", "FORMAT", "VERSION"]

FORMAT = "bfm-stim-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, model: BrainFoundationModel, *, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    Args:
        path: destination ``.pt`` file.
        model: the model (unwrapped, not DDP).
        optimizer: optional optimizer whose state is stored for resuming.
        step: training step reached.
        extra: JSON-able metadata (training config, calibration scales, corpus info...).

    Returns: the path written.
    """
    path = Path(path)
    extra = dict(extra or {})
    try:
        json.dumps(extra)
    except TypeError as err:
        raise CheckpointError(f"checkpoint extra must be JSON-able: {err}") from err
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "extra_json": json.dumps(extra),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate the raw checkpoint dict (``weights_only=True``); ``extra`` is decoded."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt file, pickled objects, truncated zip
        raise CheckpointError(f"cannot read checkpoint {path}: not a torch file, truncated or holding code ({type(err).__name__}); give one written by `bfm-stim pretrain` or `bfm-stim adapt`") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bfm-stim checkpoint (format={ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__!r})")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {ckpt.get('version')}; this code reads {VERSION}")
    ckpt["extra"] = json.loads(ckpt.pop("extra_json", "{}"))
    return ckpt


def _load_state(model: BrainFoundationModel, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"checkpoint {path} does not match the model: missing={missing[:5]} "
                              f"unexpected={unexpected[:5]} shape mismatches={shapes[:5]}")
    model.load_state_dict(state)


def load_checkpoint(path: str | Path, *, model: BrainFoundationModel | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[BrainFoundationModel, dict[str, Any]]:
    """Load a checkpoint into a new model (or into ``model``, whose config must match).

    Args:
        path: checkpoint file.
        model: existing model to fill; its config must equal the stored one.
        optimizer: optimizer to restore (when the checkpoint holds one).
        map_location: device for tensors.

    Returns: (model, info) with info keys ``step``, ``extra``, ``model_config``.

    Raises:
        CheckpointError: missing, unreadable, other format/version, config or shape mismatch.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location)
    try:
        cfg = ModelConfig.from_dict(ckpt["model_config"])
    except (ConfigError, ValidationError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} has an invalid model config: {err}") from err
    if model is None:
        model = BrainFoundationModel(cfg)
    elif model.config != cfg:
        diff = {k: (v, getattr(model.config, k)) for k, v in cfg.to_dict().items()
                if v != model.config.to_dict()[k]}
        raise CheckpointError(f"checkpoint {path} config differs from the model's (checkpoint, model): {diff}")
    _load_state(model, ckpt["state_dict"], path)
    if optimizer is not None:
        if ckpt.get("optimizer") is None:
            raise CheckpointError(f"checkpoint {path} holds no optimizer state to resume from")
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"optimizer state in {path} does not match: {err}") from err
    return model, {"step": ckpt["step"], "extra": ckpt["extra"], "model_config": ckpt["model_config"]}


PATIENT_FORMAT = "bfm-stim-patient"


def save_patient(path: str | Path, model: BrainFoundationModel, *, embedding: torch.Tensor,
                 positions: Any, ch_names: list[str], calibration: dict[str, float] | None = None,
                 extra: dict[str, Any] | None = None, forecaster: Any = None) -> Path:
    """Write an adapted patient file: the tuned model, the patient's embedding, montage and calibration.

    Args:
        path: destination ``.pt`` file (read back with ``weights_only=True``).
        model: the adapted model.
        embedding: (d_patient,) patient embedding.
        positions: (C, 3) electrode positions, m (NaN where unknown).
        ch_names: the C channel names, in the order of ``positions``.
        calibration: conformal scales ``{"signal_scale", "latent_scale", "level"}`` (and
            ``"response_scale"`` for a model with a response head).
        extra: JSON-able metadata (mode, recording, source checkpoint, losses...).
        forecaster: (C, ar_lags, H) the patient's linear forecaster, when the model has a linear path.
    """
    path = Path(path)
    pos = torch.as_tensor(positions, dtype=torch.float32)
    if pos.dim() != 2 or pos.shape != (len(ch_names), 3):
        raise CheckpointError(f"positions must be (C, 3) for C={len(ch_names)} channels; got {tuple(pos.shape)}")
    meta = {"ch_names": list(ch_names), "calibration": dict(calibration or {}), **(extra or {})}
    try:
        meta_json = json.dumps(meta)
    except TypeError as err:
        raise CheckpointError(f"patient file metadata must be JSON-able: {err}") from err
    blob = {"format": PATIENT_FORMAT, "version": VERSION, "model_config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "embedding": embedding.detach().cpu().reshape(-1).float(), "positions": pos, "meta_json": meta_json}
    if forecaster is not None:
        fc = torch.as_tensor(forecaster, dtype=torch.float32)
        if fc.dim() != 3 or fc.shape[0] != len(ch_names):
            raise CheckpointError(f"forecaster must be (C={len(ch_names)}, lags, H); got {tuple(fc.shape)}")
        blob["forecaster"] = fc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_patient(path: str | Path) -> tuple[BrainFoundationModel, dict[str, Any]]:
    """Read a patient file written by :func:`save_patient` (``weights_only=True``).

    Returns: (model, info) with info keys ``embedding`` (d_patient,), ``positions`` (C, 3) m,
    ``forecaster`` ((C, lags, H) or None) and ``meta`` (``ch_names``, ``calibration``, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no patient file at {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read patient file {path}: {err}") from err
    if not isinstance(blob, dict) or blob.get("format") != PATIENT_FORMAT:
        raise CheckpointError(f"{path} is not a bfm-stim patient file (adapt one with `bfm-stim adapt`)")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"{path} has patient-file version {blob.get('version')}; this code reads {VERSION}")
    try:
        model = BrainFoundationModel(ModelConfig.from_dict(blob["model_config"]))
    except (ConfigError, ValidationError, TypeError) as err:
        raise CheckpointError(f"patient file {path} has an invalid model config: {err}") from err
    _load_state(model, blob["state_dict"], path)
    return model.eval(), {"embedding": blob["embedding"], "positions": blob["positions"],
                          "forecaster": blob.get("forecaster"), "meta": json.loads(blob["meta_json"])}
