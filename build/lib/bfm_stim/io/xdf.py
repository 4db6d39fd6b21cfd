"""XDF reader (Lab Streaming Layer recordings) through pyxdf.

One numeric stream becomes the :class:`~bfm_stim.recording.Recording`; every other irregular
stream (string markers, or numeric with ``nominal_srate == 0``) becomes events. pyxdf synchronizes
the clocks of all streams, removes jitter and splits a stream at clock resets and breaks into
segments; the segments are joined sample after sample (a ``"boundary"`` event marks each join),
and a marker's onset is placed by interpolating its time stamp between the time stamps of the
samples around it, so it lands on the right sample even when the true rate differs from the
nominal one. Markers inside a break move to the start of the next segment; markers before the
first or after the last sample are dropped and counted in ``meta["xdf_markers_outside"]``.
A file cut short (no stream footer, or fewer samples than the footer declares) is read as far as
it goes, like pyxdf does, with ``meta["xdf_complete"] = False`` and a logged warning; a file that
pyxdf cannot parse at all raises :class:`~bfm_stim.exceptions.RecordingError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import RecordingError
from bfm_stim.recording import VOLTAGE_TYPES, Event, Recording

__all__ = ["read_xdf", "list_streams"]

log = get_logger("io.xdf")

_VOLT_SCALE = {"microvolts": 1.0, "microvolt": 1.0, "uv": 1.0, "µv": 1.0, "μv": 1.0,
               "millivolts": 1e3, "millivolt": 1e3, "mv": 1e3, "volts": 1e6, "volt": 1e6, "v": 1e6,
               "nanovolts": 1e-3, "nv": 1e-3}
_TYPE_ALIASES = {"markers": "stim", "marker": "stim", "trigger": "stim", "stim": "stim", "lfp": "dbs"}


def _first(value: Any, default: Any = None) -> Any:
    while isinstance(value, list):
        if not value:
            return default
        value = value[0]
    return default if value is None else value


def _is_string(s: dict[str, Any]) -> bool:
    return str(_first(s["info"].get("channel_format"), "")).lower() == "string"


def _srate(s: dict[str, Any]) -> float:
    try:
        return float(_first(s["info"].get("nominal_srate"), 0.0))
    except (TypeError, ValueError):
        return 0.0


def _load(path: Path) -> list[dict[str, Any]]:
    import pyxdf

    pyxdf_log = logging.getLogger("pyxdf.pyxdf")
    level = pyxdf_log.level
    pyxdf_log.setLevel(logging.ERROR)  # per-stream notes like "segments and clock-segments differ"
    try:
        streams, _header = pyxdf.load_xdf(str(path), verbose=None)
    except Exception as exc:  # pyxdf raises many kinds of errors on damaged files.
        raise RecordingError(f"{path}: cannot read as XDF ({type(exc).__name__}: {exc})") from exc
    finally:
        pyxdf_log.setLevel(level)
    if not streams:
        raise RecordingError(f"{path}: XDF file holds no streams")
    return streams


def list_streams(path: str | Path) -> list[dict[str, Any]]:
    """Summaries of the streams in an XDF file, in file order (the ``stream`` index of ``read``).

    Returns:
        One dict per stream: ``index``, ``name``, ``type``, ``channel_count``, ``nominal_srate``
        (Hz), ``channel_format``, ``n_samples``.
    """
    return [
        {"index": i, "name": _first(s["info"].get("name"), ""), "type": _first(s["info"].get("type"), ""),
         "channel_count": int(_first(s["info"].get("channel_count"), 0)), "nominal_srate": _srate(s),
         "channel_format": _first(s["info"].get("channel_format"), ""), "n_samples": len(s["time_stamps"])}
        for i, s in enumerate(_load(Path(path)))
    ]


def _select(path: Path, streams: list[dict[str, Any]], stream: str | int | None) -> int:
    names = [str(_first(s["info"].get("name"), "")) for s in streams]
    if stream is None:
        numeric = [i for i, s in enumerate(streams) if not _is_string(s) and _srate(s) > 0 and len(s["time_stamps"])]
        if not numeric:
            raise RecordingError(f"{path}: no regularly sampled numeric stream among {names}")
        return max(numeric, key=lambda i: (int(_first(streams[i]["info"].get("channel_count"), 0)), -i))
    if isinstance(stream, bool) or not isinstance(stream, (int, str)):
        raise RecordingError(f"{path}: stream={stream!r}; expected a stream name from {names} or an index")
    if isinstance(stream, int):
        if not 0 <= stream < len(streams):
            raise RecordingError(f"{path}: stream={stream} out of range; expected 0..{len(streams) - 1} for {names}")
        idx = stream
    elif stream in names:
        idx = names.index(stream)
    else:
        raise RecordingError(f"{path}: no stream named {stream!r}; streams are {names}")
    s = streams[idx]
    if _is_string(s):
        raise RecordingError(f"{path}: stream {names[idx]!r} holds strings (markers), not samples")
    if _srate(s) <= 0 and float(s["info"].get("effective_srate") or 0) <= 0:
        raise RecordingError(f"{path}: stream {names[idx]!r} is irregular (nominal_srate=0); cannot make a Recording")
    if not len(s["time_stamps"]):
        raise RecordingError(f"{path}: stream {names[idx]!r} holds no samples")
    return idx


def _channels(s: dict[str, Any], n_ch: int) -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray]:
    """Names, types, units, positions (m) and per-channel scale to µV from the stream's desc."""
    stream_type = str(_first(s["info"].get("type"), "")).lower()
    default_type = _TYPE_ALIASES.get(stream_type, stream_type if stream_type in VOLTAGE_TYPES else "misc")
    try:
        chans = s["info"]["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        chans = []
    if len(chans) != n_ch:
        chans = [{}] * n_ch
    names, types, units = [], [], []
    pos = np.full((n_ch, 3), np.nan)
    scale = np.ones(n_ch)
    for i, ch in enumerate(chans):
        ch = ch if isinstance(ch, dict) else {}
        names.append(str(_first(ch.get("label"), "") or f"ch{i}"))
        kind = str(_first(ch.get("type"), "") or default_type).lower()
        kind = _TYPE_ALIASES.get(kind, kind)
        types.append(kind)
        unit = str(_first(ch.get("unit"), "")).strip()
        if unit.lower() in _VOLT_SCALE or (not unit and kind in VOLTAGE_TYPES):
            scale[i] = _VOLT_SCALE.get(unit.lower(), 1.0)  # LSL's convention for EEG is µV
            units.append("µV")
        else:
            units.append(unit)
        loc = _first(ch.get("location"), {})
        if isinstance(loc, dict):
            try:
                pos[i] = [float(_first(loc.get(ax), "nan")) * 1e-3 for ax in "XYZ"]  # XDF meta: mm
            except (TypeError, ValueError):
                pass
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # make labels unique
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n}-{seen[n] - 1}"
    return names, types, units, pos, scale


