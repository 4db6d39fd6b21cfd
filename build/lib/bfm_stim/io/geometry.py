"""Channel types, electrode positions and stimulation contacts from where users keep them.

Sources, applied in this order (a later one overrides an earlier one, channel by channel):

1. the file itself: what the reader found (:mod:`bfm_stim.io.mne_io` reads MNE's channel types
   and ``loc`` positions, XDF its ``<channels>`` metadata);
2. BIDS sidecars next to the file (``*_channels.tsv``, ``*_electrodes.tsv``, ``*_coordsystem.json``
   with the same subject/session entities), found by :func:`bids_sidecars`;
3. an MNE montage: a standard name (``"standard_1020"``, ``"biosemi64"``…) or a file MNE reads
   (``.elc``, ``.sfp``, ``.bvef``…), :func:`montage_geometry`;
4. files the user gives (:func:`read_geometry`): a BIDS-style ``.tsv``, a ``.csv`` or a ``.toml``
   with ``name``, ``type``, ``x``, ``y``, ``z`` (m; or ``x_mm``/``y_mm``/``z_mm``), and optionally
   ``area_mm2``, ``lead``, ``contact``, ``stim`` (true when the contact can stimulate) and
   ``status`` (``bad`` leaves the channel out). A TOML file::

       units = "mm"                 # of x, y, z: m (default), mm or cm
       [[electrodes]]
       name = "LFP_L0"
       type = "dbs"
       x = 12.1
       y = -13.4
       z = -6.0
       area_mm2 = 6.0
       lead = "STN-L"
       contact = 0

:func:`apply_geometry` writes types and positions into a new :class:`~bfm_stim.recording.Recording`
(``lfp`` becomes ``dbs``; a bipolar channel ``A-B`` is placed at the midpoint of ``A`` and ``B``)
and keeps the electrodes' extra information (area, lead, contact, stim) in ``meta["electrodes"]``
and bad channels in ``meta["bads"]``. :func:`stimulation_contacts` turns the recording's own lead
contacts (electrodes marked ``stim``, else dbs/seeg contacts with positions) into
:class:`~bfm_stim.space.Contact` s; there is no default lead.

Channels without a position. What the model does with them today (``bfm_stim/model``):
:class:`~bfm_stim.model.layers.ChannelEmbedding` replaces a NaN position by the origin and sets an
"unknown" flag input, so every channel without a position gets the same channel embedding; the
pretraining corpus (synthetic patients) gives every visible channel a position, so the weights of
that flag were never trained on a positionless channel. The read-in then tells such channels apart
only by their signals. The stimulus-locked response term (``model/stimlocked.py``) puts them at the
origin (``nan_to_num``) when it measures their distance to the stimulated contact, so that geometry
means nothing for them. :func:`bfm_stim.sanity.check_recording` reports them as a ``no_positions``
note. (``optimize --surrogate-only`` used to replace NaN by 0, the origin as a *known* position; it
now passes NaN, as the model expects.) What this costs (``bench/real.json``, ``missing_positions``;
zero-shot on 4 simulated evaluation patients per family, stimulation off): median forecast R² at
40/160 ms with true, all-NaN and shuffled positions 0.524/0.243, 0.527/0.244, 0.525/0.245 (bg-beta)
and 0.864/0.852, 0.875/0.859, 0.865/0.850 (cortex-jr-epileptic): no measurable loss, since the
per-channel linear forecaster alone does as well or better (0.520/0.247, 0.903/0.877); the response to
stimulation, which reads the distance to the stimulated contact, is not covered by that figure.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError
from bfm_stim.recording import Recording
from bfm_stim.sanity import Finding

__all__ = ["Electrode", "Geometry", "read_geometry", "bids_sidecars", "read_bids_geometry", "montage_geometry",
           "apply_geometry", "resolve_geometry", "stimulation_contacts", "missing_contacts_message",
           "normalize_type", "ASSUMED_AREA_CM2", "STIM_TYPES"]

log = get_logger("io.geometry")

#: Contact area assumed when none is given, cm² (1 mm², smaller than any common DBS or sEEG
#: contact, so the charge-density limit errs on the safe side).
ASSUMED_AREA_CM2 = 0.01
#: Channel (or BIDS electrode) types whose contacts can stimulate when nothing else says so.
STIM_TYPES = frozenset({"dbs", "seeg", "depth"})
_UNITS = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}
_TYPES = {"eeg": "eeg", "ecog": "ecog", "seeg": "seeg", "dbs": "dbs", "lfp": "dbs", "eog": "eog", "veog": "eog",
          "heog": "eog", "ecg": "ecg", "ekg": "ecg", "emg": "emg", "trig": "stim", "trigger": "stim",
          "stim": "stim", "misc": "misc", "resp": "resp", "gsr": "gsr", "temp": "temperature",
          "temperature": "temperature", "audio": "misc", "pd": "misc", "eyegaze": "eyegaze", "pupil": "pupil",
          "ref": "misc", "other": "misc", "sysclock": "misc", "adc": "misc", "dac": "misc", "acc": "misc",
          "accel": "misc", "mov": "misc", "force": "misc"}
_NA = {"", "n/a", "na", "nan", "none"}


@dataclass(frozen=True)
class Electrode:
    """What a geometry source says about one channel or electrode.

    Attributes:
        name: Channel or electrode name.
        type: Channel type (``eeg``, ``ecog``, ``seeg``, ``dbs``, ``ecg``, ``stim``, ``misc``…), or
            ``None`` to keep the recording's.
        position_m: ``(x, y, z)``, m, or ``None``.
        area_mm2: Contact surface area, mm², or ``None``.
        lead: Lead, shaft or grid the contact belongs to.
        contact: Contact label on its lead.
        stim: Whether the contact can stimulate (``None``: decide by type).
        status: ``"good"`` or ``"bad"`` (``None``: unknown).
    """

    name: str
    type: str | None = None
    position_m: tuple[float, float, float] | None = None
    area_mm2: float | None = None
    lead: str | None = None
    contact: str | None = None
    stim: bool | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"electrode name {self.name!r}: expected a non-empty string")
        if self.position_m is not None:
            pos = tuple(float(v) for v in self.position_m)
            if len(pos) != 3 or not all(math.isfinite(v) for v in pos):
                raise ConfigError(f"electrode {self.name!r}: position {self.position_m!r}; expected 3 finite numbers (m)")
            object.__setattr__(self, "position_m", pos)
        if self.area_mm2 is not None and not (math.isfinite(self.area_mm2) and self.area_mm2 > 0):
            raise ConfigError(f"electrode {self.name!r}: area_mm2={self.area_mm2!r}; expected an area > 0 mm²")


@dataclass(frozen=True)
class Geometry:
    """Electrodes from one source, and what reading them noticed.

    Attributes:
        electrodes: One per channel or electrode.
        source: Where they came from (file path or ``montage:NAME``).
        notes: Findings from reading (e.g. guessed units).
    """

    electrodes: tuple[Electrode, ...]
    source: str
    notes: tuple[Finding, ...] = ()

    def merged(self, other: Geometry) -> Geometry:
        """Electrodes of both, fields of ``other`` overriding this one's where set (by name)."""
        by = {e.name: e for e in self.electrodes}
        for e in other.electrodes:
            old = by.get(e.name)
            if old is None:
                by[e.name] = e
            else:
                by[e.name] = replace(old, **{k: v for k, v in asdict(e).items() if v is not None})
        return Geometry(tuple(by.values()), f"{self.source} + {other.source}", self.notes + other.notes)


