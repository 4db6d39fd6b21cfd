"""A lab's recordings opened for streaming: BIDS EEG/iEEG runs, NWB electrical series, plain files.

Each opener yields :class:`Source` objects that describe a recording (rate, channel names and
types, electrode positions, stimulation spans, provenance) without loading its samples;
:meth:`Source.read` returns one stretch of chosen channels in µV. BIDS runs are read through
``mne-bids`` (channel types from ``channels.tsv``, bad channels, electrodes, ``events.tsv``, the
power-line frequency); NWB files through ``pynwb`` (every ``ElectricalSeries``, electrode
positions from the electrodes table, read slice by slice from HDF5); other files through
:meth:`bfm_stim.recording.Recording.read` (these are loaded whole: XDF cannot be read in parts).
"""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from bfm_stim.exceptions import RecordingError

__all__ = ["Source", "BIDS_EXTENSIONS", "NEURAL_TYPES", "list_bids", "list_nwb", "open_bids", "open_nwb",
           "open_recording"]

#: Channel types kept for pretraining; NWB ``ElectricalSeries`` channels are ``"ecephys"``.
NEURAL_TYPES = ("eeg", "seeg", "ecog", "dbs", "ecephys")
#: Raw-data files of a BIDS EEG/iEEG run (the sidecars are found from them).
BIDS_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif", ".cnt")


