"""The received stream of a session directory as a FIF file with every command and ack annotated.

:func:`write_session_fif` turns ``DIR/stream/data.f32`` + ``times.f64`` (see :mod:`loops.session.store`)
into ``DIR/recording.fif`` that ``mne.io.read_raw_fif`` opens:

- The FIF time axis is the LSL clock: sample ``j`` is at ``t0 + j / (fs * speed)`` (``t0``: the LSL
  timestamp of the first received sample, kept in the file's ``bfm_stim`` meta as ``lsl_t0``; ``speed``:
  ``session.json``'s ``stream.speed``, 1 for a real device, above 1 for a simulator run faster; the
  file's own time is signal time, ``j / fs``). Where the stream
  has a gap (a dropout, a resumed run), zeros fill it and a ``BAD_ACQ_SKIP`` annotation covers it, so
  MNE skips it (``reject_by_annotation``). A gap longer than ``max_fill_s`` is filled with
  ``max_fill_s`` only, and a ``gap <seconds> s compressed`` marker says by how much time moved on.
- Non-finite samples become 0 and their spans are marked ``BAD_nonfinite``.
- Every logged event is an annotation at its LSL time mapped to a sample (``np.searchsorted`` on
  the timestamps): stimulation trains (``stim``: onset = the ack's ``applied_at``, duration = the
  stimulus' ``duration_s``, the stimulus as JSON, as :class:`bfm_stim.recording.Event` writes it),
  ``sent`` commands, ``rejected`` acks, ``interrupted`` trials, ``stop`` commands, ``fault`` and
  ``recovered`` records, run ``start``/``end`` and continuous-mode segments.

The helpers here (:func:`load_stream`, :class:`Timeline`) are shared with the report and the BIDS
export.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import RecordingError
from bfm_stim.recording import Event, Recording
from loops.session.store import LOG, META, read_log, read_signal

__all__ = ["write_session_fif", "session_recording", "load_stream", "StreamData", "Timeline", "session_events",
           "FIF_NAME"]

log = get_logger("loops.session.fif")

FIF_NAME = "recording.fif"
_UNIT_NAMES = {"microvolts": "µV", "uv": "µV", "µv": "µV", "μv": "µV", "millivolts": "mV", "mv": "mV",
          "volts": "V", "v": "V", "nanovolts": "nV"}


def _unit(u: Any) -> str:
    s = str(u or "").strip()
    return _UNIT_NAMES.get(s.lower(), s)


@dataclass
class StreamData:
    """The received stream of a session directory.

    Attributes:
        data: Samples, ``(n_channels, n)`` float32, µV for voltage channels, as received (may hold NaN).
        times: LSL timestamp of every sample, ``(n,)`` s.
        fs: Nominal sampling rate, Hz.
        ch_names, ch_types, units: One per channel (types lower case as in MNE, units as ``µV``).
        positions: ``(n_channels, 3)`` m, NaN where unknown.
        spec: The ``"stream"`` entry of ``session.json`` as written.
    """

    data: np.ndarray
    times: np.ndarray
    fs: float
    ch_names: list[str]
    ch_types: list[str]
    units: list[str]
    positions: np.ndarray
    spec: dict[str, Any]

    @property
    def n_samples(self) -> int:
        return int(self.times.size)


def read_meta(folder: Path) -> dict[str, Any]:
    """``session.json`` of ``folder``.

    Raises:
        RecordingError: no ``session.json`` (not a session directory) or it is not JSON.
    """
    p = Path(folder) / META
    if not p.is_file():
        raise RecordingError(f"{folder} is not a session directory (no {META}); pass the folder given to "
                             "`bfm-stim session --out`")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RecordingError(f"{p}: not JSON ({exc}); the file was edited or damaged") from None


def load_stream(folder: str | Path, meta: Mapping[str, Any] | None = None) -> StreamData:
    """Read the received stream and its channel description from a session directory.

    Channel names/types/units come from ``session.json``'s ``"stream"`` entry (``n_channels``,
    ``fs``, ``ch_names``, ``ch_types``, ``units``; LSL spellings such as ``"DBS"`` and
    ``"microvolts"`` are mapped to MNE's ``"dbs"`` and ``"µV"``). When ``n_channels`` exceeds the
    names (a sample-counter channel on the wire), the extra channels are ``misc`` named ``counter``.

    Raises:
        RecordingError: no stream entry, a field missing or out of range (the message names it).
    """
    folder = Path(folder)
    meta = read_meta(folder) if meta is None else meta
    spec = meta.get("stream")
    if not isinstance(spec, Mapping):
        raise RecordingError(f"{folder / META}: no \"stream\" entry (the device's stream spec); the session never "
                             "connected to a device, so there is no signal to export")
    fs = spec.get("fs")
    if isinstance(fs, bool) or not isinstance(fs, (int, float)) or not math.isfinite(fs) or fs <= 0:
        raise RecordingError(f"{folder / META}: stream.fs={fs!r} is not allowed; expected a sampling rate > 0 Hz")
    names = [str(c) for c in (spec.get("ch_names") or [])]
    n = spec.get("n_channels", len(names))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n < len(names):
        raise RecordingError(f"{folder / META}: stream.n_channels={n!r} is not allowed; expected an integer >= "
                             f"max(1, len(ch_names)={len(names)})")
    extra = n - len(names)
    if extra:
        names += ["counter"] if extra == 1 else [f"extra{i}" for i in range(extra)]
    types = [str(t).lower() for t in (spec.get("ch_types") or [])] or ["eeg"] * len(spec.get("ch_names") or [])
    units = [_unit(u) for u in (spec.get("units") or [])] or ["µV"] * len(types)
    if len(types) < n - extra or len(units) < n - extra:
        raise RecordingError(f"{folder / META}: stream has {len(types)} ch_types and {len(units)} units for "
                             f"{n - extra} channels; expected one of each per channel")
    types = types[: n - extra] + ["misc"] * extra
    units = units[: n - extra] + [""] * extra
    pos = np.full((n, 3), np.nan)
    raw_pos = spec.get("positions")
    if isinstance(raw_pos, list) and len(raw_pos) >= n - extra:
        for i, p in enumerate(raw_pos[: n - extra]):
            if isinstance(p, list) and len(p) == 3:
                pos[i] = [np.nan if v is None else float(v) for v in p]
    data, times = read_signal(folder / "stream", n)
    return StreamData(data, times, float(fs), names, types, units, pos, dict(spec))


class Timeline:
    """Map between LSL time and sample indices of the gap-filled output (see the module docstring).

    Args:
        times: LSL timestamps of the received samples, ``(n,)`` s, non-decreasing.
        fs: Nominal sampling rate, Hz: the output has ``fs`` samples per second of signal.
        speed: The device produces samples ``speed`` times faster than real time (a simulator run
            faster in tests or demos; ``session.json`` ``stream.speed``): LSL time advances by
            ``1 / (fs * speed)`` s per sample.
        min_gap_s: A step between two samples longer than ``1 / (fs * speed) + min_gap_s`` LSL s is a gap.
        max_fill_s: Longest stretch of zeros inserted for one gap, s of signal.
    """

    def __init__(self, times: np.ndarray, fs: float, *, speed: float = 1.0, min_gap_s: float = 0.05,
                 max_fill_s: float = 60.0) -> None:
        raw = np.asarray(times, np.float64)
        self.fs = float(fs)
        self.speed = float(speed) if isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0 else 1.0
        rate = self.fs * self.speed  # samples per LSL second
        n = raw.size
        step = np.diff(raw)
        # a clock that went backwards (a resumed run after a reboot): a gap of unknown length, 1 s shown
        step = np.where(step < 0, 1.0, step)
        #: Timestamps made non-decreasing (for searching), s.
        self.times = np.maximum.accumulate(raw) if n else raw
        gap = np.nonzero(step > 1.0 / rate + min_gap_s)[0]
        inserted = np.zeros(n, np.int64)  # zeros inserted just before sample i
        self.gaps: list[tuple[int, int, float]] = []  # (first filled output index, n filled, real gap LSL s)
        for i in gap:
            fill = int(round(min(step[i] * rate, max_fill_s * self.fs))) - 1
            inserted[i + 1] = max(fill, 0)
        #: Output index of every received sample, ``(n,)``.
        self.index = np.arange(n, dtype=np.int64) + np.cumsum(inserted)
        for i in gap:
            if inserted[i + 1] > 0:
                self.gaps.append((int(self.index[i] + 1), int(inserted[i + 1]), float(step[i])))
        self.n_out = int(self.index[-1] + 1) if n else 0
        self.t0 = float(self.times[0]) if n else 0.0

    def sample(self, t: float) -> int:
        """Output sample nearest to LSL time ``t`` (s), clipped to ``[0, n_out - 1]``."""
        ts = self.times
        if not ts.size or t <= ts[0]:
            return 0
        i = int(np.searchsorted(ts, t, side="right")) - 1  # last received sample at or before t
        rate = self.fs * self.speed
        if i >= ts.size - 1:
            return int(min(self.index[-1] + round((t - ts[-1]) * rate), self.n_out - 1))
        room = int(self.index[i + 1] - self.index[i])  # 1, or more across a filled gap
        return int(self.index[i] + min(int(round((t - ts[i]) * rate)), room))

    def onset_s(self, t: float) -> float:
        """Onset from the first sample, s, of LSL time ``t``."""
        return self.sample(t) / self.fs


def _clip_text(text: Any, n: int = 200) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _tags(**fields: Any) -> str:
    return " ".join(f"{k}={_clip_text(v, 120) if isinstance(v, str) else v}" for k, v in fields.items()
                    if v is not None and v != "")


def session_events(records: list[dict[str, Any]], timeline: Timeline) -> list[Event]:
    """Annotations of the log's records on the output time axis (see the module docstring)."""
    duration = timeline.n_out / timeline.fs
    stimuli: dict[int, dict[str, Any]] = {}
    rejected_acks: set[int] = set()
    events: list[Event] = []

    def add(t: Any, desc: str, dur: float = 0.0, stim: Mapping[str, Any] | None = None, *,
            until: float | None = None) -> None:
        """``dur``: s of signal (a stimulus' duration_s); ``until``: the end as LSL time instead."""
        if not isinstance(t, (int, float)) or not math.isfinite(t):
            return
        onset = timeline.onset_s(float(t))
        if until is not None:
            dur = timeline.onset_s(until) - onset
        events.append(Event(onset, max(0.0, min(dur, duration - onset)), desc, dict(stim) if stim else None))

    for r in records:
        typ, k, t = r.get("type"), r.get("trial"), r.get("lsl")
        if typ == "asked" and k is not None:
            stimuli[k] = r.get("stimulus") or {}
        elif typ == "sent":
            add(t, "sent " + _tags(trial=k, seq=r.get("seq"), apply_at=r.get("apply_at")))
        elif typ == "ack" and r.get("status") == "applied":
            stim = stimuli.get(k, {}) if k is not None else {}
            dur = stim.get("duration_s")
            dur = float(dur) if isinstance(dur, (int, float)) and math.isfinite(dur) and dur > 0 else 0.0
            at = r.get("applied_at")
            onset_t = at if isinstance(at, (int, float)) else t
            add(onset_t, "stim " + _tags(trial=k, seq=r.get("seq")), dur, stim or None)
        elif typ == "ack":
            rejected_acks.add(k)
            add(t, "rejected " + _tags(trial=k, seq=r.get("seq"), reason=r.get("reason"), detail=r.get("detail")))
        elif typ == "rejected" and k not in rejected_acks:
            add(t, "rejected " + _tags(trial=k, reason=r.get("reason"), detail=r.get("detail")))
        elif typ == "interrupted":
            add(t, "interrupted " + _tags(trial=k, reason=r.get("reason")))
        elif typ == "stop":
            add(t, "stop " + _tags(seq=r.get("seq"), reason=r.get("reason")))
        elif typ == "fault":
            add(t, "fault " + _tags(kind=r.get("kind"), detail=r.get("detail")))
        elif typ == "recovered":
            add(t, "recovered " + _tags(detail=r.get("detail")))
        elif typ == "start":
            add(t, "start " + _tags(run=r.get("run"), resume=r.get("resume")))
        elif typ == "end":
            add(t, "end " + _tags(reason=r.get("reason")))
        elif typ == "continuous":
            add(t, f"continuous {r.get('phase')} " + _tags(mode=r.get("mode")))
        elif typ == "calibrated":
            rest = r.get("rest_window")
            if isinstance(rest, list) and len(rest) == 2 and all(isinstance(x, (int, float)) for x in rest):
                add(rest[0], "calibration rest", until=float(rest[1]))
    for first, n_fill, real_s in timeline.gaps:
        onset = first / timeline.fs
        events.append(Event(onset, n_fill / timeline.fs, "BAD_ACQ_SKIP"))
        if n_fill + 1 < round(real_s * timeline.fs * timeline.speed):
            shown = (n_fill + 1) / timeline.fs
            events.append(Event(onset, 0.0, f"gap {real_s:.3f} s (LSL) compressed to {shown:.3f} s"))
    return events


