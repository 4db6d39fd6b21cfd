"""A session directory as BIDS iEEG (``mne-bids``), stimulation parameters in ``events.tsv``.

:func:`export_bids` writes ``DIR/recording.fif`` (:func:`~loops.session.fif.write_session_fif`) and
hands it to :func:`mne_bids.write_raw_bids` (``datatype="ieeg"``; BIDS iEEG takes no FIF, so
mne-bids converts it to BrainVision, which needs ``pybv``). It then rewrites ``*_events.tsv`` with
one row per annotation of the FIF and the iEEG specification's electrical-stimulation columns
(section "Electrical stimulation" of the iEEG chapter) for every train:

=====================================  ==========================================================
``electrical_stimulation_type``        ``biphasic`` or ``monophasic``
``electrical_stimulation_site``        the stimulating contact (monopolar, e.g. ``c2``)
``electrical_stimulation_current``     A (the stimulus' ``amplitude_ma`` / 1000)
``electrical_stimulation_frequency``   Hz
``electrical_stimulation_pulsewidth``  s (``pulse_width_us`` × 1e-6)
=====================================  ==========================================================

plus ``trial``, ``seq``, ``status``, ``cost``, ``stimulus`` (the stimulus JSON) and ``notes``, all
described in ``*_events.json``; sensory trains get ``sensory_modality``, ``sensory_rate`` (Hz) and
``sensory_level``. ``*_ieeg.json`` states ``ElectricalStimulation`` and its parameters. Electrode
positions are written when ``session.json``'s stream entry has them (``"positions"``, m, ``null``
where unknown); otherwise no ``electrodes.tsv``/``coordsystem.json`` is kept.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, RecordingError
from bfm_stim.recording import Event
from loops.session.fif import FIF_NAME, read_meta, write_session_fif
from loops.session.store import LOG, read_log, trial_views

__all__ = ["export_bids", "events_table", "STIM_COLUMNS"]

log = get_logger("loops.session.bids")

STIM_COLUMNS = ("electrical_stimulation_type", "electrical_stimulation_site", "electrical_stimulation_current",
                "electrical_stimulation_frequency", "electrical_stimulation_pulsewidth")
_SENSORY_COLUMNS = ("sensory_modality", "sensory_rate", "sensory_level")
_EXTRA_COLUMNS = ("trial", "seq", "status", "cost", "stimulus", "notes")
#: trial_type per annotation category (its first word) and its event code in the BrainVision markers.
_TYPES = {"stim": ("electrical_stimulation", 1), "sensory": ("sensory_stimulation", 2), "sent": ("command_sent", 3),
          "rejected": ("command_rejected", 4), "interrupted": ("trial_interrupted", 5), "stop": ("stop_command", 6),
          "fault": ("stream_fault", 7), "recovered": ("stream_recovered", 8), "BAD_ACQ_SKIP": ("BAD_ACQ_SKIP", 9),
          "BAD_nonfinite": ("BAD_nonfinite", 10), "gap": ("gap_compressed", 11), "start": ("run_start", 12),
          "end": ("session_end", 13), "calibration": ("calibration_rest", 14), "continuous": ("continuous_mode", 15)}
_LABEL = re.compile(r"^[a-zA-Z0-9]+$")


def _na(x: Any, fmt: str = ".6g") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return format(float(x), fmt) if math.isfinite(x) else "n/a"
    s = " ".join(str(x).split())
    return s.replace("\t", " ") if s else "n/a"


def _category(ev: Event) -> str:
    word = ev.description.split(" ", 1)[0] if ev.description else ("stim" if ev.stimulus else "")
    if word == "stim" and (ev.stimulus or {}).get("kind") == "sensory":
        return "sensory"
    return word


def events_table(events: Sequence[Event], fs: float,
                 views: Mapping[int, Any] | None = None) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of ``events.tsv`` for the FIF's events (onsets s from the first sample).

    Args:
        events: The annotations as :class:`~bfm_stim.recording.Event` (``Recording.events``).
        fs: Sampling rate, Hz (for the ``sample`` column).
        views: ``TrialView`` per trial number (status and cost columns), optional.
    """
    views = views or {}
    sensory = any(_category(e) == "sensory" for e in events)
    cols = ["onset", "duration", "trial_type", "value", "sample", *STIM_COLUMNS,
            *(_SENSORY_COLUMNS if sensory else ()), *_EXTRA_COLUMNS]
    rows = []
    for e in sorted(events, key=lambda e: e.onset_s):
        cat = _category(e)
        trial_type, code = _TYPES.get(cat, (cat or "n/a", 0))
        tags = dict(re.findall(r"\b(trial|seq)=(\d+)", e.description))
        k = int(tags["trial"]) if "trial" in tags else None
        v = views.get(k) if k is not None else None
        row = {"onset": _na(e.onset_s, ".6f"), "duration": _na(e.duration_s, ".6f"), "trial_type": trial_type,
               "value": str(code), "sample": str(int(round(e.onset_s * fs))),
               "trial": _na(k), "seq": _na(int(tags["seq"]) if "seq" in tags else None),
               "status": _na(getattr(v, "status", None)) if cat in ("stim", "sensory") else "n/a",
               "cost": _na(getattr(v, "cost", None)) if cat in ("stim", "sensory") else "n/a",
               "stimulus": json.dumps(e.stimulus, sort_keys=True, separators=(",", ":")) if e.stimulus else "n/a",
               "notes": _na(e.description.split("stimulus=", 1)[0].strip())}
        s = e.stimulus or {}
        if cat == "stim" and s.get("kind") == "electrical":
            row.update({
                "electrical_stimulation_type": "biphasic" if s.get("biphasic", True) else "monophasic",
                "electrical_stimulation_site": _na(s.get("contact")),
                "electrical_stimulation_current": _na(float(s["amplitude_ma"]) / 1000.0 if "amplitude_ma" in s
                                                      else None),
                "electrical_stimulation_frequency": _na(s.get("frequency_hz")),
                "electrical_stimulation_pulsewidth": _na(float(s["pulse_width_us"]) * 1e-6 if "pulse_width_us" in s
                                                          else None)})
        if cat == "sensory":
            row.update({"sensory_modality": _na(s.get("modality")), "sensory_rate": _na(s.get("frequency_hz")),
                        "sensory_level": _na(s.get("level"))})
        rows.append([row.get(c, "n/a") for c in cols])
    return cols, rows