@dataclass
class Source:
    """One recording, described but not loaded.

    Attributes:
        label: short unique name (file, plus the series name for NWB).
        fs: sampling rate, Hz.
        n_samples: samples per channel.
        names, types: channel names and types (MNE type names; ``"ecephys"`` for NWB).
        positions: (C, 3) electrode positions, m (NaN where unknown).
        bad: channel names the dataset marks bad.
        stim_spans: (start_s, stop_s) spans of stimulation, s from the first sample.
        events: (onset_s, duration_s, description) of every annotation, s.
        line_freq_hz: power-line frequency from the dataset, Hz (None when it does not say).
        meta: provenance (file, subject, session, datatype or format, series).
        reader: ``(picks, start, stop) -> (len(picks), stop - start)`` samples in µV.
        max_read: the longest stretch read so far, samples (what a piece costs in memory).
    """

    label: str
    fs: float
    n_samples: int
    names: list[str]
    types: list[str]
    positions: np.ndarray
    reader: Callable[[Sequence[int], int, int], np.ndarray]
    bad: set[str] = field(default_factory=set)
    stim_spans: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, float, str]] = field(default_factory=list)
    line_freq_hz: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    max_read: int = 0

    def read(self, picks: Sequence[int], start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of channels ``picks`` as float64, µV; shape (len(picks), stop - start)."""
        if not 0 <= start < stop <= self.n_samples:
            raise RecordingError(f"{self.label}: read of samples {start}:{stop} outside 0:{self.n_samples}")
        self.max_read = max(self.max_read, stop - start)
        x = np.asarray(self.reader(list(picks), start, stop), np.float64)
        if x.shape != (len(picks), stop - start):
            raise RecordingError(f"{self.label}: read returned {x.shape}; expected {(len(picks), stop - start)}")
        if not np.isfinite(x).all():
            raise RecordingError(f"{self.label}: non-finite samples in {start}:{stop}")
        return x


def _match(text: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(text.lower(), p.lower()) for p in patterns)


def stim_spans(events: Sequence[tuple[float, float, str]], patterns: Sequence[str]) -> list[tuple[float, float]]:
    """Spans of the events whose description matches one of ``patterns`` (fnmatch, any case)."""
    return [(on, on + dur) for on, dur, desc in events if _match(desc, patterns)]


# ---------------------------------------------------------------------------------------------- BIDS
def list_bids(root: str | Path, *, datatypes: Sequence[str], subjects: Sequence[str] = ()) -> list[Any]:
    """BIDS paths of the EEG/iEEG runs under ``root``, sorted (subject, session, task, run).

    Raises:
        RecordingError: ``root`` is not a directory.
    """
    from mne_bids import find_matching_paths

    if not Path(root).is_dir():
        raise RecordingError(f"bids_root {root} is not a directory")
    paths = find_matching_paths(root, subjects=list(subjects) or None, datatypes=list(datatypes),
                                suffixes=list(datatypes), extensions=list(BIDS_EXTENSIONS))
    # a split FIF run is read from its first part
    return sorted((p for p in paths if p.split in (None, "01")), key=lambda p: str(p.fpath))


def open_bids(path: Any, *, stim_patterns: Sequence[str] = ()) -> Iterator[Source]:
    """The run at ``path`` (a ``mne_bids.BIDSPath``), lazily: its samples stay on disk."""
    from mne_bids import read_raw_bids

    raw = read_raw_bids(path, verbose="error")
    chs = raw.info["chs"]
    pos = np.array([ch["loc"][:3] for ch in chs], np.float64)
    pos[~np.isfinite(pos).all(1) | (np.abs(pos).sum(1) == 0)] = np.nan
    ann = raw.annotations
    t0 = raw.first_time if ann.orig_time is not None else 0.0
    events = [(float(o - t0), float(d), str(s)) for o, d, s in zip(ann.onset, ann.duration, ann.description)]

    def reader(picks: Sequence[int], start: int, stop: int) -> np.ndarray:
        return raw.get_data(picks=picks, start=start, stop=stop) * 1e6  # V -> µV (neural channels are volts)

    line = raw.info.get("line_freq")
    yield Source(label=str(Path(path.fpath).name), fs=float(raw.info["sfreq"]), n_samples=int(raw.n_times),
                 names=list(raw.ch_names), types=list(raw.get_channel_types()), positions=pos, reader=reader,
                 bad=set(raw.info["bads"]), stim_spans=stim_spans(events, stim_patterns), events=events,
                 line_freq_hz=float(line) if line else None,
                 meta={"file": str(path.fpath), "subject": path.subject, "session": path.session,
                       "datatype": path.datatype, "task": path.task, "run": path.run})


# ----------------------------------------------------------------------------------------------- NWB
def list_nwb(patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files matching the glob ``patterns`` (``**`` recurses), sorted; and the patterns matching none."""
    files: dict[str, None] = {}
    empty = []
    for pat in patterns:
        hits = sorted(glob.glob(str(pat), recursive=True))
        if not hits:
            empty.append(str(pat))
        files.update((h, None) for h in hits if Path(h).is_file())
    return list(files), empty


def _series_rate(es: Any) -> tuple[float, float]:
    """(rate Hz, start s) of an NWB time series; irregular timestamps raise."""
    if es.rate is not None:
        return float(es.rate), float(es.starting_time or 0.0)
    ts = np.asarray(es.timestamps[: min(len(es.timestamps), 100_000)], np.float64)
    dt = np.diff(ts)
    if len(dt) == 0 or not np.all(dt > 0) or np.ptp(dt) > 0.01 * np.median(dt):
        raise RecordingError(f"{es.name}: irregular timestamps (no constant rate)")
    return 1.0 / float(np.median(dt)), float(ts[0])


def open_nwb(path: str | Path, *, stim_patterns: Sequence[str] = (), exclude: Sequence[str] = ()) -> Iterator[Source]:
    """Every ``ElectricalSeries`` of the NWB file, read slice by slice while the file is open.

    Electrodes whose label, location or group name matches ``exclude`` get type ``"misc"``; positions
    come from the electrodes table's ``x, y, z`` (µm, as the NWB schema specifies). Interval tables
    (``trials``, ``epochs``, ...) whose name matches ``stim_patterns`` mark stimulation.
    """
    from pynwb import NWBHDF5IO
    from pynwb.ecephys import ElectricalSeries

    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        nwb = io.read()
        series = sorted((o for o in nwb.objects.values() if isinstance(o, ElectricalSeries)), key=lambda o: o.name)
        intervals = [] if nwb.intervals is None else list(nwb.intervals.values())
        spans_abs = [(float(a), float(b)) for tab in intervals if _match(tab.name, stim_patterns)
                     for a, b in zip(tab["start_time"][:], tab["stop_time"][:])]
        subject = getattr(nwb.subject, "subject_id", None) if nwb.subject is not None else None
        for es in series:
            fs, t0 = _series_rate(es)
            rows = np.asarray(es.electrodes.data[:], int)
            tab = es.electrodes.table.to_dataframe().iloc[rows]
            cols = set(tab.columns)
            names = ([str(v) for v in tab["label"]] if "label" in cols
                     else [f"e{int(i)}" for i in tab.index])
            group = [str(getattr(g, "name", g)) for g in tab["group"]] if "group" in cols else [""] * len(rows)
            loc = [str(v) for v in tab["location"]] if "location" in cols else [""] * len(rows)
            types = ["misc" if any(_match(s, exclude) for s in (n, l, g)) else "ecephys"
                     for n, l, g in zip(names, loc, group)]
            if {"x", "y", "z"} <= cols:
                pos = tab[["x", "y", "z"]].to_numpy(np.float64) * 1e-6  # µm -> m
            else:
                pos = np.full((len(rows), 3), np.nan)
            data = es.data
            if data.ndim == 1:
                raise RecordingError(f"{es.name}: one-dimensional data (no channel axis)")
            if data.shape[1] != len(rows):
                raise RecordingError(f"{es.name}: {data.shape[1]} data columns for {len(rows)} electrodes")
            gain = float(es.conversion) * 1e6  # to volts, then µV
            offset = float(getattr(es, "offset", 0.0) or 0.0) * 1e6
            chan = None if es.channel_conversion is None else np.asarray(es.channel_conversion[:], np.float64)

            def reader(picks: Sequence[int], start: int, stop: int, data: Any = data, gain: float = gain,
                       offset: float = offset, chan: np.ndarray | None = chan) -> np.ndarray:
                x = np.asarray(data[start:stop], np.float64)[:, list(picks)].T  # one time slice from disk
                if chan is not None:
                    x = x * chan[list(picks), None]
                return x * gain + offset

            yield Source(label=f"{Path(path).name}:{es.name}", fs=fs, n_samples=int(data.shape[0]), names=names,
                         types=types, positions=pos, reader=reader,
                         stim_spans=[(a - t0, b - t0) for a, b in spans_abs],
                         meta={"file": str(path), "subject": subject, "session": nwb.session_id,
                               "format": "nwb", "series": es.name, "locations": sorted(set(loc))})


# ----------------------------------------------------------------------------------------- any file
def open_recording(path: str | Path) -> Iterator[Source]:
    """A file :meth:`~bfm_stim.recording.Recording.read` opens (loaded whole); stimulus events mark stimulation."""
    from bfm_stim.recording import Recording

    rec = Recording.read(path)
    events = [(e.onset_s, e.duration_s, e.description) for e in rec.events]
    yield Source(label=Path(path).name, fs=rec.fs, n_samples=rec.n_samples, names=list(rec.ch_names),
                 types=list(rec.ch_types), positions=np.asarray(rec.positions, np.float64),
                 reader=lambda picks, a, b: rec.data[list(picks), a:b],
                 stim_spans=[(e.onset_s, e.onset_s + e.duration_s) for e in rec.events if e.is_stimulation],
                 events=events, meta={"file": str(path), "subject": None, "session": None,
                                      "format": Path(path).suffix.lstrip(".").lower()})
