"""MNE bridge: read EDF/BDF/FIF/BrainVision, convert to and from ``mne.io.Raw``, write FIF.

Voltage channels (FIFF unit V, not stim) become µV on reading and volts again on writing. Channel
types that MNE does not know are written as ``misc``; the original types, units, exact event
times and ``meta`` travel in ``info["description"]`` as JSON under the key ``"bfm_stim"``, so a file
written here reads back unchanged, while any MNE tool still sees plain channels and annotations.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import RecordingError
from bfm_stim.recording import STIM_TYPES, Event, Recording

__all__ = ["read_mne", "from_mne", "to_mne", "write_fif", "FIF_SUFFIXES"]

log = get_logger("io.mne")

#: Endings MNE accepts for raw FIF files without a naming warning.
FIF_SUFFIXES = ("raw.fif", "raw_sss.fif", "raw_tsss.fif", "_meg.fif", "_eeg.fif", "_ieeg.fif",
                "raw.fif.gz", "_meg.fif.gz", "_eeg.fif.gz", "_ieeg.fif.gz", ".fif", ".fif.gz")
# unit string -> (FIFF unit name, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {
    "µV": ("FIFF_UNIT_V", 1e-6), "uV": ("FIFF_UNIT_V", 1e-6), "μV": ("FIFF_UNIT_V", 1e-6),
    "mV": ("FIFF_UNIT_V", 1e-3), "nV": ("FIFF_UNIT_V", 1e-9), "V": ("FIFF_UNIT_V", 1.0),
    "fT": ("FIFF_UNIT_T", 1e-15), "T": ("FIFF_UNIT_T", 1.0), "fT/cm": ("FIFF_UNIT_T_M", 1e-13),
    "T/m": ("FIFF_UNIT_T_M", 1.0), "°C": ("FIFF_UNIT_CEL", 1.0), "s": ("FIFF_UNIT_SEC", 1.0),
    "Hz": ("FIFF_UNIT_HZ", 1.0), "m": ("FIFF_UNIT_M", 1.0), "A": ("FIFF_UNIT_A", 1.0),
    "mol": ("FIFF_UNIT_MOL", 1.0), "": ("FIFF_UNIT_NONE", 1.0),
}
_FIFF_TO_UNIT = {"FIFF_UNIT_V": "V", "FIFF_UNIT_T": "T", "FIFF_UNIT_T_M": "T/m", "FIFF_UNIT_CEL": "°C",
                 "FIFF_UNIT_SEC": "s", "FIFF_UNIT_HZ": "Hz", "FIFF_UNIT_M": "m", "FIFF_UNIT_A": "A",
                 "FIFF_UNIT_MOL": "mol", "FIFF_UNIT_NONE": "", "FIFF_UNIT_UNITLESS": ""}
_TRIGGER_NAME = re.compile(r"(?i)(trig|status|^sti\b|^sti[ _]?\d+|stim)")


def _reader(fmt: str) -> Any:
    import mne

    return {"fif": mne.io.read_raw_fif, "edf": mne.io.read_raw_edf, "bdf": mne.io.read_raw_bdf,
            "brainvision": mne.io.read_raw_brainvision}[fmt]


def read_mne(path: Path, fmt: str) -> Recording:
    """Read an EDF, BDF, FIF or BrainVision file through MNE.

    EDF/BDF channels whose name looks like a trigger (``TRIG``, ``Status``, ``STI 014``…) are read
    as stim channels (raw codes, not scaled); EDF+ type prefixes (``EEG``, ``EOG``, ``ECG``) set the
    channel type.

    Raises:
        RecordingError: MNE cannot parse the file (corrupt, truncated, wrong content).
    """
    read = _reader(fmt)
    kwargs: dict[str, Any] = {"preload": True, "verbose": "warning"}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fmt in ("edf", "bdf"):
                header = read(path, preload=False, verbose="error")
                triggers = [c for c in header.ch_names if _TRIGGER_NAME.search(c)]
                kwargs.update(infer_types=True, stim_channel=triggers or "auto")
            raw = read(path, **kwargs)
    except Exception as exc:  # MNE raises many types for corrupt files; surface one error.
        raise RecordingError(f"{path}: cannot read as {fmt} ({type(exc).__name__}: {exc})") from exc
    for w in caught:
        if "does not match the file size" in str(w.message):
            raise RecordingError(f"{path}: truncated or corrupt {fmt} file ({w.message})")
        log.warning("%s: %s", path.name, w.message)
    if fmt == "brainvision":
        _check_brainvision_size(path, raw)
    try:
        rec = from_mne(raw)
    except RecordingError as exc:
        raise RecordingError(f"{path}: {exc}") from None
    rec.meta.setdefault("source", str(path))
    rec.meta["format"] = fmt
    return rec


def _check_brainvision_size(path: Path, raw: Any) -> None:
    """A binary BrainVision data file must hold whole frames (one sample of every channel)."""
    sizes = {"short": 2, "int": 4, "single": 4, "double": 8, "int16": 2, "int32": 4, "float32": 4}
    try:
        extras = raw._raw_extras[0]
        frame = sizes[str(extras["fmt"])] * int(extras["orig_nchan"])
        data_file = Path(raw.filenames[0])
    except (AttributeError, IndexError, KeyError, TypeError):
        return  # text/ASCII variants or an MNE layout we do not know: nothing to check
    size = data_file.stat().st_size
    if size % frame:
        raise RecordingError(
            f"{path}: data file {data_file.name} is truncated or corrupt: {size} bytes is not a whole number "
            f"of {frame}-byte frames ({extras['orig_nchan']} channels of {extras['fmt']})"
        )


def _stored(raw: Any) -> dict[str, Any]:
    desc = raw.info.get("description") or ""
    if not desc.startswith('{"bfm_stim"'):
        return {}
    try:
        blob = json.loads(desc)["bfm_stim"]
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(blob, dict) or blob.get("ch_names") != list(raw.ch_names):
        return {}
    return blob


def from_mne(raw: Any) -> Recording:
    """Convert an MNE ``Raw`` to a :class:`Recording` (loads its data)."""
    from mne.io.constants import FIFF

    fiff_names = {int(v): k for k, v in vars(FIFF).items() if k.startswith("FIFF_UNIT_")}
    stored = _stored(raw)
    mne_types = list(raw.get_channel_types())
    data = raw.get_data().astype(np.float64)
    types, units = [], []
    for i, ch in enumerate(raw.info["chs"]):
        fiff_unit = fiff_names.get(int(ch["unit"]), "FIFF_UNIT_NONE")
        kind = mne_types[i]
        if stored:
            kept = stored["ch_types"][i]
            kind = kept if _mne_type(kept) == mne_types[i] else mne_types[i]
            unit = stored["units"][i]
            fiff_kept, factor = _UNITS.get(unit, ("FIFF_UNIT_NONE", 1.0))
            if fiff_kept == fiff_unit:
                data[i] /= factor
                units.append(unit)
                types.append(kind)
                continue
        if kind not in STIM_TYPES and fiff_unit == "FIFF_UNIT_V":
            data[i] *= 1e6
            units.append("µV")
        else:
            units.append(_FIFF_TO_UNIT.get(fiff_unit, fiff_unit.removeprefix("FIFF_UNIT_").lower()))
        types.append(kind)
    pos = np.array([ch["loc"][:3] for ch in raw.info["chs"]], dtype=np.float64).reshape(-1, 3)
    pos[np.all(pos == 0.0, axis=1)] = np.nan
    pos[~np.isfinite(pos)] = np.nan
    fs = float(raw.info["sfreq"])
    if not np.isfinite(data).all():  # say where the gaps are (a Recording holds finite samples only)
        from bfm_stim.sanity import nan_gaps

        gaps = nan_gaps(data, fs, list(raw.ch_names))
        raise RecordingError(f"{len(gaps)} channel(s) hold NaN or infinite samples: "
                             + " | ".join(g.message for g in gaps))
    duration = raw.n_times / fs
    ann = raw.annotations
    shift = raw.first_time if ann.orig_time is not None else 0.0
    events = [Event.from_annotation(float(min(max(o - shift, 0.0), duration)), float(d), str(t))
              for o, d, t in zip(ann.onset, ann.duration, ann.description)]
    exact = [Event(*e) for e in stored.get("events", [])]
    if exact and len(exact) == len(events) and all(
        a.description == b.description and a.stimulus == b.stimulus and abs(a.onset_s - b.onset_s) < 1e-3
        and abs(a.duration_s - b.duration_s) < 1e-3 for a, b in zip(sorted(exact, key=_key), sorted(events, key=_key))
    ):
        events = exact
    meta = dict(stored.get("meta", {}))
    if raw.info["bads"]:
        meta["bads"] = list(dict.fromkeys([*meta.get("bads", []), *raw.info["bads"]]))
    return Recording(data, fs, list(raw.ch_names), types, units, pos, events, meta)


def _key(e: Event) -> tuple[float, str]:
    return (round(e.onset_s, 3), e.description)


def _mne_type(kind: str) -> str:
    from mne.io import get_channel_type_constants

    return kind if kind in get_channel_type_constants(include_defaults=True) else "misc"


def to_mne(rec: Recording) -> Any:
    """Convert to ``mne.io.RawArray``: SI units, annotations from events, positions in ``loc``."""
    import mne
    from mne.io.constants import FIFF

    info = mne.create_info(list(rec.ch_names), rec.fs, [_mne_type(t) for t in rec.ch_types], verbose="error")
    data = rec.data.astype(np.float64)
    for i, unit in enumerate(rec.units):
        fiff_name, factor = _UNITS.get(unit, ("FIFF_UNIT_NONE", 1.0))
        data[i] *= factor
        info["chs"][i]["unit"] = getattr(FIFF, fiff_name)
        info["chs"][i]["loc"][:3] = rec.positions[i]
    blob = {"ch_names": list(rec.ch_names), "ch_types": list(rec.ch_types), "units": list(rec.units),
            "events": [[e.onset_s, e.duration_s, e.description, e.stimulus] for e in rec.events],
            "meta": rec.meta}
    info["description"] = json.dumps({"bfm_stim": blob}, default=str)
    info["bads"] = [b for b in rec.meta.get("bads", []) if b in rec.ch_names]
    raw = mne.io.RawArray(data, info, verbose="error")
    if rec.events:
        raw.set_annotations(mne.Annotations([e.onset_s for e in rec.events], [e.duration_s for e in rec.events],
                                            [e.to_annotation() for e in rec.events]), verbose="error")
    return raw


def write_fif(rec: Recording, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``rec`` as a raw FIF file (double precision) and return its path.

    Raises:
        RecordingError: Wrong file ending (lists the allowed ones), existing file without
            ``overwrite``, or the file cannot be written.
    """
    p = Path(path)
    if not p.name.lower().endswith(FIF_SUFFIXES):
        raise RecordingError(f"{p}: a FIF file name must end with one of {', '.join(FIF_SUFFIXES)}")
    if p.exists() and not overwrite:
        raise RecordingError(f"{p}: file exists; pass overwrite=True to replace it")
    if not p.parent.is_dir():
        raise RecordingError(f"{p}: folder {p.parent} does not exist")
    raw = to_mne(rec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw.save(p, overwrite=overwrite, fmt="double", verbose="error")
    except OSError as exc:
        raise RecordingError(f"{p}: cannot write FIF ({exc})") from exc
    log.info("wrote %s (%d ch, %.3f s, %d events)", p, rec.n_channels, rec.duration_s, len(rec.events))
    return p
