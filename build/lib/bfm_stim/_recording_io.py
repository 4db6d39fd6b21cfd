"""The file backend behind :class:`~bfm_stim.recording.Recording`'s I/O methods.

:mod:`bfm_stim.recording` is the record and imports no file format. :mod:`bfm_stim.io` implements the
formats on top of it (EDF/BDF/FIF/BrainVision through MNE, XDF through pyxdf) and installs them here
when ``bfm_stim`` is imported, so imports go one way (``bfm_stim.io`` -> ``bfm_stim.recording`` ->
this module) while ``Recording.read(path)`` and ``recording.write_fif(path)`` keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bfm_stim.exceptions import RecordingError

__all__ = ["RecordingIO", "install", "backend"]


@dataclass(frozen=True)
class RecordingIO:
    """The file operations a :class:`~bfm_stim.recording.Recording` delegates to.

    Attributes:
        read: ``(path, *, stream) -> Recording``.
        write_fif: ``(recording, path, *, overwrite) -> Path`` of the written FIF file.
        to_mne: ``recording -> mne.io.RawArray``.
        from_mne: ``mne Raw -> Recording``.
    """

    read: Callable[..., Any]
    write_fif: Callable[..., Any]
    to_mne: Callable[[Any], Any]
    from_mne: Callable[[Any], Any]


_installed: RecordingIO | None = None


def install(io: RecordingIO) -> None:
    """Make ``io`` the backend of every recording's file methods (:mod:`bfm_stim.io` calls it)."""
    global _installed
    if not isinstance(io, RecordingIO):
        raise TypeError(f"install() takes a RecordingIO, got {type(io).__name__}")
    _installed = io


def backend() -> RecordingIO:
    """The installed backend.

    Raises:
        RecordingError: None is installed (``bfm_stim.io`` was never imported; importing ``bfm_stim``
            imports it).
    """
    if _installed is None:
        raise RecordingError("no recording file backend is installed; import bfm_stim.io")
    return _installed
