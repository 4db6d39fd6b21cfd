"""Recordings: multichannel data with channels, positions and stimulus events.

A :class:`Recording` holds ``data`` of shape ``(n_channels, n_samples)`` (float32; voltage channels
in µV), the sampling rate in Hz, channel names, types, units, electrode positions in m and a tuple
of :class:`Event`. Readers for EDF/BDF/FIF/BrainVision (through MNE) and XDF (through pyxdf) live in
:mod:`bfm_stim.io`, which builds on this module and installs them behind :meth:`Recording.read`,
:meth:`Recording.write_fif`, :meth:`Recording.to_mne` and :meth:`Recording.from_mne`. Preprocessing
is scipy-only (:mod:`bfm_stim.preprocessing`). Every method returns a new recording; none modifies
its input.

Example:
    >>> rec = Recording.read("session_raw.fif")                       # doctest: +SKIP
    >>> beta = rec.pick("dbs").filter(13.0, 30.0).resample(250.0)     # doctest: +SKIP
    >>> beta.write_fif("beta_raw.fif")                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim import _recording_io
from bfm_stim import preprocessing as pp
from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ValidationError

__all__ = ["Event", "Recording", "VOLTAGE_TYPES", "STIM_TYPES"]

log = get_logger("recording")

#: Channel types whose samples are voltages, stored in µV.
VOLTAGE_TYPES = frozenset({"eeg", "seeg", "ecog", "dbs", "eog", "ecg", "emg", "lfp"})
#: Channel types holding trigger codes; never filtered, resampled by holding values.
STIM_TYPES = frozenset({"stim"})
_STIM_TAG = re.compile(r"(?:^| )stimulus=(\{.*\})$", re.DOTALL)


def _finite(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValidationError(field_name, value, "a finite number")
    if not math.isfinite(float(value)):
        raise ValidationError(field_name, value, "a finite number")
    return float(value)


@dataclass(frozen=True)
class Event:
    """One annotated moment: a marker, a trigger or a stimulus train.

    Attributes:
        onset_s: Start, s from the recording's first sample.
        duration_s: Length, s (>= 0; 0 for a marker).
        description: Free text (e.g. ``"stimulus"``, ``"boundary"``, a marker string).
        stimulus: The stimulus as a JSON-able dict (``Stimulus.to_dict()``), or ``None``. An object
            with a ``to_dict()`` method is converted on construction.
    """

    onset_s: float
    duration_s: float = 0.0
    description: str = ""
    stimulus: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "onset_s", _finite("onset_s", self.onset_s))
        dur = _finite("duration_s", self.duration_s)
        if dur < 0:
            raise ValidationError("duration_s", self.duration_s, "a duration >= 0 s")
        object.__setattr__(self, "duration_s", dur)
        if not isinstance(self.description, str):
            raise ValidationError("description", self.description, "a string")
        stim = self.stimulus
        if stim is not None and not isinstance(stim, Mapping) and hasattr(stim, "to_dict"):
            stim = stim.to_dict()
        if stim is not None:
            if not isinstance(stim, Mapping):
                raise ValidationError("stimulus", stim, "a dict (Stimulus.to_dict()), a Stimulus or None")
            try:
                stim = json.loads(json.dumps(dict(stim), allow_nan=False))
            except (TypeError, ValueError) as exc:
                raise ValidationError("stimulus", stim, "a JSON-serializable dict of finite values") from exc
        object.__setattr__(self, "stimulus", stim)

    def __hash__(self) -> int:
        return hash((self.onset_s, self.duration_s, self.description, json.dumps(self.stimulus, sort_keys=True)))

    @property
    def is_stimulation(self) -> bool:
        """True when the event carries a stimulus that is not ``kind == "off"``."""
        return self.stimulus is not None and self.stimulus.get("kind") != "off"

    def to_annotation(self) -> str:
        """Annotation text: the description, then ``stimulus=<JSON>`` when there is a stimulus."""
        if self.stimulus is None:
            return self.description
        blob = "stimulus=" + json.dumps(self.stimulus, sort_keys=True, separators=(",", ":"))
        return f"{self.description} {blob}" if self.description else blob

    @classmethod
    def from_annotation(cls, onset_s: float, duration_s: float, text: str) -> Event:
        """Inverse of :meth:`to_annotation`; text without a valid stimulus JSON stays a description."""
        match = _STIM_TAG.search(text)
        if match:
            try:
                stim = json.loads(match.group(1))
            except ValueError:
                stim = None
            if isinstance(stim, dict):
                return cls(onset_s, duration_s, text[: match.start()], stim)
        return cls(onset_s, duration_s, text, None)


def _name_list(field_name: str, values: object, n: int) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(field_name, values, f"a sequence of {n} strings (one per data row)")
    out = tuple(values)
    if len(out) != n:
        raise ValidationError(f"len({field_name})", len(out), f"{n} (the number of data rows)")
    for v in out:
        if not isinstance(v, str):
            raise ValidationError(field_name, v, "strings")
    return out


class Recording:
    """Multichannel recording; see the module docstring.

    Args:
        data: Samples, shape ``(n_channels, n_samples)``; converted to float32; must be finite.
            Voltage channels in µV.
        fs: Sampling rate, Hz (> 0).
        ch_names: One unique name per row.
        ch_types: One type per row (``"eeg"``, ``"seeg"``, ``"ecog"``, ``"dbs"``, ``"stim"``,
            ``"misc"``, …); default all ``"misc"``.
        units: One unit string per row; default ``"µV"`` for voltage types and ``""`` otherwise.
        positions: Electrode positions, shape ``(n_channels, 3)``, m; NaN where unknown.
        events: Events with onsets inside ``[0, duration_s]``; kept sorted by onset.
        meta: Free JSON-able information (source file, format, stream name, …).

    Raises:
        ValidationError: Wrong shapes, non-finite samples, duplicate names, bad events.
    """

    def __init__(
        self,
        data: np.ndarray,
        fs: float,
        ch_names: Sequence[str],
        ch_types: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
        positions: np.ndarray | None = None,
        events: Iterable[Event] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise ValidationError("data.shape", arr.shape, "a 2-D array (n_channels, n_samples)")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise ValidationError("data.dtype", str(arr.dtype), "a real numeric dtype")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise ValidationError("data", f"{int(bad.sum())} non-finite samples in rows {rows[:5].tolist()}",
                                  "finite values (no NaN or inf)")
        self.fs = _finite("fs", fs)
        if self.fs <= 0:
            raise ValidationError("fs", fs, "a sampling rate > 0 Hz")
        n_ch = arr.shape[0]
        self.data = arr
        self.ch_names = _name_list("ch_names", ch_names, n_ch)
        if len(set(self.ch_names)) != n_ch:
            dups = sorted({c for c in self.ch_names if self.ch_names.count(c) > 1})
            raise ValidationError("ch_names", dups, "unique channel names")
        types = ("misc",) * n_ch if ch_types is None else _name_list("ch_types", ch_types, n_ch)
        for t in types:
            if not t or t != t.strip():
                raise ValidationError("ch_types", t, "non-empty type names such as 'eeg', 'dbs', 'stim', 'misc'")
        self.ch_types = types
        self.units = (tuple("µV" if t in VOLTAGE_TYPES else "" for t in types) if units is None
                      else _name_list("units", units, n_ch))
        if positions is None:
            pos = np.full((n_ch, 3), np.nan)
        else:
            pos = np.array(positions, dtype=np.float64)
            if pos.shape != (n_ch, 3):
                raise ValidationError("positions.shape", pos.shape, f"({n_ch}, 3) in m, NaN where unknown")
            if np.isinf(pos).any():
                raise ValidationError("positions", "inf", "finite positions in m or NaN when unknown")
        self.positions = pos
        evs = []
        for ev in events:
            if not isinstance(ev, Event):
                raise ValidationError("events", ev, "Event instances")
            if not -1e-9 <= ev.onset_s <= self.duration_s + 1e-9:
                raise ValidationError("events.onset_s", ev.onset_s, f"an onset in [0, {self.duration_s:g}] s")
            evs.append(ev)
        self.events: tuple[Event, ...] = tuple(sorted(evs, key=lambda e: e.onset_s))
        self.meta: dict[str, Any] = dict(meta or {})

    # ------------------------------------------------------------------ properties
    @property
    def n_channels(self) -> int:
        """Number of channels (rows of ``data``)."""
        return self.data.shape[0]

    @property
    def n_samples(self) -> int:
        """Number of samples per channel."""
        return self.data.shape[1]

    @property
    def duration_s(self) -> float:
        """``n_samples / fs``, s."""
        return self.n_samples / self.fs

    @property
    def times(self) -> np.ndarray:
        """Sample times from the first sample, s, shape ``(n_samples,)``."""
        return np.arange(self.n_samples) / self.fs

    def __repr__(self) -> str:
        kinds = sorted(set(self.ch_types))
        return (f"Recording({self.n_channels} ch {kinds}, {self.n_samples} samples at {self.fs:g} Hz "
                f"= {self.duration_s:.3f} s, {len(self.events)} events)")

    def _replace(self, **changes: Any) -> Recording:
        fields = dict(data=self.data, fs=self.fs, ch_names=self.ch_names, ch_types=self.ch_types,
                      units=self.units, positions=self.positions, events=self.events, meta=self.meta)
        fields.update(changes)
        return Recording(**fields)

    def _stim_mask(self) -> np.ndarray:
        return np.array([t in STIM_TYPES for t in self.ch_types], dtype=bool)

    # ------------------------------------------------------------------ selection
    def pick(self, picks: str | Sequence[str]) -> Recording:
        """Keep channels by name or by type, in the order given (types expand in recording order).

        Raises:
            ValidationError: A pick is neither a channel name nor a type present.
        """
        items = [picks] if isinstance(picks, str) else list(picks)
        idx: list[int] = []
        for item in items:
            if item in self.ch_names:
                found = [self.ch_names.index(item)]
            else:
                found = [i for i, t in enumerate(self.ch_types) if t == item]
                if not found:
                    raise ValidationError("picks", item, f"a channel name or one of the types {sorted(set(self.ch_types))}")
            idx.extend(i for i in found if i not in idx)
        sel = np.array(idx, dtype=int)
        return self._replace(data=self.data[sel], ch_names=[self.ch_names[i] for i in idx],
                             ch_types=[self.ch_types[i] for i in idx], units=[self.units[i] for i in idx],
                             positions=self.positions[sel])

    def crop(self, tmin: float = 0.0, tmax: float | None = None) -> Recording:
        """Keep samples with ``tmin <= t < tmax`` (s); events starting there are shifted by ``-tmin``."""
        tmin = _finite("tmin", tmin)
        tmax = self.duration_s if tmax is None else _finite("tmax", tmax)
        if not 0.0 <= tmin < tmax <= self.duration_s + 1e-9:
            raise ValidationError("tmin/tmax", (tmin, tmax), f"0 <= tmin < tmax <= {self.duration_s:g} s")
        a, b = int(round(tmin * self.fs)), min(int(round(tmax * self.fs)), self.n_samples)
        t0 = a / self.fs
        evs = [Event(e.onset_s - t0, e.duration_s, e.description, e.stimulus)
               for e in self.events if t0 <= e.onset_s < b / self.fs]
        return self._replace(data=self.data[:, a:b], events=evs)

    # ------------------------------------------------------------------ preprocessing
    def _map_signal(self, fn: Any) -> Recording:
        out = self.data.copy()
        keep = ~self._stim_mask()
        if keep.any():
            out[keep] = fn(self.data[keep]).astype(np.float32)
        return self._replace(data=out)

    def filter(self, l_freq: float | None, h_freq: float | None, *, order: int = 4) -> Recording:
        """Zero-phase Butterworth band-pass (both edges), high-pass (``h_freq=None``) or low-pass
        (``l_freq=None``) filter of every non-stim channel; edges in Hz."""
        return self._map_signal(lambda x: pp.filter_data(x, self.fs, l_freq, h_freq, order=order))

    def notch(self, freqs: float | Sequence[float], *, quality: float = 30.0) -> Recording:
        """Zero-phase notch at each line frequency in ``freqs`` (Hz) on every non-stim channel."""
        return self._map_signal(lambda x: pp.notch_data(x, self.fs, freqs, quality=quality))

    def resample(self, fs: float) -> Recording:
        """Polyphase resampling to ``fs`` Hz; stim channels keep every trigger (largest value per window)."""
        up, down = pp.resample_ratio(self.fs, fs)
        new_fs = self.fs * up / down
        n_out = -(-self.n_samples * up // down)
        out = np.empty((self.n_channels, n_out), dtype=np.float32)
        stim = self._stim_mask()
        if (~stim).any():
            out[~stim] = pp.resample_data(self.data[~stim], self.fs, new_fs)[:, :n_out]
        if stim.any():
            out[stim] = pp.resample_hold(self.data[stim], self.fs, new_fs)
        dur = n_out / new_fs
        evs = [e for e in self.events if e.onset_s <= dur]
        return self._replace(data=out, fs=new_fs, events=evs)

    def _artifact_windows(self, events: Iterable[Event], pre_s: float, post_s: float,
                          per_pulse: bool) -> list[tuple[float, float]]:
        windows = []
        for ev in events:
            stim = ev.stimulus or {}
            rate = float(stim.get("frequency_hz") or 0.0)
            if per_pulse and stim.get("kind") == "electrical" and rate > 0:
                width_s = float(stim.get("pulse_width_us") or 0.0) * 1e-6 * (2 if stim.get("biphasic", True) else 1)
                n_pulses = max(1, int(math.floor(ev.duration_s * rate + 1e-9)))
                for k in range(n_pulses):
                    t = ev.onset_s + k / rate
                    windows.append((t - pre_s, t + width_s + post_s))
            else:
                windows.append((ev.onset_s - pre_s, ev.onset_s + ev.duration_s + post_s))
        return windows

    def blank_artifacts(self, events: Iterable[Event] | None = None, pre_s: float = 0.0, post_s: float = 0.002,
                        *, mode: str = "linear", per_pulse: bool = True) -> Recording:
        """Blank stimulation artifacts on every non-stim channel.

        Args:
            events: Events to blank around; default every stimulation event of the recording.
            pre_s: Blank this long before each pulse (or event onset), s.
            post_s: Blank this long after each pulse's end (or the event's end), s.
            mode: ``"linear"`` interpolation between the window edges, or ``"zero"``.
            per_pulse: For electrical stimuli with ``frequency_hz > 0``, blank around every pulse
                (at ``onset + k / frequency_hz``, lasting the pulse width, both phases when
                biphasic) instead of the whole train.
        """
        pre_s, post_s = _finite("pre_s", pre_s), _finite("post_s", post_s)
        if pre_s < 0 or post_s < 0:
            raise ValidationError("pre_s/post_s", (pre_s, post_s), "non-negative durations in s")
        evs = [e for e in self.events if e.is_stimulation] if events is None else list(events)
        windows = self._artifact_windows(evs, pre_s, post_s, per_pulse)
        return self._map_signal(lambda x: pp.blank_windows(x, self.fs, windows, mode=mode))

    def stim_free_segments(self, *, margin_s: float = 0.0, min_duration_s: float = 0.0) -> list[tuple[float, float]]:
        """``(start_s, stop_s)`` spans without stimulation (events with a non-off stimulus), s.

        Args:
            margin_s: Extra time excluded before each stimulation onset and after its end, s.
            min_duration_s: Drop spans shorter than this, s.
        """
        margin_s = _finite("margin_s", margin_s)
        busy = [(e.onset_s - margin_s, e.onset_s + e.duration_s + margin_s) for e in self.events if e.is_stimulation]
        return pp.free_segments(self.duration_s, busy, min_duration_s=min_duration_s)

    # ------------------------------------------------------------------ I/O
    # The formats live in bfm_stim.io, which installs them in bfm_stim._recording_io (see there).
    @classmethod
    def read(cls, path: str | Path, *, stream: str | int | None = None) -> Recording:
        """Read ``.fif``/``.fif.gz``, ``.edf``, ``.bdf``, ``.vhdr`` or ``.xdf`` (``stream``: XDF stream
        name or index; default the numeric stream with the most channels).

        Raises:
            RecordingError: Missing, unsupported or corrupt file (message names the file).
        """
        return _recording_io.backend().read(path, stream=stream)

    def write_fif(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write a FIF file that ``mne.io.read_raw_fif`` opens; events become annotations."""
        return _recording_io.backend().write_fif(self, path, overwrite=overwrite)

    def to_mne(self) -> Any:
        """Return an ``mne.io.RawArray`` (volts for voltage channels, annotations for events)."""
        return _recording_io.backend().to_mne(self)

    @classmethod
    def from_mne(cls, raw: Any) -> Recording:
        """Build a recording from an MNE ``Raw`` (voltage channels converted to µV)."""
        return _recording_io.backend().from_mne(raw)
