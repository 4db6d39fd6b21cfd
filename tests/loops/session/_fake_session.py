"""Session directories written through the real SessionStore/SignalWriter, with a simulated patient.

:func:`make_session` plays a whole session on a fake LSL clock: calibration rest, trials (completed,
one rejected by the device, one interrupted by a dropout with a stop command and a 2 s stream gap,
non-finite samples in one response window), a resumed run after a long gap, continuous-mode
segments, and the end. It returns the ground truth the tests check the exports against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import simulators
from bfm_stim.space import Stimulus
from loops.session.store import LOG, SessionStore

T0 = 5000.0  # LSL time of the first sample, s
LATENT_DIM = 6


@dataclass
class Truth:
    """What the fake session did (LSL s unless said otherwise)."""

    fs: float
    t0: float
    n_channels: int
    ch_names: list[str]
    ch_types: list[str]
    applied: dict[int, float] = field(default_factory=dict)  # trial -> applied_at
    stimuli: dict[int, dict[str, Any]] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    costs: dict[int, float] = field(default_factory=dict)
    dropout: tuple[float, float] | None = None  # the stream gap inside the interrupted trial
    resume_gap: tuple[float, float] | None = None
    nonfinite: tuple[float, float] | None = None  # first and last NaN sample times
    rest_window: tuple[float, float] = (0.0, 0.0)
    n_samples: int = 0


class _Clock:
    """Emits the patient's samples up to a given LSL time into the SignalWriter."""

    def __init__(self, patient: Any, writer: Any, fs: float, rng: np.random.Generator, speed: float = 1.0) -> None:
        self.p, self.w, self.rng = patient, writer, rng
        self.fs = fs * speed  # samples per LSL second (a simulator run faster than real time)
        self.t = T0  # time of the next sample
        self.n = 0
        self.nan_at: tuple[float, float] | None = None

    def emit(self, until: float, *, chunk: int = 100) -> np.ndarray:
        """Emit samples up to ``until``; returns them, ``(n_channels, n)``."""
        n = int(np.floor((until - self.t) * self.fs))
        out = []
        while n > 0:
            m = min(chunk, n)
            data = np.asarray(self.p.advance(m), np.float32)
            times = self.t + np.arange(m) / self.fs + self.rng.normal(0.0, 2e-5, m)  # small LSL jitter
            if self.nan_at is not None:
                sel = (times >= self.nan_at[0]) & (times <= self.nan_at[1])
                data[0, sel] = np.nan
            self.w.append(data, times)
            out.append(data)
            self.t += m / self.fs
            self.n += m
            n -= m
        return np.concatenate(out, axis=1) if out else np.zeros((0, 0), np.float32)

    def skip(self, seconds: float) -> None:
        self.t += seconds


