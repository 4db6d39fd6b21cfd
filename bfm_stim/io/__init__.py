"""Readers and writers behind :meth:`bfm_stim.recording.Recording.read` and ``write_fif``.

EDF, BDF, FIF and BrainVision go through MNE (:mod:`bfm_stim.io.mne_io`), XDF through pyxdf
(:mod:`bfm_stim.io.xdf`). MNE and pyxdf are imported only when a file is read, so streaming code
that only needs :class:`~bfm_stim.recording.Recording` does not pay for them.

This package builds on :mod:`bfm_stim.recording` (never the reverse): on import it installs its
readers and writers as the backend of the recording's file methods (:mod:`bfm_stim._recording_io`);
``bfm_stim`` imports it, so ``Recording.read`` works whatever was imported first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfm_stim import _recording_io
from bfm_stim.exceptions import RecordingError

if TYPE_CHECKING:
    from bfm_stim.recording import Recording

__all__ = ["SUPPORTED_EXTENSIONS", "read_recording", "file_format"]

#: File endings that :func:`read_recording` accepts, mapped to the reader's format name.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".fif": "fif",
    ".fif.gz": "fif",
    ".edf": "edf",
    ".bdf": "bdf",
    ".vhdr": "brainvision",
    ".xdf": "xdf",
    ".xdfz": "xdf",
}


def file_format(path: str | Path) -> str:
    """Return the format name for ``path``'s extension (case-insensitive).

    Raises:
        RecordingError: The extension is not one of :data:`SUPPORTED_EXTENSIONS`.
    """
    name = Path(path).name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return SUPPORTED_EXTENSIONS[ext]
    raise RecordingError(
        f"{path}: unsupported file extension; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
    )


def read_recording(path: str | Path, *, stream: str | int | None = None) -> Recording:
    """Read any supported file into a :class:`~bfm_stim.recording.Recording`.

    Args:
        path: File to read.
        stream: XDF only: stream name or index (position in the file); ``None`` picks the numeric
            stream with the most channels.

    Raises:
        RecordingError: The file is missing, has an unsupported extension, or cannot be parsed.
    """
    p = Path(path)
    fmt = file_format(p)
    if stream is not None and fmt != "xdf":
        raise RecordingError(f"{p}: stream={stream!r} only applies to XDF files, not {fmt}")
    if not p.exists():
        raise RecordingError(f"{p}: file not found")
    if not p.is_file():
        raise RecordingError(f"{p}: not a regular file")
    if fmt == "xdf":
        from bfm_stim.io.xdf import read_xdf

        return read_xdf(p, stream=stream)
    from bfm_stim.io.mne_io import read_mne

    return read_mne(p, fmt)


def _write_fif(recording: Recording, path: str | Path, *, overwrite: bool = False) -> Path:
    from bfm_stim.io.mne_io import write_fif

    return write_fif(recording, path, overwrite=overwrite)


def _to_mne(recording: Recording) -> Any:
    from bfm_stim.io.mne_io import to_mne

    return to_mne(recording)


def _from_mne(raw: Any) -> Recording:
    from bfm_stim.io.mne_io import from_mne

    return from_mne(raw)


_recording_io.install(_recording_io.RecordingIO(read=read_recording, write_fif=_write_fif, to_mne=_to_mne,
                                                from_mne=_from_mne))