_COLUMN_DOCS: dict[str, dict[str, Any]] = {
    "onset": {"Description": "Onset from the first sample of the recording (LSL clock; stream gaps are filled with "
                             "zeros, those over 60 s shortened, see trial_type gap_compressed).", "Units": "s"},
    "duration": {"Description": "Duration of the event (the stimulation train's duration_s for stimulation).",
                 "Units": "s"},
    "value": {"Description": "Marker code of trial_type in the BrainVision .vmrk file."},
    "sample": {"Description": "Onset in samples from the first sample (0-based)."},
    "electrical_stimulation_type": {"Description": "Pulse waveform.", "Levels": {
        "biphasic": "charge-balanced biphasic pulses", "monophasic": "monophasic pulses"}},
    "electrical_stimulation_site": {"Description": "Stimulating contact (monopolar) of the device's lead."},
    "electrical_stimulation_current": {"Description": "Pulse amplitude.", "Units": "A"},
    "electrical_stimulation_frequency": {"Description": "Pulse rate of the train.", "Units": "Hz"},
    "electrical_stimulation_pulsewidth": {"Description": "Width of one pulse phase.", "Units": "s"},
    "sensory_modality": {"Description": "Sensory stimulation modality (e.g. visual_flicker, auditory_clicks)."},
    "sensory_rate": {"Description": "Flicker or click rate.", "Units": "Hz"},
    "sensory_level": {"Description": "Contrast or loudness level, 0 to 1."},
    "trial": {"Description": "Trial number of the closed-loop session (trials.jsonl)."},
    "seq": {"Description": "Sequence number of the stimulation command."},
    "status": {"Description": "Outcome of the trial.", "Levels": {
        "completed": "the response was scored and told to the optimizer",
        "interrupted": "stopped (fault or operator); never told to the optimizer",
        "sent": "sent; the session ended before the trial did", "rejected": "refused by the device"}},
    "cost": {"Description": "Objective value of the trial's response (lower is better)."},
    "stimulus": {"Description": "The stimulus as sent (JSON; amplitude_ma in mA, frequency_hz in Hz, "
                                "pulse_width_us in microseconds, duration_s in s)."},
    "notes": {"Description": "The annotation text of recording.fif (reasons, fault details, sequence numbers)."},
}


