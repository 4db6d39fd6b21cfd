"""A user's recording as the commands read it: scaled, typed, placed, checked, neural channels only.

``bfm-stim adapt`` and ``bfm-stim optimize --surrogate-only`` call :func:`prepare_recording`:
read the file, apply ``--scale``, take channel types and positions from BIDS sidecars beside the
file, ``--montage`` and ``--channels-file``/``--electrodes`` (:mod:`bfm_stim.io.geometry`), run the
sanity checks (:mod:`bfm_stim.sanity`) and stop on an error with its message, log the warnings, and
keep the neural channels. The findings travel in the command's output JSON (:meth:`PreparedRecording.to_dict`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.io.geometry import resolve_geometry
from bfm_stim.recording import Recording
from bfm_stim.sanity import SanityReport, apply_scale, check_recording, neural_channels

__all__ = ["PreparedRecording", "prepare_recording", "model_min_duration_s"]

log = get_logger("loops.recording_input")


@dataclass(frozen=True)
class PreparedRecording:
    """What :func:`prepare_recording` made of a file.

    Attributes:
        recording: The neural channels, scaled and with their geometry: what the model reads.
        full: Every channel, scaled and with its geometry (stimulation contacts come from here).
        report: The sanity report (no errors: those raised).
        source: The file read.
        scale: The ``--scale`` factor applied, or ``None``.
        geometry: The geometry sources applied, in order.
    """

    recording: Recording
    full: Recording
    report: SanityReport
    source: str
    scale: float | None = None
    geometry: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when the model's input differs from the file as read (scale, geometry or channels)."""
        return bool(self.scale is not None or self.geometry or self.recording.ch_names != self.full.ch_names)

    def to_dict(self) -> dict[str, Any]:
        """For the output JSON: source, scale, geometry sources, channels used, the sanity report."""
        return {"source": self.source, "scale": self.scale, "geometry": list(self.geometry),
                "channels": list(self.recording.ch_names), "channel_types": list(self.recording.ch_types),
                "positions_known": int(np.isfinite(self.recording.positions).all(axis=1).sum()),
                "checks": self.report.to_dict()}

    @contextlib.contextmanager
    def as_file(self) -> Iterator[Path]:
        """A path to give code that reads a file: the original when nothing changed, else a
        temporary FIF of :attr:`recording` (removed on exit)."""
        if not self.changed:
            yield Path(self.source)
            return
        with tempfile.TemporaryDirectory(prefix="bfm-stim-input-") as d:
            stem = Path(self.source).name.split(".")[0] or "recording"
            yield self.recording.write_fif(Path(d) / f"{stem}-prepared_raw.fif")


def model_min_duration_s(checkpoint: str | Path | None, *, adapt: bool = True) -> float:
    """Stimulation-off data the model needs, s: one context window plus a forecast horizon (``adapt``),
    or one context window (a zero-shot embedding). Loads the checkpoint's config only."""
    from bfm_stim.model import load_checkpoint
    from bfm_stim.surrogate import default_checkpoint

    model, _ = load_checkpoint(checkpoint if checkpoint is not None else default_checkpoint())
    cfg = model.config
    patches = max(2, cfg.max_patches - cfg.horizon_patches) + (cfg.horizon_patches if adapt else 0)
    return patches * cfg.patch_len / cfg.fs


def prepare_recording(source: str | Path | Recording, *, scale: float | None = None,
                      channel_files: Sequence[str | Path] = (), montage: str | None = None,
                      min_duration_s: float | None = None) -> PreparedRecording:
    """Read, scale, place and check a recording; see the module docstring.

    Args:
        source: A recording file (any format :meth:`Recording.read` takes) or a recording.
        scale: Factor for the voltage channels (e.g. ``1e-6`` for volts read as µV), or ``None``.
        channel_files: Channels/electrodes files (BIDS ``.tsv``, ``.csv``, ``.toml``), applied in order.
        montage: An MNE standard montage name or montage file.
        min_duration_s: Stimulation-off data the command needs, s.

    Raises:
        RecordingError: The file cannot be read, or a sanity check found an error (the message
            names the channel, the value, the plausible range and what to do).
        ConfigError: A geometry file or montage cannot be used.
    """
    if isinstance(source, Recording):
        rec, path = source, source.meta.get("source")
    else:
        rec, path = Recording.read(source), source
    name = str(path) if path is not None else "recording"
    if scale is not None:
        rec = apply_scale(rec, scale)
    rec, notes = resolve_geometry(rec, path=path, files=channel_files, montage=montage)
    report = check_recording(rec, min_duration_s=min_duration_s).with_findings(notes)
    report = replace(report, source=name)
    report.raise_if_errors()
    report.log(log)
    neural = neural_channels(rec, report=report)
    log.info("%s: %d of %d channels go to the model (%s)", name, neural.n_channels, rec.n_channels,
             ", ".join(sorted(set(neural.ch_types))))
    return PreparedRecording(neural, rec, report, name, scale, tuple(rec.meta.get("geometry", [])))
