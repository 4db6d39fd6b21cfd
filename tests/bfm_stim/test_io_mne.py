"""MNE-backed readers on the shared real files, and clear errors for bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pytest

from bfm_stim.exceptions import RecordingError
from bfm_stim.io import SUPPORTED_EXTENSIONS
from bfm_stim.recording import Recording

DATA = (Path(__file__).resolve().parents[2] / "../shared/data/recordings").resolve()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared test recordings not found at {DATA}")

# file, MNE reader, options bfm_stim uses for it
FILES = [
    ("test.vhdr", mne.io.read_raw_brainvision, {}),
    ("test_edf_stim_channel.edf", mne.io.read_raw_edf, {"infer_types": True, "stim_channel": "DIG DTRIG"}),
    ("test_bdf_stim_channel.bdf", mne.io.read_raw_bdf, {"infer_types": True, "stim_channel": "Status"}),
]


@needs_data
@pytest.mark.parametrize(("name", "reader", "opts"), FILES)
def test_matches_mne(name: str, reader, opts: dict) -> None:
    raw = reader(DATA / name, preload=True, verbose="error", **opts)
    rec = Recording.read(DATA / name)
    assert rec.n_channels == raw.info["nchan"] and rec.fs == raw.info["sfreq"]
    assert rec.n_samples == raw.n_times and rec.duration_s == pytest.approx(raw.n_times / raw.info["sfreq"])
    assert list(rec.ch_names) == raw.ch_names and list(rec.ch_types) == raw.get_channel_types()
    volts = [i for i, ch in enumerate(raw.info["chs"]) if ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V
             and raw.get_channel_types()[i] != "stim"]
    assert volts and all(rec.units[i] == "µV" for i in volts)
    np.testing.assert_allclose(rec.data[volts], raw.get_data(picks=volts) * 1e6, rtol=1e-5, atol=1e-3)
    others = [i for i in range(rec.n_channels) if i not in volts]
    np.testing.assert_allclose(rec.data[others], raw.get_data(picks=others), rtol=1e-6)
    assert len(rec.events) == len(raw.annotations)
    assert rec.meta["source"] == str(DATA / name)


@needs_data
def test_known_contents() -> None:
    bv = Recording.read(DATA / "test.vhdr")
    assert (bv.n_channels, bv.fs, bv.n_samples) == (32, 1000.0, 7900)
    assert bv.events[0].description == "Stimulus/S253" and bv.events[0].onset_s == pytest.approx(0.486)
    assert bv.units[-1] == "°C"  # ReRef is a temperature channel in this file; kept as-is
    edf = Recording.read(DATA / "test_edf_stim_channel.edf")
    assert edf.fs == 128.0 and edf.ch_types[-1] == "stim" and set(np.unique(edf.data[-1])) == {0.0, 100.0}
    assert {"eog", "ecg"} <= set(edf.ch_types)
    bdf = Recording.read(DATA / "test_bdf_stim_channel.bdf")
    assert bdf.ch_names[-1] == "Status" and bdf.ch_types[-1] == "stim" and bdf.units[-1] == ""
    assert np.allclose(bdf.data[-1], np.round(bdf.data[-1])) and bdf.data[-1].max() > 0
    assert np.isnan(bdf.positions).all()


@needs_data
def test_written_fif_of_real_file_round_trips(tmp_path) -> None:
    rec = Recording.read(DATA / "test.vhdr")
    back = Recording.read(rec.write_fif(tmp_path / "bv_raw.fif.gz"))
    np.testing.assert_array_equal(back.data, rec.data)
    assert back.events == rec.events and back.units == rec.units and back.ch_types == rec.ch_types


def test_missing_and_unsupported(tmp_path) -> None:
    with pytest.raises(RecordingError, match="not found") as info:
        Recording.read(tmp_path / "nothing.edf")
    assert "nothing.edf" in str(info.value)
    (tmp_path / "data.csv").write_text("1,2,3\n")
    with pytest.raises(RecordingError, match="unsupported") as info:
        Recording.read(tmp_path / "data.csv")
    assert all(ext in str(info.value) for ext in SUPPORTED_EXTENSIONS)
    with pytest.raises(RecordingError, match="stream"):
        Recording.read(tmp_path / "x.edf", stream=0)


@needs_data
@pytest.mark.parametrize(("name", "keep"), [("test_edf_stim_channel.edf", 0.5), ("test_edf_stim_channel.edf", 0.02),
                                           ("test_bdf_stim_channel.bdf", 0.5), ("test_bdf_stim_channel.bdf", 0.0)])
def test_truncated_edf_bdf(tmp_path, name: str, keep: float) -> None:
    blob = (DATA / name).read_bytes()
    bad = tmp_path / f"cut{Path(name).suffix}"
    bad.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(RecordingError) as info:
        Recording.read(bad)
    assert str(bad) in str(info.value)


@needs_data
def test_truncated_brainvision_and_fif(tmp_path) -> None:
    for part in ("test.vhdr", "test.vmrk"):
        shutil.copy(DATA / part, tmp_path / part)
    (tmp_path / "test.eeg").write_bytes((DATA / "test.eeg").read_bytes()[:1000])
    with pytest.raises(RecordingError, match="truncated") as info:
        Recording.read(tmp_path / "test.vhdr")
    assert "test.eeg" in str(info.value)
    good = Recording.read(DATA / "test_bdf_stim_channel.bdf").write_fif(tmp_path / "ok_raw.fif")
    cut = tmp_path / "cut_raw.fif"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(RecordingError, match="cut_raw.fif"):
        Recording.read(cut)
    (tmp_path / "junk.edf").write_bytes(b"not an edf file at all" * 20)
    with pytest.raises(RecordingError, match="junk.edf"):
        Recording.read(tmp_path / "junk.edf")
