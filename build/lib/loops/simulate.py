"""``bfm-stim simulate``: run a synthetic patient and write a recording MNE opens.

The stimulus file is JSON: either one stimulus (``{"kind": "electrical", ...}``, applied at
``onset_s``), or a list of ``{"onset_s": float, "stimulus": {...}}`` events. Every stimulus passes
the patient's safety check before anything is simulated, so a bad file fails fast and names the
offending event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.files import check_readable
from bfm_stim.recording import Event, Recording
from bfm_stim.space import Stimulus


def load_schedule(path: str | Path, *, default_onset_s: float) -> list[tuple[float, Stimulus]]:
    """Parse a stimulus JSON file into ``[(onset_s, Stimulus), ...]`` sorted by onset."""
    path = check_readable(path, what="stimulus file",
                          hint="give a JSON file with one stimulus or a list of {onset_s, stimulus}")
    try:
        raw: Any = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if isinstance(raw, dict) and "events" in raw:
        raw = raw["events"]
    if isinstance(raw, dict):
        return [(float(default_onset_s), Stimulus.from_dict(raw))]
    if not isinstance(raw, list):
        raise ValidationError("stimulus file", type(raw).__name__, "a stimulus object or a list of {onset_s, stimulus}")
    out = []
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict) or "stimulus" not in ev or "onset_s" not in ev:
            raise ValidationError(f"events[{i}]", ev, "an object with 'onset_s' (s) and 'stimulus'")
        onset = ev["onset_s"]
        if isinstance(onset, bool) or not isinstance(onset, (int, float)) or not np.isfinite(onset) or onset < 0:
            raise ValidationError(f"events[{i}].onset_s", onset, "a finite number >= 0 (s)")
        try:
            stim = Stimulus.from_dict(ev["stimulus"])
        except ValidationError as e:
            raise ValidationError(f"events[{i}].stimulus.{e.field}", e.value, e.allowed) from None
        out.append((float(onset), stim))
    return sorted(out, key=lambda t: t[0])


def simulate_recording(patient, duration_s: float, schedule: list[tuple[float, Stimulus]]) -> Recording:
    """Run ``patient`` for ``duration_s`` s applying ``schedule``; return a :class:`Recording`.

    Each stimulus is checked against the patient's space before the run starts.
    """
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise ValidationError("duration", duration_s, "a finite number of seconds > 0")
    space = patient.stimulus_space()
    for onset, stim in schedule:
        space.check(stim)
        if onset >= duration_s:
            raise ValidationError("onset_s", onset, f"< duration ({duration_s:g} s)")
    fs = float(patient.fs)
    n_total = int(round(duration_s * fs))
    chunks, events, pos = [], [], 0
    for onset, stim in schedule:
        start = int(round(onset * fs))
        if start > pos:
            chunks.append(patient.advance(start - pos))
            pos = start
        patient.start_stimulation(stim)
        events.append(Event(onset_s=pos / fs, duration_s=min(stim.duration_s, duration_s - pos / fs),
                            description=f"stim/{stim.kind}", stimulus=stim.to_dict()))
    if n_total > pos:
        chunks.append(patient.advance(n_total - pos))
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((patient.n_channels, 0), np.float32)
    return Recording(
        data, fs, list(patient.channel_names), ch_types=list(patient.channel_types),
        units=list(patient.channel_units), positions=np.asarray(patient.channel_positions, dtype=float),
        events=tuple(events), meta={"patient": patient.id, "seed": int(patient.seed), "simulated": True},
    )


def simulate_to_file(
    *, patient: str, seed: int, duration_s: float, stimulus_file: str | None, out: str,
    onset_s: float | None = None, regime: str | None = None, overwrite: bool = False,
) -> Path:
    """The ``simulate`` command: make the patient, run the schedule, write FIF."""
    import simulators

    out_path = Path(out)
    if out_path.exists() and not overwrite:
        raise ConfigError(f"{out_path} exists; pass --overwrite to replace it (nothing was simulated)")
    kw = {"regime": regime} if regime else {}
    p = simulators.make(patient, seed=seed, **kw)
    onset = duration_s / 3 if onset_s is None else onset_s
    schedule = load_schedule(stimulus_file, default_onset_s=onset) if stimulus_file else []
    rec = simulate_recording(p, duration_s, schedule)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rec.write_fif(out_path, overwrite=overwrite)
    return out_path