def normalize_type(kind: str) -> str:
    """A channel type as the recording spells it: lower case, BIDS names mapped (``LFP`` → ``dbs``,
    ``TRIG`` → ``stim``, ``VEOG`` → ``eog``); unknown types are kept in lower case."""
    k = str(kind).strip().lower()
    return _TYPES.get(k, k)


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
def read_geometry(path: str | Path, *, units: str | None = None) -> Geometry:
    """Read a channels/electrodes file: ``.tsv`` (BIDS ``channels.tsv`` or ``electrodes.tsv``),
    ``.csv`` or ``.toml``; see the module docstring for the columns.

    Args:
        path: The file.
        units: Units of ``x``, ``y``, ``z`` (``"m"``, ``"mm"``, ``"cm"``); default: the file's own
            (TOML ``units``, BIDS ``coordsystem.json``), else m.

    Raises:
        ConfigError: Missing file, unknown format, malformed rows (the message names the row).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"channels/electrodes file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        from bfm_stim.files import read_toml

        data = read_toml(p, what="channels/electrodes file")
        rows = data.get("electrodes", data.get("channels"))
        if not isinstance(rows, list) or not rows:
            raise ConfigError(f"{p}: expected [[electrodes]] (or [[channels]]) tables with name, type, x, y, z")
        unit = units or data.get("units", "m")
        return Geometry(tuple(_electrode(r, p, i + 1, unit) for i, r in enumerate(rows)), str(p))
    if suffix not in (".tsv", ".csv", ".txt"):
        raise ConfigError(f"{p}: unsupported channels/electrodes file; expected .tsv (BIDS), .csv or .toml")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: channels/electrodes file cannot be read as UTF-8 text ({exc})") from None
    first = text.splitlines()[0] if text.strip() else ""
    delim = "\t" if suffix == ".tsv" or "\t" in first else ","
    reader = csv.DictReader((line for line in text.splitlines() if not line.lstrip().startswith("#")), delimiter=delim)
    if reader.fieldnames is None or "name" not in [f.strip().lower() for f in reader.fieldnames]:
        raise ConfigError(f"{p}: the first row must name the columns, including 'name' (got {reader.fieldnames})")
    notes: list[Finding] = []
    unit = units
    if unit is None:  # a BIDS electrodes.tsv takes its units from coordsystem.json (None: guessed from the values)
        unit = _bids_units(p, notes) if p.name.endswith("_electrodes.tsv") else "m"
    rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    if unit is None:
        vals = [abs(float(r[a])) for r in rows for a in "xyz" if _num(_val(r, a), a, str(p)) is not None]
        unit = "mm" if vals and max(vals) > 1.0 else "m"
    electrodes = tuple(_electrode(r, p, i + 2, unit) for i, r in enumerate(rows))
    return Geometry(electrodes, str(p), tuple(notes))


def _bids_units(path: Path, notes: list[Finding]) -> str | None:
    """Units of a BIDS electrodes.tsv from its coordsystem.json (same entities, same space)."""
    stem = path.name[: -len("_electrodes.tsv")]
    for cand in sorted(path.parent.glob("*_coordsystem.json")):
        if _entities(cand.name[: -len("_coordsystem.json")]).items() <= _entities(stem).items():
            try:
                meta = json.loads(cand.read_text())
            except ValueError:
                continue
            for key in ("iEEGCoordinateUnits", "EEGCoordinateUnits", "AnatomicalLandmarkCoordinateUnits"):
                u = str(meta.get(key, "")).strip().lower()
                if u in _UNITS:
                    return u
    notes.append(Finding(
        "position_units", "warning", None, str(path), "a coordsystem.json giving iEEGCoordinateUnits or EEGCoordinateUnits",
        "add the coordsystem.json, or give the units",
        f"{path.name}: no coordsystem.json with the coordinate units beside it; units guessed from the values "
        "(|x| > 1: mm, else m)"))
    return None


def _entities(stem: str) -> dict[str, str]:
    return dict(part.split("-", 1) for part in stem.split("_") if "-" in part)


def _val(row: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        v = row.get(k)
        if v is None or (isinstance(v, str) and v.strip().lower() in _NA):
            continue
        return v
    return None


def _num(v: Any, what: str, where: str) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {what}={v!r} is not a number") from None
    return f if math.isfinite(f) else None


def _bool(v: Any, where: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "yes", "1", "y"):
        return True
    if s in ("false", "no", "0", "n"):
        return False
    raise ConfigError(f"{where}: stim={v!r}; expected true or false")


def _electrode(row: Mapping[str, Any], path: Path, line: int, unit: str) -> Electrode:
    where = f"{path}: row {line}"
    if not isinstance(row, Mapping):
        raise ConfigError(f"{where}: expected a table with name, type, x, y, z")
    row = {str(k).lower(): v for k, v in row.items()}
    name = _val(row, "name")
    if name is None:
        raise ConfigError(f"{where}: no name")
    kind = _val(row, "type")
    pos = None
    if _val(row, "position", "position_m") is not None:
        vals = list(_val(row, "position", "position_m"))
        pos, factor = vals, _UNITS.get(str(unit).lower())
    elif _val(row, "position_mm") is not None:
        pos, factor = list(_val(row, "position_mm")), 1e-3
    elif any(_val(row, f"{a}_mm") is not None for a in "xyz"):
        pos, factor = [_val(row, f"{a}_mm") for a in "xyz"], 1e-3
    elif any(_val(row, a) is not None for a in "xyz"):
        pos, factor = [_val(row, a) for a in "xyz"], _UNITS.get(str(unit).lower())
    else:
        factor = 1.0
    if factor is None:
        raise ConfigError(f"{path}: units={unit!r}; expected one of {sorted(_UNITS)}")
    position = None
    if pos is not None:
        xyz = [_num(v, "position", where) for v in pos]
        if len(xyz) != 3:
            raise ConfigError(f"{where}: position {pos!r}; expected x, y, z")
        if all(v is not None for v in xyz):
            position = tuple(float(v) * factor for v in xyz)
    area = _num(_val(row, "area_mm2", "size"), "area_mm2", where)
    if area is None and _val(row, "area_cm2") is not None:
        area = _num(_val(row, "area_cm2"), "area_cm2", where) * 100.0
    status = _val(row, "status")
    contact = _val(row, "contact")
    lead = _val(row, "lead", "group")
    return Electrode(str(name).strip(), normalize_type(kind) if kind is not None else None, position,
                     area, None if lead is None else str(lead), None if contact is None else str(contact),
                     _bool(_val(row, "stim"), where), None if status is None else str(status).strip().lower())


def bids_sidecars(recording_path: str | Path) -> dict[str, Path]:
    """BIDS sidecars next to a recording: ``{"channels": …, "electrodes": …}`` (those found).

    ``sub-01_ses-01_task-rest_ieeg.vhdr`` finds ``sub-01_ses-01_task-rest_channels.tsv`` and any
    ``*_electrodes.tsv`` in the same folder whose entities (``sub``, ``ses``, … besides ``space``
    and ``acq``) are among the recording's.
    """
    p = Path(recording_path)
    stem = p.name.split(".")[0]
    if "_" not in stem or not stem.startswith("sub-"):
        return {}
    prefix = stem.rsplit("_", 1)[0]
    found: dict[str, Path] = {}
    channels = p.parent / f"{prefix}_channels.tsv"
    if channels.is_file():
        found["channels"] = channels
    mine = _entities(prefix)
    for cand in sorted(p.parent.glob("*_electrodes.tsv")):
        ents = {k: v for k, v in _entities(cand.name[: -len("_electrodes.tsv")]).items() if k not in ("space", "acq")}
        if ents.items() <= mine.items():
            found["electrodes"] = cand
            break
    return found


def read_bids_geometry(recording_path: str | Path) -> Geometry | None:
    """Types (``channels.tsv``) and positions (``electrodes.tsv``) of a BIDS recording, or ``None``."""
    side = bids_sidecars(recording_path)
    if not side:
        return None
    geos = [read_geometry(side[k]) for k in ("channels", "electrodes") if k in side]
    out = geos[0]
    for g in geos[1:]:
        out = out.merged(g)
    return out


def montage_geometry(name: str | Path) -> Geometry:
    """Positions from an MNE standard montage (``standard_1020``, ``biosemi64``…) or a montage file.

    Raises:
        ConfigError: Neither a built-in montage nor a file MNE reads (lists the built-in names).
    """
    import mne

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if Path(name).is_file():
                mont = mne.channels.read_custom_montage(name)
            else:
                mont = mne.channels.make_standard_montage(str(name))
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            raise ConfigError(f"--montage {name!r}: not a montage file nor a built-in montage ({exc}); built-in: "
                              f"{', '.join(mne.channels.get_builtin_montages())}") from None
    for w in caught:
        log.info("montage %s: %s", name, w.message)
    pos = mont.get_positions()["ch_pos"]
    electrodes = tuple(Electrode(n, None, tuple(float(v) for v in xyz)) for n, xyz in pos.items()
                       if np.all(np.isfinite(xyz)))
    return Geometry(electrodes, f"montage:{name}")


# ------------------------------------------------------------------------------------------------
# applying
# ------------------------------------------------------------------------------------------------
_PREFIX = re.compile(r"^(eeg|ecog|seeg|lfp|dbs|ieeg)[\s_:-]+", re.I)
_SUFFIX = re.compile(r"[\s_-]+(ref|le|ar|avg)$", re.I)


def _key(name: str) -> str:
    return _SUFFIX.sub("", _PREFIX.sub("", name.strip())).casefold()


def _lookup(name: str, exact: Mapping[str, Electrode], loose: Mapping[str, Electrode]) -> Electrode | None:
    return exact.get(name) or loose.get(name.casefold()) or loose.get(_key(name))


def apply_geometry(rec: Recording, geometry: Geometry) -> tuple[Recording, list[Finding]]:
    """A copy of ``rec`` with the types, positions and bad channels that ``geometry`` gives.

    Channels match electrodes by name (exactly, then ignoring case and a type prefix such as
    ``EEG``); a bipolar channel ``A-B`` without an entry of its own is placed at the midpoint of
    ``A`` and ``B``. Electrodes with a position, area or stim flag go to ``meta["electrodes"]``.

    Returns:
        The new recording and findings: what was applied (info), nothing matched (warning).
    """
    exact = {e.name: e for e in geometry.electrodes}
    loose: dict[str, Electrode] = {}
    for e in geometry.electrodes:
        loose.setdefault(e.name.casefold(), e)
        loose.setdefault(_key(e.name), e)
    types, pos = list(rec.ch_types), rec.positions.copy()
    bads = list(rec.meta.get("bads", []) or [])
    n_type = n_pos = 0
    matched = set()
    for i, ch in enumerate(rec.ch_names):
        e = _lookup(ch, exact, loose)
        if e is None and "-" in ch:
            a, _, b = ch.partition("-")
            ea, eb = _lookup(a, exact, loose), _lookup(b, exact, loose)
            if ea is not None and eb is not None and ea.position_m and eb.position_m:
                pos[i] = (np.asarray(ea.position_m) + np.asarray(eb.position_m)) / 2.0
                n_pos += 1
                matched.update((ea.name, eb.name))
                if ea.type and ea.type == eb.type and ea.type != types[i]:
                    types[i] = ea.type
                    n_type += 1
            continue
        if e is None:
            continue
        matched.add(e.name)
        if e.type and e.type != types[i]:
            types[i] = e.type
            n_type += 1
        if e.position_m is not None:
            pos[i] = e.position_m
            n_pos += 1
        if e.status == "bad" and ch not in bads:
            bads.append(ch)
    meta = dict(rec.meta)
    extra = [_electrode_dict(e) for e in geometry.electrodes
             if e.position_m is not None and (e.area_mm2 is not None or e.stim is not None or e.lead is not None
                                              or (e.type or "") in STIM_TYPES)]
    if extra:
        old = {d["name"]: d for d in meta.get("electrodes", [])}
        old.update({d["name"]: d for d in extra})
        meta["electrodes"] = list(old.values())
    if bads:
        meta["bads"] = bads
    meta["geometry"] = [*(meta.get("geometry") or []), geometry.source]
    out = rec._replace(ch_types=types, positions=pos, meta=meta)
    findings = list(geometry.notes)
    if not matched:
        findings.append(Finding(
            "geometry", "warning", None, geometry.source, "channel names of the recording",
            "check that the file's names match the recording's channel names",
            f"{geometry.source}: none of its {len(geometry.electrodes)} names matches a channel of the recording "
            f"(file: {', '.join(e.name for e in geometry.electrodes[:5])}…; recording: "
            f"{', '.join(rec.ch_names[:5])}…); nothing applied"))
    else:
        findings.append(Finding(
            "geometry", "info", None, {"types": n_type, "positions": n_pos}, "", "",
            f"{geometry.source}: set the type of {n_type} and the position of {n_pos} of {rec.n_channels} channels"
            + (f"; bad: {', '.join(bads)}" if bads else "")))
    log.info("%s", findings[-1].message)
    return out, findings


def _electrode_dict(e: Electrode) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(e).items() if v is not None}


def resolve_geometry(rec: Recording, *, path: str | Path | None = None, files: Sequence[str | Path] = (),
                     montage: str | Path | None = None) -> tuple[Recording, list[Finding]]:
    """Apply every source in order (module docstring): BIDS sidecars beside ``path``, ``montage``,
    then ``files``. Returns the new recording and the findings of each step."""
    findings: list[Finding] = []
    if path is not None:
        bids = read_bids_geometry(path)
        if bids is not None:
            rec, f = apply_geometry(rec, bids)
            findings += f
    if montage is not None:
        rec, f = apply_geometry(rec, montage_geometry(montage))
        findings += f
    for fp in files:
        rec, f = apply_geometry(rec, read_geometry(fp))
        findings += f
    return rec, findings


# ------------------------------------------------------------------------------------------------
# stimulation contacts
# ------------------------------------------------------------------------------------------------
def stimulation_contacts(rec: Recording) -> tuple[tuple[Any, ...], list[Finding]]:
    """The recording's own stimulation contacts, as :class:`~bfm_stim.space.Contact` s (position mm).

    Electrodes in ``meta["electrodes"]`` marked ``stim``, or not marked and of a lead type
    (dbs, seeg, depth), with a position; without that information, the channels typed dbs or seeg
    (not bipolar, not bad) with a position. A contact without an area gets
    :data:`ASSUMED_AREA_CM2` and a warning.

    Returns:
        ``(contacts, findings)``; no contacts when the recording has none (see
        :func:`missing_contacts_message`).
    """
    from bfm_stim.stimulus import Contact

    bads = set(rec.meta.get("bads", []) or [])
    types = dict(zip(rec.ch_names, rec.ch_types))
    cands: list[tuple[str, tuple[float, float, float], float | None]] = []
    for d in rec.meta.get("electrodes", []) or []:
        kind = d.get("type") or types.get(d["name"])
        can = d.get("stim") if d.get("stim") is not None else (kind in STIM_TYPES)
        if can and d.get("position_m") and d["name"] not in bads and d.get("status") != "bad":
            cands.append((d["name"], tuple(d["position_m"]), d.get("area_mm2")))
    if not cands and not any(d.get("stim") is False for d in rec.meta.get("electrodes", []) or []):
        for n, t, p in zip(rec.ch_names, rec.ch_types, rec.positions):
            if t in STIM_TYPES and np.isfinite(p).all() and n not in bads and "-" not in n.strip("-"):
                cands.append((n, tuple(float(v) for v in p), None))
    contacts, assumed = [], []
    for name, p, area_mm2 in cands:
        if area_mm2 is None:
            assumed.append(name)
        area = ASSUMED_AREA_CM2 if area_mm2 is None else float(area_mm2) / 100.0
        contacts.append(Contact(name, tuple(round(1000.0 * float(v), 6) for v in p), area))
    findings = []
    if assumed:
        findings.append(Finding(
            "contact_area", "warning", None, ASSUMED_AREA_CM2, "the contact's surface area (area_mm2)",
            "give area_mm2 in the electrodes file",
            f"no surface area for contact(s) {', '.join(assumed)}: assumed {ASSUMED_AREA_CM2:g} cm² (1 mm², "
            "smaller than common DBS/sEEG contacts, so the charge-density limit is conservative); give area_mm2 "
            "in the electrodes file (BIDS electrodes.tsv 'size')"))
    return tuple(contacts), findings


def missing_contacts_message(rec: Recording) -> str:
    """Why ``rec`` has no stimulation contacts and how to give them (``--space`` TOML or an electrodes file)."""
    lead = [n for n, t in zip(rec.ch_names, rec.ch_types) if t in STIM_TYPES]
    if lead:
        why = (f"its lead channels ({', '.join(lead[:6])}{'…' if len(lead) > 6 else ''}) have no positions")
    else:
        why = f"no channel is a DBS/sEEG lead contact (types: {', '.join(sorted(set(rec.ch_types)))})"
    return (
        f"{rec.meta.get('source', 'the recording')}: no stimulation contacts: {why}; bfm-stim does not assume a "
        "lead. Give them with --space FILE.toml, e.g. '[space] kind = \"electrical\" contacts = [ { name = \"L0\", "
        "position_mm = [12.0, -13.5, -6.0], area_cm2 = 0.06 }, { name = \"L1\", position_mm = [12.7, -12.9, -4.2], "
        "area_cm2 = 0.06 } ]' plus the bounds and [space.safety] of the bundled space-dbs config (`bfm-stim configs "
        "space-dbs --out space.toml` copies it); or with an electrodes "
        "file, --electrodes FILE (BIDS electrodes.tsv, .csv or .toml: name, type = dbs|seeg, x, y, z in m, "
        "area_mm2, stim = true for contacts that can stimulate), in the coordinates of the recording's channels")
