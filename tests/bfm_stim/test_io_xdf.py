"""XDF reader on the shared real files: stream choice, markers, clock resets, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyxdf

from bfm_stim.exceptions import RecordingError
from bfm_stim.io.xdf import list_streams
from bfm_stim.recording import Recording

DATA = (Path(__file__).resolve().parents[2] / "../shared/data/recordings").resolve()
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared test recordings not found at {DATA}")


def test_minimal_matches_pyxdf() -> None:
    streams, _ = pyxdf.load_xdf(str(DATA / "minimal.xdf"))
    eeg = next(s for s in streams if s["info"]["channel_format"][0] != "string")
    markers = next(s for s in streams if s["info"]["channel_format"][0] == "string")
    rec = Recording.read(DATA / "minimal.xdf")
    assert rec.n_channels == int(eeg["info"]["channel_count"][0]) == 3
    assert rec.fs == float(eeg["info"]["nominal_srate"][0]) == 10.0
    assert rec.n_samples == len(eeg["time_stamps"]) == 9
    np.testing.assert_array_equal(rec.data, eeg["time_series"].T.astype(np.float32))
    assert rec.ch_types == ("eeg",) * 3 and rec.units == ("µV",) * 3  # LSL EEG convention
    assert [e.description for e in rec.events] == [m[0] for m in markers["time_series"]]
    expected = markers["time_stamps"] - eeg["time_stamps"][0]
    np.testing.assert_allclose([e.onset_s for e in rec.events], expected, atol=1e-9)
    assert rec.meta["stream_name"] == "SendDataC" and rec.meta["xdf_complete"]


def test_stream_selection() -> None:
    info = list_streams(DATA / "minimal.xdf")
    assert [s["name"] for s in info] == ["SendDataC", "SendDataString"]
    assert Recording.read(DATA / "minimal.xdf", stream="SendDataC").n_channels == 3
    assert Recording.read(DATA / "minimal.xdf", stream=0).meta["stream_index"] == 0
    with pytest.raises(RecordingError, match="no stream named 'nope'.*SendDataC"):
        Recording.read(DATA / "minimal.xdf", stream="nope")
    with pytest.raises(RecordingError, match="markers"):
        Recording.read(DATA / "minimal.xdf", stream="SendDataString")
    with pytest.raises(RecordingError, match="out of range"):
        Recording.read(DATA / "minimal.xdf", stream=7)


def test_clock_resets() -> None:
    streams, _ = pyxdf.load_xdf(str(DATA / "clock_resets.xdf"))
    bio = next(s for s in streams if s["info"]["name"][0] == "BioSemi")
    n_markers = len(next(s for s in streams if s["info"]["name"][0] == "MyMarkerStream")["time_stamps"])
    rec = Recording.read(DATA / "clock_resets.xdf")
    assert rec.meta["stream_name"] == "BioSemi"  # the numeric stream, not the markers
    assert rec.n_channels == 8 and rec.fs == 100.0 and rec.n_samples == len(bio["time_stamps"])
    np.testing.assert_array_equal(rec.data, bio["time_series"].T)
    segments = bio["info"]["segments"]
    assert len(segments) == 2 and len(rec.meta["xdf_segments"]) == 2
    boundaries = [e for e in rec.events if e.description == "boundary"]
    assert [b.onset_s for b in boundaries] == [segments[1][0] / rec.fs]
    markers = [e for e in rec.events if e.description != "boundary"]
    assert len(markers) + rec.meta["xdf_markers_outside"] == n_markers
    onsets = [e.onset_s for e in markers]
    assert onsets == sorted(onsets) and 0 <= onsets[0] and onsets[-1] <= rec.duration_s


def test_bad_xdf(tmp_path) -> None:
    empty = tmp_path / "empty.xdf"
    empty.write_bytes(b"")
    with pytest.raises(RecordingError, match="empty.xdf"):
        Recording.read(empty)
    blob = (DATA / "minimal.xdf").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(blob[:100])
    with pytest.raises(RecordingError, match="cut.xdf"):
        Recording.read(cut)
    half = tmp_path / "half.xdf"
    half.write_bytes(blob[: len(blob) // 2])
    rec = Recording.read(half)  # pyxdf recovers what was written before the cut
    assert rec.meta["xdf_complete"] is False and rec.n_samples < 9