def _stimulus(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    if kind == "sensory":
        return Stimulus.sensory(modality=str(rng.choice(["visual_flicker", "auditory_clicks"])),
                                frequency_hz=float(np.round(rng.uniform(5, 45), 1)),
                                level=float(np.round(rng.uniform(0.1, 1.0), 2))).to_dict()
    return Stimulus.electrical(contact=f"c{int(rng.integers(0, 4))}",
                               amplitude_ma=float(np.round(rng.uniform(0.5, 3.0), 2)),
                               frequency_hz=float(np.round(rng.uniform(20, 180))), pulse_width_us=60.0,
                               duration_s=1.0).to_dict()


def _beta(x: np.ndarray, fs: float) -> float:
    x = x[np.isfinite(x).all(axis=1)] if x.ndim == 2 else x
    spec = np.abs(np.fft.rfft(x - x.mean(axis=-1, keepdims=True), axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / fs)
    return float(np.log10(spec[..., (f >= 13) & (f <= 30)].mean() + 1e-12))


def make_session(path: Path, *, n_trials: int = 8, seed: int = 0, kind: str = "electrical",
                 interrupt: int | None = 4, reject: int | None = 2, nonfinite: int | None = 5,
                 resume: bool = True, continuous: bool = True, latents: bool = True, rest_s: float = 4.0,
                 trial_rest_s: float = 0.3, speed: float = 1.0) -> Truth:
    """Write a session directory at ``path`` (see the module docstring); returns the ground truth."""
    rng = np.random.default_rng(seed)
    patient = simulators.make("bg-beta-v0", seed=seed + 1)
    fs = float(patient.fs)
    names = list(patient.channel_names)
    store = SessionStore(path, create=True)
    target = rng.normal(size=LATENT_DIM)
    meta = {"config": {"device": {"source_id": f"sim-{seed}", "name": "bfm-sim"},
                       "trials": {"optimizer": "guided", "budget": n_trials, "seed": seed},
                       "calibration": {"target": "healthy", "mode": "zero_shot", "rest_s": rest_s}},
            "versions": {"bfm_stim": "0.1.0"},
            "stream": {"source_id": f"sim-{seed}", "name": "bfm-sim", "fs": fs, "speed": speed, "ch_names": names,
                       "ch_types": [t.upper() for t in patient.channel_types],
                       "units": ["microvolts"] * len(names), "n_channels": len(names),
                       "acquisition": {"model": "bg-beta-v0", "patient_id": "bg-beta-v0", "seed": str(seed + 1)}}}
    store.write_meta(meta)
    writer = store.open_signal(len(names))
    clock = _Clock(patient, writer, fs, rng, speed)
    truth = Truth(fs=fs, t0=T0, n_channels=len(names), ch_names=names, ch_types=list(patient.channel_types))
    store.append("start", lsl=T0 - 0.5, run=0, resume=False, session_id="s-test", first_seq=0)
    clock.emit(T0 + rest_s / speed)
    truth.rest_window = (T0, T0 + rest_s / speed)
    store.append("calibrated", lsl=clock.t, rest_s=rest_s, mode="zero_shot",
                 target={"kind": "healthy", "spec": "healthy", **({"latent": target.tolist()} if latents else {})},
                 adapt={"mode": "zero_shot"}, rest_window=list(truth.rest_window), baseline_cost=6.5)
    seq = 0

    def trial(k: int) -> None:
        nonlocal seq
        stim = _stimulus(rng, kind)
        truth.stimuli[k] = stim
        t = clock.t
        store.append("asked", lsl=t, trial=k, stimulus=stim, ask_s=float(rng.uniform(0.05, 0.4)), probe=k == 0)
        clock.emit(t + 0.005)
        apply_at = t + 0.025
        store.append("sent", lsl=clock.t, trial=k, seq=seq, apply_at=apply_at, session_id="s-test", stimulus=stim)
        if k == reject:
            clock.emit(t + 0.02)
            store.append("ack", lsl=clock.t, trial=k, seq=seq, status="rejected", reason="unsafe",
                         detail="shannon k = 1.9 exceeds 1.75")
            store.append("rejected", lsl=clock.t, trial=k, reason="unsafe", detail="shannon k = 1.9 exceeds 1.75")
            truth.status[k] = "rejected"
            seq += 1
            clock.emit(clock.t + trial_rest_s)
            return
        clock.emit(apply_at)
        applied = clock.t + float(rng.uniform(0.0, 0.0008))
        if kind == "electrical":
            patient.start_stimulation(Stimulus.from_dict(stim))
        store.append("ack", lsl=applied + 0.0005, trial=k, seq=seq, status="applied", applied_at=applied,
                     reason=None, detail=None, side_effect=None)
        truth.applied[k] = applied
        seq += 1
        if k == interrupt:
            clock.emit(applied + 0.4)
            store.append("fault", lsl=clock.t, kind="dropout", detail="no sample for 0.31 s")
            store.append("stop", lsl=clock.t + 0.001, seq=seq, reason="dropout")
            seq += 1
            store.append("interrupted", lsl=clock.t + 0.002, trial=k, reason="dropout")
            truth.status[k] = "interrupted"
            patient.stop_stimulation()
            gap0 = clock.t
            clock.skip(2.0)
            truth.dropout = (gap0, clock.t)
            clock.emit(clock.t + 0.3)
            store.append("recovered", lsl=clock.t, detail="stream valid again")
            clock.emit(clock.t + trial_rest_s)
            return
        if k == nonfinite:
            clock.nan_at = (applied + 1.1, applied + 1.13)
            truth.nonfinite = clock.nan_at
        dur = float(stim.get("duration_s", 1.0))
        clock.emit(applied + dur / speed)
        w0, w1 = clock.t, clock.t + 0.5 / speed
        resp = clock.emit(w1)
        clock.nan_at = None
        cost = _beta(resp[:8], fs)
        truth.costs[k] = cost
        extra = {"latent": (target + rng.normal(0, 0.3 + 0.2 * abs(cost), LATENT_DIM)).tolist()} if latents else {}
        charge = (stim["amplitude_ma"] * stim["pulse_width_us"] / 1000 * 2 * stim["frequency_hz"] * dur
                  if kind == "electrical" else 0.0)
        store.append("outcome", lsl=clock.t + 0.002, trial=k, cost=cost, side_effect=None, window=[w0, w1],
                     seq=seq - 1, charge_uc=charge, score_s=0.004, **extra)
        truth.status[k] = "completed"
        clock.emit(clock.t + trial_rest_s)
        # as the runner: timings in their own record, after the rest
        store.append("timing", lsl=clock.t, trial=k, trial_s=0.025 + dur + 0.5 + trial_rest_s, stim_s=dur,
                     response_s=0.5, rest_s=trial_rest_s, overhead_s=float(rng.uniform(0.005, 0.03)),
                     dead_s=float(rng.uniform(0.001, 0.012)), lead_s=0.025, ask_s=0.1, policy="pending", sync=False)

    for k in range(n_trials):
        trial(k)
    if resume:
        g0 = clock.t
        clock.skip(90.0)  # the process died; resumed 90 s later
        truth.resume_gap = (g0, clock.t)
        store.append("start", lsl=clock.t, run=1, resume=True, session_id="s-test", first_seq=seq)
        clock.emit(clock.t + 0.5)
        trial(n_trials)
    if continuous:
        for seg, mode in enumerate(("adaptive", "open_loop")):
            store.append("continuous", lsl=clock.t, phase="start", mode=mode, segment=seg)
            t_start = clock.t
            amp = 0.0
            for i in range(40):
                clock.emit(t_start + 0.1 * (i + 1))
                bio = float(1.0 + 0.5 * np.sin(i / 5) + rng.normal(0, 0.1))
                if mode == "adaptive":
                    amp = min(2.0, amp + 0.1) if bio > 1.2 else max(0.0, amp - 0.1)
                else:
                    amp = 2.0
                store.continuous({"t": clock.t, "segment": seg, "mode": mode, "biomarker": bio, "amplitude_ma": amp,
                                  "threshold_on": 1.2 if mode == "adaptive" else None,
                                  "threshold_off": 0.9 if mode == "adaptive" else None,
                                  "seq": seq + i, "applied_at": clock.t + 0.003})
            store.append("continuous", lsl=clock.t, phase="end", mode=mode, segment=seg, charge_uc=12.5)
    best = min(truth.costs, key=truth.costs.get) if truth.costs else None
    store.append("end", lsl=clock.t, reason="budget",
                 best=None if best is None else {"trial": best, "stimulus": truth.stimuli[best],
                                                 "cost": truth.costs[best]})
    store.close()
    truth.n_samples = clock.n
    return truth


def tear(path: Path) -> None:
    """Leave ``path`` as a SIGKILL mid-write would: a torn sample row and half a JSON line."""
    d = path / "stream" / "data.f32"
    with open(d, "r+b") as f:
        f.truncate(d.stat().st_size - 3)
    with open(path / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"type": "outcome", "t": 1.0, "lsl": 1.0, "trial": 99})[:25])
