"""Pretraining corpus: stimulation-off rest plus random probe stimulation, per patient.

Sources:
- ``"simulators"``: the pretraining cohort (``simulators.cohort("pretrain", n)``) over the listed
  patient families, healthy and pathological, electrical and sensory probes;
- ``"synthetic"``: a cheap built-in oscillator model (for tests and development);
- ``"archive"``: none of those, only a lab's own recordings;
- recordings, added as stimulation-free data with any source (:mod:`loops.pretrain_archive`):
  ``bids_root`` (a BIDS EEG/iEEG dataset), ``nwb`` (globs of NWB files) and ``recordings``
  (files :meth:`bfm_stim.recording.Recording.read` opens), streamed one file at a time.
Every patient becomes a :class:`~bfm_stim.model.data.PatientSeries` at the model rate;
:func:`write_corpus` writes them into shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from scipy.signal import resample_poly

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import BfmStimError, ConfigError, ValidationError
from bfm_stim.model.data import PatientSeries
from bfm_stim.model.synthetic import random_probe, synthetic_series
from bfm_stim.space import Stimulus
from bfm_stim.stim_features import features_of

__all__ = ["CorpusConfig", "iter_corpus", "resample_to", "write_corpus"]

log = get_logger("pretrain.corpus")


@dataclass(frozen=True)
class CorpusConfig:
    """What the corpus holds.

    Attributes:
        source: ``"simulators"``, ``"synthetic"`` or ``"archive"`` (the recordings below only).
        dir: corpus directory, relative to the run directory unless absolute.
        n_patients: patients from the source (each gets a row of the embedding table).
        families: simulator patient ids to cycle through (empty: all registered).
        rest_s: stimulation-off rest at the start of each patient, s.
        n_trials: probe stimuli per patient.
        trial_pre_s, trial_post_s: off time before and after each probe, s.
        sensory_frac: fraction of probes that are sensory (when the patient accepts them).
        patients_per_shard: patients per shard file.
        recordings: recording files added as stimulation-free data.
        seed: seed of the probe draws.
        bids_root: a BIDS dataset directory whose EEG/iEEG runs are added ("" for none).
        datatypes: BIDS datatypes to read (``"eeg"``, ``"ieeg"``).
        subjects: BIDS subject labels to read (empty: all).
        nwb: glob patterns of NWB files (``**`` recurses); every ``ElectricalSeries`` is added.
        segment_s: longest piece of a recording per series, s (fewer when a shard would overflow).
        min_segment_s: shortest stimulation-free stretch kept, s.
        shard_mb: largest shard, MiB (bounds the memory a training rank holds per shard).
        highpass_hz: high-pass of recordings, Hz (0: none).
        notch: notch recordings at the power-line frequency and its harmonics.
        line_freq_hz: power-line frequency, Hz (0: the BIDS dataset's ``PowerLineFrequency``;
            NWB files state none).
        zscore: z-score each channel of each recording (over the file), then scale to ``zscore_uv``.
        zscore_uv: SD of a z-scored channel, µV (the simulated patients' channel SDs are ~7-32 µV).
        exclude_channels: channel names left out (fnmatch, any case) besides non-neural types.
        exclude_events: event descriptions (BIDS annotations; NWB interval table names) that mark
            stimulation, cut out with ``event_margin_s`` (s) on both sides.
    """

    source: str = "simulators"
    dir: str = "corpus"
    n_patients: int = 200
    families: tuple[str, ...] = ()
    rest_s: float = 20.0
    n_trials: int = 16
    trial_pre_s: float = 1.0
    trial_post_s: float = 2.0
    sensory_frac: float = 0.3
    patients_per_shard: int = 8
    recordings: tuple[str, ...] = ()
    seed: int = 0
    bids_root: str = ""
    datatypes: tuple[str, ...] = ("eeg", "ieeg")
    subjects: tuple[str, ...] = ()
    nwb: tuple[str, ...] = ()
    segment_s: float = 300.0
    min_segment_s: float = 4.0
    shard_mb: float = 256.0
    highpass_hz: float = 0.5
    notch: bool = True
    line_freq_hz: float = 0.0
    zscore: bool = True
    zscore_uv: float = 15.0
    exclude_channels: tuple[str, ...] = ("sti*", "status", "*trig*", "*eog*", "*ecg*", "*ekg*", "*emg*", "*resp*")
    exclude_events: tuple[str, ...] = ("*stimulation*",)
    event_margin_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("families", "recordings", "datatypes", "nwb", "exclude_channels", "exclude_events"):
            v = getattr(self, name)
            if isinstance(v, str) or not all(isinstance(x, str) for x in v):
                raise ValidationError(f"corpus.{name}", v, "a list of strings")
            object.__setattr__(self, name, tuple(v))
        if self.source == "simulators":  # the held-out family never enters a pretraining corpus
            from simulators.registry import is_held_out

            held = [f for f in self.families if is_held_out(f)]
            if held:
                raise ValidationError("corpus.families", held, "families that are not held out of pretraining",
                                      hint="the registry marks them held_out: they are the out-of-distribution "
                                           "test bed (bfm-stim bench robust); remove them from the corpus")
        # subjects as BIDS labels: 1 -> "1", "sub-01" -> "01"
        object.__setattr__(self, "subjects", tuple(str(x).removeprefix("sub-") for x in self.subjects))
        object.__setattr__(self, "bids_root", str(self.bids_root))
        if self.source not in ("simulators", "synthetic", "archive"):
            raise ValidationError("corpus.source", self.source, "'simulators', 'synthetic' or 'archive'")
        if self.source == "archive" and not (self.bids_root or self.nwb or self.recordings):
            raise ValidationError("corpus.source", self.source, "'simulators' or 'synthetic'",
                                  "source = 'archive' needs bids_root, nwb or recordings")
        bad = sorted(set(self.datatypes) - {"eeg", "ieeg"})
        if bad or not self.datatypes:
            raise ValidationError("corpus.datatypes", list(self.datatypes), "a non-empty subset of ['eeg', 'ieeg']")
        for name in ("segment_s", "min_segment_s", "shard_mb", "zscore_uv"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
                raise ValidationError(f"corpus.{name}", v, "a positive finite number")
        if self.min_segment_s > self.segment_s:
            raise ValidationError("corpus.min_segment_s", self.min_segment_s, f"<= segment_s={self.segment_s:g} s")
        for name in ("highpass_hz", "line_freq_hz", "event_margin_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ValidationError(f"corpus.{name}", v, "a finite number >= 0 (0: none)")
        for name in ("notch", "zscore"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"corpus.{name}", getattr(self, name), "true or false")
        for name in ("n_patients", "n_trials", "patients_per_shard"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValidationError(f"corpus.{name}", v, "a positive integer")
        for name in ("rest_s", "trial_pre_s", "trial_post_s"):
            if not getattr(self, name) > 0:
                raise ValidationError(f"corpus.{name}", getattr(self, name), "a positive duration in s")
        if not 0 <= self.sensory_frac <= 1:
            raise ValidationError("corpus.sensory_frac", self.sensory_frac, "a fraction in [0, 1]")


def resample_to(data: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) of (C, T) data from ``fs_in`` to ``fs_out`` Hz."""
    if abs(fs_in - fs_out) < 1e-9:
        return data.astype(np.float32)
    from fractions import Fraction
    fr = Fraction(fs_out / fs_in).limit_denominator(1000)
    return resample_poly(data, fr.numerator, fr.denominator, axis=-1).astype(np.float32)


def _series(chunks: list[np.ndarray], ids: list[np.ndarray], table: list[np.ndarray], rest: int, fs_in: float,
            fs: float, positions: np.ndarray, patient: int, group: int, meta: dict) -> PatientSeries:
    data = resample_to(np.concatenate(chunks, axis=1), fs_in, fs)
    sid = np.concatenate(ids)
    idx = np.minimum((np.arange(data.shape[1]) * fs_in / fs).astype(np.int64), len(sid) - 1)
    return PatientSeries(data, positions.astype(np.float32), sid[idx].astype(np.int32),
                         np.stack(table).astype(np.float32), int(rest * fs / fs_in), patient, group, meta)


def _simulated(cfg: CorpusConfig, fs: float) -> Iterator[PatientSeries]:
    import simulators

    fams = list(cfg.families) or [pid for pid, _ in simulators.list_patients()]
    seeds = iter(simulators.cohort("pretrain", 4 * cfg.n_patients))
    rng = np.random.default_rng(cfg.seed)
    for i in range(cfg.n_patients):
        fam = fams[i % len(fams)]
        while True:  # a seed the simulator cannot build is skipped (and logged), not fatal
            seed = next(seeds)
            try:
                p = simulators.make(fam, seed=int(seed))
                break
            except Exception as err:  # noqa: BLE001 - third-party physics: any failure means "skip"
                log.warning("skipping %s seed %d: %s", fam, seed, err)
        p.reset()
        space = p.stimulus_space()
        contacts = {c.name: c for c in space.contacts}
        fs_in = float(p.fs)
        off = np.zeros(len(FEATURES_OFF), np.float32)
        table, chunks, ids = [off], [], []
        n_rest = int(round(cfg.rest_s * fs_in))
        chunks.append(p.advance(n_rest))
        ids.append(np.zeros(n_rest, np.int32))
        for _ in range(cfg.n_trials):
            stim = random_probe(space, rng, rng.random() < cfg.sensory_frac, 1.0)
            try:
                p.start_stimulation(stim)
            except BfmStimError:
                stim = random_probe(space, rng, False, 1.0)
                p.start_stimulation(stim)
            table.append(features_of([stim], contacts)[0].numpy())
            n_on = int(round(stim.duration_s * fs_in))
            chunks.append(p.advance(n_on))
            ids.append(np.full(n_on, len(table) - 1, np.int32))
            p.stop_stimulation()
            n_off = int(round((cfg.trial_post_s + cfg.trial_pre_s) * fs_in))
            chunks.append(p.advance(n_off))
            ids.append(np.zeros(n_off, np.int32))
        group = fams.index(fam) * 2 + int(p.regime == "pathological")
        meta = {"id": p.id, "family": fam, "seed": int(seed), "regime": p.regime}
        yield _series(chunks, ids, table, n_rest, fs_in, fs, np.asarray(p.channel_positions), i, group, meta)


def _synthetic(cfg: CorpusConfig, fs: float) -> Iterator[PatientSeries]:
    """Damped stochastic oscillators mixed into channels; probes entrain or suppress them."""
    yield from synthetic_series(cfg.n_patients, seed=cfg.seed, rest_s=cfg.rest_s, n_trials=cfg.n_trials,
                                trial_pre_s=cfg.trial_pre_s, trial_post_s=cfg.trial_post_s,
                                sensory_frac=cfg.sensory_frac, fs=fs)


FEATURES_OFF = features_of([Stimulus.off()], {})[0].numpy()


def iter_corpus(cfg: CorpusConfig, *, fs: float, report: Any = None, min_samples: int = 0) -> Iterator[PatientSeries]:
    """Yield the corpus' patient series at ``fs`` Hz (patients first, then the archive's recordings).

    Args:
        report: a :class:`loops.pretrain_archive.ArchiveReport` to fill with what the archive
            gave and what it skipped (a fresh one when None).
        min_samples: shortest recording piece kept, samples at ``fs`` (a training window).
    """
    if cfg.source == "simulators":
        yield from _simulated(cfg, fs)
    elif cfg.source == "synthetic":
        yield from _synthetic(cfg, fs)
    from loops.pretrain_archive import ArchiveReport, has_archive, iter_archive

    if has_archive(cfg):
        yield from iter_archive(cfg, fs=fs, report=ArchiveReport() if report is None else report,
                                min_samples=min_samples)


def write_corpus(cfg: CorpusConfig, corpus_dir: str | Path, *, fs: float, info: dict[str, Any],
                 progress: bool = True, min_samples: int = 0) -> Path:
    """Write the corpus into shards of at most ``patients_per_shard`` patients and ``shard_mb`` MiB.

    ``info`` goes into ``manifest.json``; so does ``archive``: what each recording gave (file,
    subject, channels, seconds) and the files skipped, with the reason. Returns the manifest path.

    Raises:
        ConfigError: nothing to write (e.g. every recording of an archive-only corpus was skipped).
    """
    from tqdm import tqdm

    from loops.pretrain_archive import ArchiveReport, BoundedShardWriter, has_archive

    report = ArchiveReport()
    writer = BoundedShardWriter(corpus_dir, patients_per_shard=cfg.patients_per_shard,
                                max_bytes=int(cfg.shard_mb * (1 << 20)), info=info)
    n = 0
    for s in tqdm(iter_corpus(cfg, fs=fs, report=report, min_samples=min_samples),
                  total=None if has_archive(cfg) else cfg.n_patients, desc="corpus", unit="series",
                  disable=not progress):
        writer.add(s)
        n += 1
    if n == 0:
        why = "; ".join(f"{k['file']}: {k['reason']}" for k in report.skipped[:5])
        raise ConfigError(f"the corpus is empty: no recording could be used ({why or 'none found'})")
    if has_archive(cfg):
        writer.info["archive"] = report.to_dict()
    return writer.close()
