"""A digital twin of a recorded patient: the foundation model's predicted stimulation response.

``bfm-stim play FILE --twin CHECKPOINT`` plays a recording and, on each accepted stimulation
command, adds what the surrogate predicts the stimulus changes — the difference between its
forecast with the stimulus and its forecast without it, from the same context — on top of the
recorded background. The context is the recording's first stimulation-free stretch (the
receptive field of the model), fixed at start-up; the twin therefore models the patient's
typical response, not one that depends on the moment of the command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bfm_stim.exceptions import ModelError
from bfm_stim.preprocessing import resample_data
from bfm_stim.space import Stimulus

__all__ = ["SurrogateTwin", "load_twin"]

_VOLTAGE = {"eeg", "seeg", "ecog", "dbs", "lfp", "meg"}


class SurrogateTwin:
    """``twin(stimulus, n_samples) -> (n_channels, n_samples)`` µV from a :class:`~bfm_stim.surrogate.Surrogate`.

    Args:
        surrogate: A surrogate whose channels are ``rows`` of the recording (same order).
        rec: The recording being played (its rate and channel count define the output).
        rows: Recording channel indices the surrogate models; other channels get zeros.
    """

    def __init__(self, surrogate, rec, rows: list[int]) -> None:
        self.surrogate, self.rows = surrogate, list(rows)
        self.n_channels, self.fs = rec.n_channels, float(rec.fs)
        x = resample_data(rec.data[self.rows].astype(np.float64), rec.fs, surrogate.fs)
        need = surrogate.cfg.max_patches * surrogate.cfg.patch_len
        self.context = torch.as_tensor(x[:, :need], dtype=torch.float32)

    def __call__(self, stim: Stimulus, n_samples: int) -> np.ndarray:
        with torch.no_grad():
            fc = self.surrogate.predict(self.context, [stim, Stimulus.off(stim.duration_s)], signal=True)
        diff = (fc.signal[0] - fc.signal[1]).double().numpy()  # (C_model, T_model) µV
        diff = resample_data(diff, fc.fs, self.fs)
        out = np.zeros((self.n_channels, n_samples), np.float32)
        m = min(n_samples, diff.shape[1])
        out[self.rows, :m] = diff[:, :m]
        return out


def load_twin(path: str | Path, rec, space) -> SurrogateTwin:
    """Twin from a pretrained checkpoint (zero-shot on the recording) or a ``bfm-stim adapt`` file.

    Args:
        path: Checkpoint or patient file.
        rec: The recording being played.
        space: The device's stimulus space; its contact positions (mm, the recording's head
            frame) place the electrical stimuli for the model.

    Raises:
        ModelError: the recording has no voltage channel with a known position.
    """
    from bfm_stim.model import load_checkpoint
    from bfm_stim.model.checkpoint import PATIENT_FORMAT
    from bfm_stim.surrogate import Surrogate

    rows = [i for i, (t, p) in enumerate(zip(rec.ch_types, rec.positions)) if t in _VOLTAGE and np.isfinite(p).all()]
    if not rows:
        raise ModelError(f"--twin needs channel positions; none of {rec.n_channels} channels of the recording has "
                         "a type in " + ", ".join(sorted(_VOLTAGE)) + " and a known position")
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing or not a torch file: load_checkpoint below says what is wrong
        blob = None
    if isinstance(blob, dict) and blob.get("format") == PATIENT_FORMAT:
        sur = Surrogate.from_patient_file(path, space=space)
        if len(sur.positions) != len(rows):
            raise ModelError(f"{path}: the patient file models {len(sur.positions)} channels, the recording has "
                             f"{len(rows)} positioned voltage channels")
    else:  # a pretrained checkpoint (CheckpointError if it is not one), adapted zero-shot to the recording
        _, info = load_checkpoint(path)
        fs_model = float(info["model_config"]["fs"])
        rest = resample_data(rec.data[rows].astype(np.float64), rec.fs, fs_model)[:, : int(30 * fs_model)]
        sur = Surrogate.from_checkpoint(path, positions=rec.positions[rows], rest=rest, space=space)
    return SurrogateTwin(sur, rec, rows)
