"""Recording's file methods run through the backend bfm_stim.io installs (recording never imports io)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bfm_stim import _recording_io
from bfm_stim.exceptions import RecordingError
from bfm_stim.recording import Recording


def test_a_fresh_process_reads_with_only_the_record_imported(tmp_path):
    rec = Recording(np.arange(600, dtype=np.float32).reshape(2, 300), 100.0, ("a", "b"), ("eeg", "eeg"))
    path = rec.write_fif(tmp_path / "r_raw.fif")
    code = ("import json, sys\n"
            "from bfm_stim.recording import Recording\n"
            "before = 'mne' in sys.modules\n"
            f"r = Recording.read({str(path)!r})\n"
            "print(json.dumps([before, r.data.shape, r.fs, list(r.ch_names), float(r.data[1, -1])]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    before, shape, fs, names, last = json.loads(out)
    assert not before, "importing bfm_stim.recording imported MNE: readers must load only when a file is read"
    assert shape == [2, 300] and fs == 100.0 and names == ["a", "b"] and last == pytest.approx(599.0, rel=1e-5)


def test_without_a_backend_the_methods_say_what_to_import(monkeypatch):
    monkeypatch.setattr(_recording_io, "_installed", None)
    with pytest.raises(RecordingError, match="import bfm_stim.io"):
        Recording.read("x.fif")
    with pytest.raises(TypeError, match="RecordingIO"):
        _recording_io.install(object())  # type: ignore[arg-type]