def _place(t: np.ndarray, ts: np.ndarray, segments: list[tuple[int, int]], fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Map LSL times ``t`` (s) to recording onsets (s); return onsets and a keep mask."""
    onset = np.full(t.shape, np.nan)
    tol = (1.0 + 1e-6) / fs
    for k, (a, b) in enumerate(segments):
        inside = (t >= ts[a] - (tol if k == 0 else 0.0)) & (t <= ts[b] + tol)
        inside &= np.isnan(onset)
        ti = t[inside]
        if ts[b] > ts[a]:
            idx = np.interp(ti, ts[a : b + 1], np.arange(a, b + 1))
        else:
            idx = np.full(ti.shape, float(a))
        idx = np.where(ti > ts[b], b + (ti - ts[b]) * fs, idx)  # within one period after the last sample
        onset[inside] = np.clip(idx, a, b + 1) / fs
        if k + 1 < len(segments):  # in the break before the next segment
            gap = np.isnan(onset) & (t > ts[b]) & (t < ts[segments[k + 1][0]])
            onset[gap] = segments[k + 1][0] / fs
    return onset, ~np.isnan(onset)


def read_xdf(path: Path, *, stream: str | int | None = None) -> Recording:
    """Read one numeric stream of an XDF file, with the other irregular streams as events.

    Args:
        path: ``.xdf`` or ``.xdfz`` file.
        stream: Stream name or index (file order); ``None`` picks the regularly sampled numeric
            stream with the most channels (the first one on ties).

    Raises:
        RecordingError: Damaged file, unknown stream, or a stream that cannot be a recording.
    """
    streams = _load(path)
    idx = _select(path, streams, stream)
    s = streams[idx]
    x = np.asarray(s["time_series"], dtype=np.float64)
    if x.ndim != 2:
        raise RecordingError(f"{path}: stream {idx} has time_series of shape {x.shape}; expected 2-D")
    x = x.T
    ts = np.asarray(s["time_stamps"], dtype=np.float64)
    nominal = _srate(s)
    effective = float(s["info"].get("effective_srate") or 0.0)
    fs = nominal if nominal > 0 else effective
    if nominal > 0 and effective > 0 and abs(effective / nominal - 1.0) > 0.01:
        log.warning("%s: stream %d effective rate %.4g Hz differs from nominal %.4g Hz; using nominal",
                    path.name, idx, effective, nominal)
    names, types, units, pos, scale = _channels(s, x.shape[0])
    x *= scale[:, None]
    segments = [(int(a), int(b)) for a, b in (s["info"].get("segments") or [(0, len(ts) - 1)])]
    events = [Event(a / fs, 0.0, "boundary") for a, _ in segments[1:]]
    outside = 0
    marker_names = []
    for j, m in enumerate(streams):
        if j == idx or not len(m["time_stamps"]) or (not _is_string(m) and _srate(m) > 0):
            continue
        marker_names.append(str(_first(m["info"].get("name"), f"stream{j}")))
        onsets, keep = _place(np.asarray(m["time_stamps"], dtype=np.float64), ts, segments, fs)
        outside += int((~keep).sum())
        for k in np.flatnonzero(keep):
            values = m["time_series"][k]
            text = "/".join(str(v) for v in np.atleast_1d(values))
            events.append(Event.from_annotation(float(onsets[k]), 0.0, text))
    try:
        declared = int(_first(s["footer"]["info"]["sample_count"]))
    except (KeyError, TypeError, ValueError):
        declared = None
    complete = declared == len(ts)
    if not complete:
        log.warning("%s: stream %d has %d samples but its footer declares %s (file cut short?); "
                    "reading what is there", path.name, idx, len(ts), declared)
    if outside:
        log.warning("%s: %d markers fall outside the recorded samples and were dropped", path.name, outside)
    meta = {
        "source": str(path), "format": "xdf", "stream_index": idx,
        "stream_name": str(_first(s["info"].get("name"), "")), "stream_type": str(_first(s["info"].get("type"), "")),
        "nominal_srate": nominal, "effective_srate": effective, "first_timestamp": float(ts[0]),
        "xdf_segments": [[a / fs, (b + 1) / fs, float(ts[a]), float(ts[b])] for a, b in segments],
        "marker_streams": marker_names, "xdf_markers_outside": outside,
        "xdf_complete": complete,
    }
    return Recording(x, fs, names, types, units, pos, events, meta)