def _nonfinite_events(bad: np.ndarray, fs: float) -> list[Event]:
    """``BAD_nonfinite`` spans over the output samples flagged in ``bad`` ``(n_out,)``."""
    if not bad.any():
        return []
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return [Event(a / fs, (b - a) / fs, "BAD_nonfinite") for a, b in zip(starts, stops)]


def session_recording(folder: str | Path, *, min_gap_s: float = 0.05, max_fill_s: float = 60.0) -> Recording:
    """The session's received stream as a :class:`~bfm_stim.recording.Recording` with its annotations.

    Args:
        folder: The session directory.
        min_gap_s: Extra time between two samples beyond ``1 / fs`` that counts as a gap, s.
        max_fill_s: Longest stretch of zeros inserted for one gap, s.

    Raises:
        RecordingError: not a session directory, no stream spec, or no sample received.
    """
    folder = Path(folder)
    meta = read_meta(folder)
    s = load_stream(folder, meta)
    if s.n_samples == 0:
        raise RecordingError(f"{folder / 'stream'}: no samples were received (stream/data.f32 and times.f64 hold 0 "
                             "whole samples), so there is nothing to write; run the session until data arrives")
    if np.any(np.diff(s.times) < 0):
        log.warning("%s: LSL timestamps go backwards at %d places; kept in received order", folder,
                    int(np.sum(np.diff(s.times) < 0)))
    tl = Timeline(s.times, s.fs, speed=s.spec.get("speed") or 1.0, min_gap_s=min_gap_s, max_fill_s=max_fill_s)
    out = np.zeros((s.data.shape[0], tl.n_out), np.float32)
    out[:, tl.index] = s.data
    bad = np.zeros(tl.n_out, bool)
    bad[tl.index] = ~np.isfinite(s.data).all(axis=0)
    out[~np.isfinite(out)] = 0.0
    records = read_log(folder / LOG)
    events = session_events(records, tl) + _nonfinite_events(bad, s.fs)
    info = {"session_id": next((r.get("session_id") for r in records if r.get("type") == "start"), None),
            "lsl_t0": tl.t0, "speed": tl.speed, "source_id": s.spec.get("source_id"), "stream_name": s.spec.get("name"),
            "n_received": s.n_samples, "gaps": [[a, b, c] for a, b, c in tl.gaps], "source": "bfm-stim session"}
    log.info("%s: %d samples (%d received, %d gaps, %d non-finite), %d annotations", folder.name, tl.n_out,
             s.n_samples, len(tl.gaps), int(bad.sum()), len(events))
    return Recording(out, s.fs, s.ch_names, s.ch_types, s.units, s.positions, events, info)


def write_session_fif(dir: Path, *, min_gap_s: float = 0.05, max_fill_s: float = 60.0) -> Path:  # noqa: A002
    """Write ``dir/recording.fif`` from the session directory ``dir`` (replacing an older one).

    Works on a directory left by a SIGKILL: torn tails of the signal files and of the log are
    dropped by :func:`~loops.session.store.read_signal` / :func:`~loops.session.store.read_log`.

    Args:
        dir: The session directory.
        min_gap_s: Extra time between two samples beyond ``1 / fs`` that counts as a gap, s.
        max_fill_s: Longest stretch of zeros inserted for one gap, s (a longer gap is compressed).

    Returns:
        The path of the FIF file.

    Raises:
        RecordingError: not a session directory, no stream spec, no sample received, or the file
            cannot be written.
    """
    rec = session_recording(dir, min_gap_s=min_gap_s, max_fill_s=max_fill_s)
    final = Path(dir) / FIF_NAME
    tmp = rec.write_fif(Path(dir) / f".{FIF_NAME[:-4]}-partial.fif", overwrite=True)
    os.replace(tmp, final)  # a kill while writing leaves the previous file whole
    return final
