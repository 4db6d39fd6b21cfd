"""The batched run loop shared by every model family.

An :class:`Engine` advances ``B`` rows (patients × trials, same family) together: it turns each
row's stimulus program into per-sample pulses and drive, calls the family's dynamics kernel, then
the observation kernel. Both kernels draw their noise themselves from counter-based streams keyed
by (family, stream, seed, trial) and indexed by the absolute sample (:mod:`simulators._rng`), so
no noise array is generated or copied. Rows of different sizes (node or channel counts) are
zero-padded, which leaves every row's result identical to running it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from bfm_stim.exceptions import SimulatorError
from simulators._rng import stream_key
from simulators.observation import SEGMENT, obs_block, pink_coefficients
from simulators.stimulation import StimProgram

if TYPE_CHECKING:
    from simulators.patient import Patient

__all__ = ["Engine", "pad_stack"]

ARTIFACT_TAU_S = 0.0015  # decay of the amplifier's pulse artifact, s


def pad_stack(arrays: Sequence[np.ndarray], dtype: type | None = None) -> np.ndarray:
    """Stack arrays of equal rank, zero-padding every axis to the largest size."""
    shape = tuple(max(a.shape[i] for a in arrays) for i in range(arrays[0].ndim))
    out = np.zeros((len(arrays), *shape), dtype=dtype or arrays[0].dtype)
    for b, a in enumerate(arrays):
        out[(b, *tuple(slice(0, s) for s in a.shape))] = a
    return out


class Engine:
    """Run state of ``B`` rows of one family; see :meth:`advance`.

    Args:
        patients: One patient per row (repeat a patient for several trials).
        trials: Noise realization per row (the counter key next to the patient's seed).
    """

    def __init__(self, patients: Sequence["Patient"], trials: Sequence[int] | None = None) -> None:
        if not patients:
            raise SimulatorError("an engine needs at least one patient")
        fam = type(patients[0])
        if any(type(p) is not fam for p in patients):
            raise SimulatorError(f"all rows must be one family; got {sorted({type(p).__name__ for p in patients})}")
        self.patients = list(patients)
        self.trials = [0] * len(patients) if trials is None else [int(t) for t in trials]
        if len(self.trials) != len(self.patients):
            raise SimulatorError(f"Got {len(self.trials)=} trials for {len(self.patients)} patients")
        self.family = fam
        self.fs = float(patients[0].fs)
        self.dt = 1.0 / self.fs
        keys = patients[0].kernel_params.keys()
        self.params = {k: pad_stack([p.kernel_params[k] for p in patients]) for k in keys}
        self.state = {k: pad_stack([p.initial_state()[k] for p in patients]) for k in patients[0].initial_state()}
        self.lead = pad_stack([p.lead for p in patients])
        self.nsrc = np.array([p.lead.shape[1] for p in patients], np.int64)
        self.obs = {k: pad_stack([getattr(p, k) for p in patients]) for k in ("dc", "pink_sd", "white_sd", "line_amp", "line_phase")}
        self.pink_a, self.pink_g = pink_coefficients(self.fs)
        self.pink_state = pad_stack([p.pink_initial(t) for p, t in zip(patients, self.trials)])
        self.art_state = np.zeros(self.lead.shape[:2])
        self.n_channels = [p.n_channels for p in patients]
        self.n_targets = max(p.n_targets for p in patients)
        self.line_w = np.array([2.0 * np.pi * p.line_noise_hz / self.fs for p in patients])
        self.reseed(self.trials)  # the noise streams of each row's trial
        self.t = 0
        self.programs: list[StimProgram | None] = [None] * len(patients)
        self._zeros: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def batch_size(self) -> int:
        return len(self.patients)

    def reseed(self, trials: Sequence[int]) -> "Engine":
        """Draw every row's process and observation noise from ``trials[b]``'s streams from the next
        sample on; the state (dynamics, background, artifact) is kept.

        Rows that share a state and are reseeded to different trials are independent continuations of
        that state: their mean estimates the conditional expectation of the future given the full state.
        """
        trials = [int(t) for t in trials]
        if len(trials) != self.batch_size:
            raise SimulatorError(f"Got {len(trials)=} trials for {self.batch_size} rows")
        self.trials = trials
        self.proc_key = np.array([stream_key(p.family, "process", p.seed, t) for p, t in zip(self.patients, trials)],
                                 np.uint64)
        self.obs_key = np.array([stream_key(p.family, "observation", p.seed, t) for p, t in zip(self.patients, trials)],
                                np.uint64)
        return self

    def _zero(self, *shape: int) -> np.ndarray:
        """A cached zero array (read-only use) for rows without a stimulus program."""
        z = self._zeros.get(shape)
        if z is None:
            z = self._zeros[shape] = np.zeros(shape)
        return z

    def advance(self, n_samples: int, *, hidden: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Advance every row by ``n_samples``.

        Returns:
            data: (B, C_max, n) float32 µV (rows with fewer channels are zero-padded);
            src: (B, n, M_max) float32 source signals when ``hidden``, else None;
            active: (B, n) bool, True where a stimulus train is on.
        """
        n = int(n_samples)
        if n < 0:
            raise SimulatorError(f"n_samples must be >= 0; got {n_samples!r}")
        B = self.batch_size
        out = np.empty((B, self.lead.shape[1], n), np.float32)
        src_all = np.empty((B, n, self.lead.shape[2]), np.float32) if hidden else None
        active = np.zeros((B, n), bool)
        done = 0
        while done < n:
            start = self.t
            m = min(n - done, SEGMENT)
            live = [(r, prog) for r, prog in enumerate(self.programs)
                    if prog is not None and prog.end > start and prog.onset < start + m]
            if live:
                pulses = np.zeros((B, m))
                kicks = np.zeros((B, m, self.n_targets))
                drive = np.zeros((B, m, self.n_targets))
                art = np.zeros((B, self.lead.shape[1]))
            else:
                pulses, art = self._zero(B, m), self._zero(B, self.lead.shape[1])
                kicks = drive = self._zero(B, m, self.n_targets)
            for r, prog in live:
                pu, sq, act = prog.segment(start, m, self.fs)
                kicks[r, :, :prog.kick.size] = pu[:, None] * prog.kick[None, :]
                drive[r, :, :prog.drive.size] = sq[:, None] * prog.drive[None, :]
                active[r, done:done + m] = act
                if prog.stimulus.kind == "electrical":
                    pulses[r] = pu
                    art[r, :prog.artifact.size] = prog.artifact
            src = self.family.run_kernel(self.state, self.params, self.proc_key, start, kicks, drive, self.dt)
            obs_block(src, self.nsrc, self.lead, self.obs["dc"], self.pink_state, self.pink_a, self.pink_g,
                      self.obs_key, self.obs["pink_sd"], self.obs["white_sd"], self.obs["line_amp"],
                      self.obs["line_phase"], self.line_w, start, pulses, art, self.art_state,
                      float(np.exp(-self.dt / ARTIFACT_TAU_S)), out[:, :, done:done + m])
            if src_all is not None:
                src_all[:, done:done + m] = src
            self.t += m
            done += m
        return out, src_all, active