def _events_json(cols: Sequence[str]) -> dict[str, Any]:
    levels = {name: f"annotation '{cat}' of recording.fif" for cat, (name, _) in _TYPES.items()}
    levels.update({"electrical_stimulation": "an electrical stimulation train (onset: the device's applied_at)",
                   "command_sent": "a stimulation command was sent", "BAD_ACQ_SKIP": "no samples arrived (dropout or "
                   "a resumed run): zeros", "BAD_nonfinite": "non-finite samples replaced by zeros"})
    out: dict[str, Any] = {"trial_type": {"Description": "Kind of event.", "Levels": levels}}
    for c in cols:
        if c in _COLUMN_DOCS:
            out[c] = _COLUMN_DOCS[c]
    return out


def _write_tsv(path: Path, cols: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    path.write_text("\t".join(cols) + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def _check_label(name: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not _LABEL.match(value)):
        raise ConfigError(f"{name}={value!r} is not allowed; expected a BIDS label of letters and digits only "
                          "(e.g. '01')")


def _meas_date(records: Sequence[Mapping[str, Any]], lsl_t0: float) -> datetime | None:
    """Wall-clock time of the first sample, from a record holding both clocks."""
    for r in records:
        t, lsl = r.get("t"), r.get("lsl")
        if isinstance(t, (int, float)) and isinstance(lsl, (int, float)):
            return datetime.fromtimestamp(t - (lsl - lsl_t0), tz=timezone.utc)
    return None


def export_bids(dir: Path, bids_root: Path, *, subject: str = "01", session: str | None = None,  # noqa: A002
                task: str = "closedloop", run: int | None = None) -> Path:
    """Write the session directory ``dir`` as BIDS iEEG under ``bids_root``.

    Args:
        dir: The session directory.
        bids_root: The BIDS dataset folder (created; other subjects in it are kept).
        subject: BIDS ``sub-`` label (letters and digits).
        session: BIDS ``ses-`` label, or None.
        task: BIDS ``task-`` label.
        run: BIDS ``run-`` index (>= 1), or None.

    Returns:
        The path of the written ``*_ieeg.vhdr`` file.

    Raises:
        ConfigError: a label or the run index is not allowed, or mne-bids/pybv are missing.
        RecordingError: the directory has no signal (see :func:`~loops.session.fif.write_session_fif`).
    """
    for name, value in (("subject", subject), ("session", session), ("task", task)):
        _check_label(name, value)
    if run is not None and (isinstance(run, bool) or not isinstance(run, int) or run < 1):
        raise ConfigError(f"run={run!r} is not allowed; expected an integer >= 1 or None")
    try:
        import mne
        import mne_bids
        import pybv  # noqa: F401  (mne-bids converts FIF to BrainVision through it)
    except ImportError as exc:
        raise ConfigError(f"BIDS export needs mne-bids and pybv ({exc}); install them with "
                          "`pip install 'mne-bids>=0.15' pybv`") from None
    folder = Path(dir)
    meta = read_meta(folder)
    fif = write_session_fif(folder)
    raw = mne.io.read_raw_fif(fif, preload=False, verbose="error")
    blob = json.loads(raw.info["description"])["bfm_stim"]
    events = [Event(*e) for e in blob["events"]]
    records = read_log(folder / LOG)
    views = {v.trial: v for v in trial_views(records)}
    when = _meas_date(records, float(blob["meta"].get("lsl_t0", 0.0)))
    if when is not None:
        raw.set_meas_date(when)
    fs = float(raw.info["sfreq"])
    onsets = np.array([e.onset_s for e in events]) + raw.first_time
    raw.set_annotations(mne.Annotations(onsets, [e.duration_s for e in events],
                                        [_TYPES.get(_category(e), (_category(e) or "n/a", 0))[0] for e in events],
                                        orig_time=raw.info["meas_date"]), verbose="error")
    pos = np.array([ch["loc"][:3] for ch in raw.info["chs"]], float)
    known = np.isfinite(pos).all(axis=1) & np.any(pos != 0, axis=1)
    event_id = {name: code for name, code in _TYPES.values()}
    bids_path = mne_bids.BIDSPath(subject=subject, session=session, task=task, run=run, datatype="ieeg",
                                  root=Path(bids_root))
    versions = meta.get("versions") or {}
    bids_root = Path(bids_root)
    bids_root.mkdir(parents=True, exist_ok=True)
    if not (bids_root / "dataset_description.json").exists():
        mne_bids.make_dataset_description(path=bids_root, name="bfm-stim closed-loop sessions", overwrite=False,
                                          generated_by=[{"Name": "bfm-stim", "Version": str(versions.get(
                                              "bfm_stim", "n/a")), "Description": "bfm-stim session --export-bids"}],
                                          verbose="error")
    try:
        out = mne_bids.write_raw_bids(raw, bids_path, event_id={k: v for k, v in event_id.items()
                                                                 if k in set(raw.annotations.description)},
                                      format="BrainVision", overwrite=True, verbose="error")
    except (ValueError, RuntimeError, OSError) as exc:
        raise RecordingError(f"{folder / FIF_NAME}: mne-bids could not write it to {bids_root} ({exc})") from exc
    base = out.copy().update(suffix="events", extension=".tsv")
    cols, rows = events_table(events, fs, views)
    _write_tsv(base.fpath, cols, rows)
    base.copy().update(extension=".json").fpath.write_text(json.dumps(_events_json(cols), indent=2) + "\n",
                                                           encoding="utf-8")
    _update_sidecar(out, meta, events)
    for p in [*Path(out.directory).glob(f"sub-{subject}*_electrodes.*"),
              *Path(out.directory).glob(f"sub-{subject}*_coordsystem.json")]:
        p.unlink()  # mne-bids writes all-n/a ones when the raw has no montage
    if known.any():
        _write_electrodes(out, raw.ch_names, pos, known)
    vhdr = out.copy().update(suffix="ieeg", extension=".vhdr").fpath
    log.info("BIDS iEEG: %s (%d events, %d stimulation trains)", vhdr, len(rows),
             sum(r[2] in ("electrical_stimulation", "sensory_stimulation") for r in rows))
    return Path(vhdr)


def _write_electrodes(out: Any, names: Sequence[str], pos: np.ndarray, known: np.ndarray) -> None:
    """``*_space-Other_electrodes.tsv`` and ``*_coordsystem.json``: positions in the device's frame, m."""
    ents = {"subject": out.subject, "session": out.session}
    stem = "_".join(f"{k}-{v}" for k, v in (("sub", ents["subject"]), ("ses", ents["session"])) if v)
    folder = Path(out.directory)
    rows = [[n, *([format(float(v), ".6g") for v in pos[i]] if known[i] else ["n/a"] * 3), "n/a"]
            for i, n in enumerate(names)]
    _write_tsv(folder / f"{stem}_space-Other_electrodes.tsv", ["name", "x", "y", "z", "size"], rows)
    coords = {"iEEGCoordinateSystem": "Other", "iEEGCoordinateUnits": "m",
              "iEEGCoordinateSystemDescription": "The recording device's own frame, as published in its LSL stream "
                                                 "metadata (bfm-stim session); not registered to an image."}
    (folder / f"{stem}_space-Other_coordsystem.json").write_text(json.dumps(coords, indent=4) + "\n", encoding="utf-8")


def _update_sidecar(out: Any, meta: Mapping[str, Any], events: Sequence[Event]) -> None:
    """State the stimulation and the software in ``*_ieeg.json`` (mne-bids guesses "Elekta" from FIF)."""
    sidecar = out.copy().update(suffix="ieeg", extension=".json").fpath
    js = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    stream = meta.get("stream") or {}
    trains = [e.stimulus for e in events if e.stimulus and _category(e) in ("stim", "sensory")]
    elec = [s for s in trains if s.get("kind") == "electrical"]
    js["Manufacturer"] = str(stream.get("manufacturer") or "n/a")
    js["ElectricalStimulation"] = bool(elec)
    if elec:
        amps = [float(s.get("amplitude_ma", 0)) for s in elec]
        freqs = [float(s.get("frequency_hz", 0)) for s in elec]
        js["ElectricalStimulationParameters"] = (
            f"{len(elec)} trains proposed by a closed-loop optimizer, each described in events.tsv "
            f"(electrical_stimulation_* columns); amplitude {min(amps):g}-{max(amps):g} mA, frequency "
            f"{min(freqs):g}-{max(freqs):g} Hz, contacts {', '.join(sorted({str(s.get('contact')) for s in elec}))}")
    js["TaskDescription"] = "Closed-loop stimulation optimization (bfm-stim session)"
    js["SoftwareVersions"] = ", ".join(f"{k} {v}" for k, v in sorted((meta.get("versions") or {}).items())) or "n/a"
    js["DeviceSerialNumber"] = str(stream.get("source_id") or "n/a")
    Path(sidecar).write_text(json.dumps(js, indent=4) + "\n", encoding="utf-8")
