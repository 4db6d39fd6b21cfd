"""A lab's archive as pretraining data, streamed into corpus shards with bounded memory.

The corpus keys ``bids_root`` (+ ``datatypes``, ``subjects``), ``nwb`` (globs) and ``recordings``
(files) name the recordings; :func:`iter_archive` goes through them one file at a time and yields
stimulation-free :class:`~bfm_stim.model.data.PatientSeries` at the model rate:

1. neural channels only (EEG, sEEG, ECoG, DBS, NWB electrodes): stimulation/trigger, EOG, ECG,
   EMG, misc and bad channels and names matching ``exclude_channels`` are left out;
2. stretches of stimulation (events matching ``exclude_events``, ± ``event_margin_s``) are cut
   out; what is left is cut into pieces of at most ``segment_s`` (fewer seconds when the channels
   would not fit a ``shard_mb`` shard) and at least ``min_segment_s``;
3. each piece is read with a little context on both sides, resampled (polyphase, anti-aliased)
   to the model rate, high-passed (``highpass_hz``) and notched at the power-line frequency and
   its harmonics, then the context is dropped, so pieces join without filter edges;
4. per file, each channel is z-scored (mean and SD over all of the file's pieces, a first pass)
   and scaled to ``zscore_uv`` µV: the simulated corpus is in µV with channel SDs of about 7–32 µV
   and the model normalises every window itself, so this puts each file's amplitude where the
   model's rest encoder (whose input includes the log amplitude) saw the simulated patients.

Only one piece of one file (plus its filter context) is in memory at a time, and
:class:`BoundedShardWriter` keeps every shard under ``shard_mb``, so training (a couple of shards
per rank in memory) stays bounded too. A file that fails to open or read is skipped, with its
reason logged and kept in the corpus manifest (``manifest.json`` → ``archive``), along with what
went in: file, subject, session, channels, seconds, segments, events and per-channel SDs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from scipy.signal import butter, filtfilt, iirnotch, resample_poly, sosfiltfilt

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError
from bfm_stim.model.data import PatientSeries, ShardWriter
from bfm_stim.space import Stimulus
from bfm_stim.stim_features import features_of
from loops.archive_sources import NEURAL_TYPES, Source, list_bids, list_nwb, open_bids, open_nwb, open_recording

__all__ = ["ArchiveReport", "BoundedShardWriter", "iter_archive", "has_archive"]

log = get_logger("pretrain.archive")

_FLAT_UV = 1e-3  # a channel whose SD is below this (µV) carries nothing
_OFF = features_of([Stimulus.off()], {})[0].numpy()[None].astype(np.float32)


def has_archive(cfg: Any) -> bool:
    """Whether the corpus config names any recordings (``bids_root``, ``nwb`` or ``recordings``)."""
    return bool(cfg.bids_root or cfg.nwb or cfg.recordings)


@dataclass
class ArchiveReport:
    """What went into the corpus from the archive and what was skipped (why)."""

    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, file: str, reason: str) -> None:
        log.warning("archive: skipping %s: %s", file, reason)
        self.skipped.append({"file": file, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        subjects = {(f.get("subject") or f["file"]) for f in self.files}
        return {"n_files": len(self.files), "n_skipped": len(self.skipped), "n_subjects": len(subjects),
                "seconds": round(sum(f["seconds"] for f in self.files), 3),
                "segments": sum(f["segments"] for f in self.files), "files": self.files, "skipped": self.skipped}


def _padded_bytes(ps: Sequence[PatientSeries]) -> int:
    """Bytes of the arrays :class:`ShardWriter` pads these series into (signal, stimulus ids, positions)."""
    c = max(s.data.shape[0] for s in ps)
    t = max(s.data.shape[1] for s in ps)
    return len(ps) * (t * (4 * c + 4) + 12 * c)


class BoundedShardWriter(ShardWriter):
    """A :class:`ShardWriter` that also starts a new shard before one would exceed ``max_bytes``.

    A single series larger than ``max_bytes`` still gets a shard of its own; :func:`iter_archive`
    cuts its pieces so that this never happens for archive data.
    """

    def __init__(self, out_dir: str | Path, *, patients_per_shard: int = 8, max_bytes: int = 256 << 20,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__(out_dir, patients_per_shard=patients_per_shard, info=info)
        self.max_bytes = int(max_bytes)

    def add(self, s: PatientSeries) -> None:
        if self._pending and _padded_bytes([*self._pending, s]) > self.max_bytes:
            self._flush()
        super().add(s)


# ----------------------------------------------------------------------------------- preprocessing
def _ratio(fs_in: float, fs: float) -> tuple[int, int]:
    r = Fraction(fs).limit_denominator(1000) / Fraction(fs_in).limit_denominator(1000)
    return r.numerator, r.denominator


@dataclass(frozen=True)
class _Prep:
    fs: float
    highpass_hz: float
    notch_hz: tuple[float, ...]
    pad_s: float

    def __call__(self, x: np.ndarray, fs_in: float) -> np.ndarray:
        """(C, T) µV at ``fs_in`` → (C, T') at the model rate, high-passed and notched."""
        x = x - x.mean(1, keepdims=True)
        up, down = _ratio(fs_in, self.fs)
        y = x if up == down else resample_poly(x, up, down, axis=-1)
        if self.highpass_hz > 0 and y.shape[1] > 30:
            y = sosfiltfilt(butter(4, self.highpass_hz, "highpass", fs=self.fs, output="sos"), y, axis=-1)
        for f in self.notch_hz:
            if y.shape[1] > 15:
                b, a = iirnotch(f, 30.0, fs=self.fs)
                y = filtfilt(b, a, y, axis=-1)
        return y


def _kept_spans(src: Source, margin_s: float) -> tuple[list[tuple[int, int]], float]:
    """Sample spans without stimulation (± margin) and the seconds removed."""
    busy = sorted((max(0.0, a - margin_s), min(src.n_samples / src.fs, b + margin_s)) for a, b in src.stim_spans)
    spans, t, removed = [], 0.0, 0.0
    for a, b in busy:
        if b <= t:
            continue
        if a > t:
            spans.append((t, a))
        removed += b - max(a, t)
        t = b
    spans.append((t, src.n_samples / src.fs))
    return [(int(round(a * src.fs)), int(round(b * src.fs))) for a, b in spans if b > a], removed


def _pieces(spans: list[tuple[int, int]], fs_in: float, fs: float, seg: int,
            min_len: int) -> list[tuple[int, int, int, int]]:
    """(lo, hi, a, b): pieces [a, b) of the kept spans [lo, hi), input samples, each <= seg and >= min_len
    samples at the model rate: equal lengths within a span where that fits both bounds, else pieces of
    ``seg`` and the rest (shorter than ``min_len``) left out."""
    out = []
    for lo, hi in spans:
        n_out = (hi - lo) * fs / fs_in
        if n_out < min_len:
            continue
        k = math.ceil(n_out / seg)
        if n_out / k >= min_len:
            edges = np.round(np.linspace(lo, hi, k + 1)).astype(int)
        else:
            step = seg * fs_in / fs
            edges = np.round(lo + step * np.arange(int(n_out // seg) + 1)).astype(int)
        out += [(lo, hi, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return out


def _load(src: Source, picks: list[int], piece: tuple[int, int, int, int], prep: _Prep) -> np.ndarray:
    """One piece at the model rate, read with up to ``prep.pad_s`` of context on each side (inside its span)."""
    lo, hi, a, b = piece
    pad = int(round(prep.pad_s * src.fs))
    a0, b0 = max(lo, a - pad), min(hi, b + pad)
    y = prep(src.read(picks, a0, b0), src.fs)
    off = int(round((a - a0) * prep.fs / src.fs))
    n = int(round((b - a) * prep.fs / src.fs))
    return y[:, off: off + n]


# -------------------------------------------------------------------------------------- per source
class _Skip(Exception):
    """A recording that cannot contribute (the message says why)."""


def _picks(src: Source, exclude: Sequence[str]) -> tuple[list[int], dict[str, str]]:
    import fnmatch

    keep, dropped = [], {}
    for i, (name, typ) in enumerate(zip(src.names, src.types)):
        if typ not in NEURAL_TYPES:
            dropped[name] = f"type {typ}"
        elif name in src.bad:
            dropped[name] = "marked bad"
        elif any(fnmatch.fnmatch(name.lower(), p.lower()) for p in exclude):
            dropped[name] = "excluded by name"
        else:
            keep.append(i)
    return keep, dropped


def _source_series(src: Source, cfg: Any, fs: float, min_samples: int, max_bytes: int,
                   report: ArchiveReport) -> Iterator[PatientSeries]:
    """The stimulation-free pieces of one recording (two passes: channel statistics, then the pieces)."""
    picks, dropped = _picks(src, cfg.exclude_channels)
    if not picks:
        raise _Skip(f"no neural channels (types {sorted(set(src.types))})")
    seg = min(int(cfg.segment_s * fs), max_bytes // (4 * len(picks) + 4))
    min_len = max(int(math.ceil(cfg.min_segment_s * fs)), int(min_samples))
    if seg < min_len:
        raise _Skip(f"{len(picks)} channels x {min_len} samples do not fit a shard of shard_mb={cfg.shard_mb:g}")
    spans, stim_s = _kept_spans(src, cfg.event_margin_s)
    pieces = _pieces(spans, src.fs, fs, seg, min_len)
    if not pieces:
        raise _Skip(f"no stimulation-free stretch of >= {min_len / fs:g} s ({src.n_samples / src.fs:.1f} s, "
                    f"{stim_s:.1f} s of it stimulation)")
    line = cfg.line_freq_hz or src.line_freq_hz
    notch = tuple(line * k for k in range(1, 64) if line * k < fs / 2 - 1) if cfg.notch and line else ()
    prep = _Prep(fs, cfg.highpass_hz, notch, max(1.0, 2.0 / cfg.highpass_hz) if cfg.highpass_hz > 0 else 1.0)
    # pass 1: each channel's mean and SD over the whole file, one piece in memory at a time
    s1 = np.zeros(len(picks))
    s2 = np.zeros(len(picks))
    n = 0
    for p in pieces:
        y = _load(src, picks, p, prep)
        s1 += y.sum(1)
        s2 += (y ** 2).sum(1)
        n += y.shape[1]
    mean = s1 / n
    sd = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
    live = sd >= _FLAT_UV
    for i in np.flatnonzero(~live):
        dropped[src.names[picks[i]]] = "flat"
    if not live.any():
        raise _Skip("every neural channel is flat")
    picks = [c for c, ok in zip(picks, live) if ok]
    mean, sd = mean[live], sd[live]
    entry = {**{k: v for k, v in src.meta.items() if v is not None}, "label": src.label, "fs_in": src.fs,
             "channels": [src.names[c] for c in picks], "channel_types": sorted({src.types[c] for c in picks}),
             "dropped_channels": dropped, "positions_known": int(np.isfinite(src.positions[picks]).all(1).sum()),
             "seconds_total": round(src.n_samples / src.fs, 3), "stimulation_excluded_s": round(stim_s, 3),
             "events": len(src.events), "event_kinds": sorted({e[2] for e in src.events})[:20],
             "line_freq_hz": line or None, "notch_hz": list(notch), "highpass_hz": cfg.highpass_hz,
             "sd_uv": [float(f"{v:.4g}") for v in sd], "zscore_uv": cfg.zscore_uv if cfg.zscore else None}
    # pass 2: the pieces, z-scored with the file's statistics
    pos = np.asarray(src.positions, np.float32)[picks]
    done = 0.0
    for k, p in enumerate(pieces):
        y = _load(src, picks, p, prep)
        if cfg.zscore:
            y = (y - mean[:, None]) / sd[:, None] * cfg.zscore_uv
        t = y.shape[1]
        meta = {"id": f"{src.label}#{k}", "source": "archive", "file": src.meta.get("file"),
                "subject": src.meta.get("subject"), "session": src.meta.get("session"), "segment": k,
                "start_s": round(p[2] / src.fs, 3), "seconds": round(t / fs, 3), "n_channels": len(picks)}
        yield PatientSeries(y.astype(np.float32), pos, np.zeros(t, np.int32), _OFF.copy(), t, -1, -1, meta)
        done += t / fs
    entry.update(seconds=round(done, 3), segments=len(pieces), max_read_samples=src.max_read)
    report.files.append(entry)
    log.info("archive: %s: %d channels, %.1f s in %d segments", src.label, len(picks), done, len(pieces))


def _items(cfg: Any, report: ArchiveReport) -> Iterator[tuple[str, Callable[[], Iterator[Source]]]]:
    """(label, opener) of every recording the config names, in a fixed order: BIDS, NWB, plain files."""
    if cfg.bids_root:
        for bp in list_bids(cfg.bids_root, datatypes=cfg.datatypes, subjects=cfg.subjects):
            yield str(bp.fpath), lambda bp=bp: open_bids(bp, stim_patterns=cfg.exclude_events)
    if cfg.nwb:
        files, empty = list_nwb(cfg.nwb)
        for pat in empty:
            report.skip(pat, "no file matches this pattern")
        for f in files:
            yield f, lambda f=f: open_nwb(f, stim_patterns=cfg.exclude_events, exclude=cfg.exclude_channels)
    for f in cfg.recordings:
        yield str(f), lambda f=f: open_recording(f)


def iter_archive(cfg: Any, *, fs: float, report: ArchiveReport, min_samples: int = 0) -> Iterator[PatientSeries]:
    """Stream the archive the corpus config names as stimulation-free series at ``fs`` Hz.

    Args:
        cfg: a :class:`loops.pretrain_corpus.CorpusConfig`.
        fs: model rate, Hz.
        report: filled with what went in and what was skipped.
        min_samples: shortest series to keep (a training window), samples at ``fs``.

    Raises:
        ConfigError: ``bids_root`` is not a directory (a configuration mistake, not a bad file), or
            NWB files are named and pynwb is not installed.
    """
    if cfg.bids_root and not Path(cfg.bids_root).is_dir():
        raise ConfigError(f"corpus.bids_root={cfg.bids_root!r} is not a directory")
    if cfg.nwb:
        try:
            import pynwb  # noqa: F401
        except ImportError as err:
            raise ConfigError("corpus.nwb needs pynwb: pip install 'bfm-stim[archive]'") from err
    max_bytes = int(cfg.shard_mb * (1 << 20))
    for label, opener in _items(cfg, report):
        try:
            for src in opener():
                where = label + (f":{src.meta['series']}" if src.meta.get("series") else "")
                n_done = 0
                try:
                    for s in _source_series(src, cfg, fs, min_samples, max_bytes, report):
                        n_done += 1
                        yield s
                except _Skip as err:
                    report.skip(where, str(err))
                except Exception as err:  # noqa: BLE001 - third-party readers: any failure skips this recording
                    part = f" after {n_done} segments (kept)" if n_done else ""
                    report.skip(where, f"read failed{part}: {type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - a file that does not open is skipped, never fatal
            report.skip(label, f"{type(err).__name__}: {err}")


if __name__ == "__main__":  # python -m loops.pretrain_archive CONFIG OUT: build a run's corpus before torchrun
    import argparse
    import json

    from bfm_stim._logging import log_to_stderr
    from loops.pretrain import build_corpus, load_config

    ap = argparse.ArgumentParser(description="Build a pretraining run's corpus (its archive included) ahead of "
                                             "training: under torchrun the other ranks wait for rank 0's build "
                                             "at most the process group's timeout, and a built corpus is reused")
    ap.add_argument("config")
    ap.add_argument("out", help="the run folder that `bfm-stim pretrain --out` / torchrun will get")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args()
    log_to_stderr("INFO")
    cfg = load_config(a.config)
    corpus_dir = Path(cfg.corpus.dir) if Path(cfg.corpus.dir).is_absolute() else Path(a.out) / cfg.corpus.dir
    man = json.loads(build_corpus(cfg, corpus_dir, progress=not a.no_progress).read_text())
    arc = {k: v for k, v in man.get("archive", {}).items() if k != "files"}
    print(json.dumps({"corpus": str(corpus_dir), "series": man["n_patients"], "shards": len(man["shards"]),
                      "archive": arc}, indent=1))
