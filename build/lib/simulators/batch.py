"""Many patients × trials at once: :func:`simulate_batch` and the streaming :class:`PatientBatch`."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Sequence

import numpy as np
import torch

from bfm_stim.exceptions import SimulatorError, ValidationError
from bfm_stim.space import Stimulus
from simulators.engine import Engine
from simulators.patient import Patient

__all__ = ["BatchResult", "simulate_batch", "PatientBatch"]


@dataclass(frozen=True)
class BatchResult:
    """Results of :func:`simulate_batch`, rows in the order given.

    Attributes:
        data: (B, C_max, T) float32 tensor, µV; row ``b`` is valid in ``[:n_channels[b]]``.
        hidden: (B, T, M_max) float32 tensor of sources, or an empty tensor when not requested.
        stim_mask: (B, T) bool tensor.
        n_channels: Channels per row.
        side_effect: (B,) float64 tensor, reported severity in [0, 1].
        fs: Hz.
    """

    data: torch.Tensor
    hidden: torch.Tensor
    stim_mask: torch.Tensor
    n_channels: tuple[int, ...]
    side_effect: torch.Tensor
    fs: float


def simulate_batch(patients: Sequence[Patient], stimuli: Sequence[Stimulus | None], duration_s: float, *,
                   onset_s: float | Sequence[float] = 0.0, trials: Sequence[int] | None = None,
                   hidden: bool = False, branch_s: float | None = None,
                   branch_trials: Sequence[int] | None = None) -> BatchResult:
    """Simulate row ``b`` = ``patients[b]`` receiving ``stimuli[b]`` for ``duration_s`` seconds.

    Rows of one family run in one kernel call; several families are grouped. Each row's result
    equals ``patients[b].simulate(duration_s, stimuli[b], onset_s, trial=trials[b])``.

    Args:
        patients: (B,) patients (repeat one to run several stimuli or trials on it).
        stimuli: (B,) stimuli or None (no stimulation).
        duration_s: Recording length, s.
        onset_s: Train onset(s), s.
        trials: (B,) noise realizations (default 0).
        hidden: Also return the source signals.
        branch_s: With ``branch_trials``, the time (s) from which row ``b`` draws its noise from
            ``branch_trials[b]``'s streams (:meth:`Engine.reseed`): rows with the same patient, stimulus and
            trial but different branch trials share everything before ``branch_s`` and are independent
            continuations after it. The side-effect report is drawn once per row, from ``trials[b]``.
        branch_trials: (B,) noise realizations after ``branch_s``.
    """
    B = len(patients)
    if len(stimuli) != B:
        raise SimulatorError(f"Got {len(patients)=} and {len(stimuli)=}; expected one stimulus per patient")
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise ValidationError("duration_s", duration_s, "a finite duration > 0 s")
    onsets = [float(onset_s)] * B if np.isscalar(onset_s) else [float(o) for o in onset_s]  # type: ignore[arg-type]
    trials = [0] * B if trials is None else list(trials)
    fs = patients[0].fs
    T = int(round(duration_s * fs))
    if (branch_s is None) != (branch_trials is None):
        raise SimulatorError("branch_s and branch_trials go together")
    if branch_trials is not None and len(branch_trials) != B:
        raise SimulatorError(f"Got {len(branch_trials)=} for {B} rows; expected one branch trial per row")
    t_branch = T if branch_s is None else int(round(float(branch_s) * fs))
    if not 0 <= t_branch <= T:
        raise ValidationError("branch_s", branch_s, f"a time in [0, {duration_s}] s")
    C = max(p.n_channels for p in patients)
    M = max(len(p.source_names) for p in patients)
    data = np.zeros((B, C, T), np.float32)
    src = np.zeros((B, T, M), np.float32) if hidden else np.zeros((0,), np.float32)
    mask = np.zeros((B, T), bool)
    sev = np.zeros(B)
    order = sorted(range(B), key=lambda b: type(patients[b]).__name__)
    for _, grp in groupby(order, key=lambda b: type(patients[b]).__name__):
        rows = list(grp)
        eng = Engine([patients[b] for b in rows], [trials[b] for b in rows])
        for i, b in enumerate(rows):
            s = stimuli[b]
            if s is not None and s.kind != "off":
                eng.programs[i] = patients[b].program(s, int(round(onsets[b] * fs)))
                sev[b] = patients[b].side_effect(s, trial=trials[b])[0]
        d, h, act = eng.advance(t_branch, hidden=hidden)
        if branch_trials is not None:
            eng.reseed([branch_trials[b] for b in rows])
            d2, h2, act2 = eng.advance(T - t_branch, hidden=hidden)
            d, act = np.concatenate([d, d2], 2), np.concatenate([act, act2], 1)
            h = np.concatenate([h, h2], 1) if hidden and h is not None and h2 is not None else h
        for i, b in enumerate(rows):
            data[b, :d.shape[1]] = d[i]
            mask[b] = act[i]
            if hidden and h is not None:
                src[b, :, :h.shape[2]] = h[i]
    return BatchResult(torch.from_numpy(data), torch.from_numpy(src), torch.from_numpy(mask),
                       tuple(p.n_channels for p in patients), torch.from_numpy(sev), fs)


class PatientBatch:
    """Step many patients (or copies of one, as trials) together, as a streaming server would.

    Args:
        patients: One per row, all of one family.
        trials: Noise realization per row (default 0, i.e. identical to each patient's own stream).
    """

    def __init__(self, patients: Sequence[Patient], trials: Sequence[int] | None = None) -> None:
        self.patients = list(patients)
        self._engine = Engine(self.patients, trials)

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def n_channels(self) -> tuple[int, ...]:
        return tuple(self._engine.n_channels)

    def start_stimulation(self, row: int, stim: Stimulus) -> "PatientBatch":
        """Start ``stim`` on row ``row`` at the next sample."""
        p = self.patients[row]
        self._engine.programs[row] = None if stim.kind == "off" else p.program(stim, self._engine.t)
        return self

    def stop_stimulation(self, row: int | None = None) -> "PatientBatch":
        """Stop the train on ``row`` (all rows when None)."""
        for r in range(len(self)) if row is None else [row]:
            self._engine.programs[r] = None
        return self

    def advance(self, n_samples: int) -> torch.Tensor:
        """(B, C_max, n_samples) float32 tensor, µV; row ``b`` valid in ``[:n_channels[b]]``."""
        data, _, _ = self._engine.advance(n_samples)
        return torch.from_numpy(data)
