"""Sanity checks on doctored copies of the shared real recordings: each check finds what was done."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from bfm_stim.exceptions import RecordingError, ValidationError
from bfm_stim.recording import Recording
from bfm_stim.sanity import (Finding, SanityReport, apply_scale, check_recording, check_signals, neural_channels,
                             non_neural_reason)


def _with(rec: Recording, **changes) -> Recording:
    fields = dict(data=rec.data, fs=rec.fs, ch_names=rec.ch_names, ch_types=rec.ch_types, units=rec.units,
                  positions=rec.positions, events=rec.events, meta=rec.meta)
    fields.update(changes)
    return Recording(**fields)


@pytest.fixture
def vhdr(recordings_dir) -> Recording:
    """32-channel scalp EEG at 1 kHz (26 EEG, 6 misc), 7.9 s."""
    return Recording.read(recordings_dir / "test.vhdr")


@pytest.fixture
def bdf(recordings_dir) -> Recording:
    """3 EEG channels and a Status channel at 500 Hz, 10 s."""
    return Recording.read(recordings_dir / "test_bdf_stim_channel.bdf")


def _codes(report: SanityReport, severity: str | None = None) -> list[str]:
    return [f.code for f in report.findings if severity is None or f.severity == severity]


def test_shared_files_pass_with_notes(vhdr):
    report = check_recording(vhdr)
    assert report.ok and not report.warnings
    assert set(report.excluded) == {"CP5", "CP6", "HL", "HR", "Vb", "ReRef"}  # the misc channels
    assert "no_positions" in _codes(report, "info")
    assert neural_channels(vhdr, report=report).n_channels == 26


def test_volts_read_as_microvolts_is_an_error_with_the_factor(vhdr):
    eeg = [i for i, t in enumerate(vhdr.ch_types) if t == "eeg"]
    data = vhdr.data.copy()
    data[eeg] *= 1e6  # a file stored in V, read as µV: std of tens of volts, as in the issue
    report = check_recording(_with(vhdr, data=data))
    (err,) = report.errors
    assert err.code == "scale" and err.channel is None
    assert report.suggested_scale == 1e-6
    assert "--scale 1e-06" in err.message and "10 mV" in err.message and " V " in err.message
    with pytest.raises(RecordingError, match=r"--scale 1e-06"):
        report.raise_if_errors()
    fixed = apply_scale(_with(vhdr, data=data), 1e-6)
    assert check_recording(fixed).ok and fixed.meta["scale"] == 1e-6
    np.testing.assert_allclose(fixed.data[eeg], vhdr.data[eeg], rtol=1e-5)
    with pytest.raises(ValidationError, match="scale"):
        apply_scale(vhdr, 0.0)


def test_one_huge_channel_is_a_warning_not_a_unit_error(vhdr):
    data = vhdr.data.copy()
    data[3] *= 2000.0  # ~60 mV: a bad electrode
    report = check_recording(_with(vhdr, data=data))
    assert report.ok
    (w,) = [f for f in report.warnings if f.code == "amplitude"]
    assert w.channel == vhdr.ch_names[3] and w.value > 10_000


def test_flat_channel_is_left_out(bdf):
    data = bdf.data.copy()
    data[1] = data[1, 0]
    report = check_recording(_with(bdf, data=data))
    (flat,) = [f for f in report.warnings if f.code == "flat"]
    assert flat.channel == "C4" and "left out" in flat.message
    assert neural_channels(_with(bdf, data=data), report=report).ch_names == ("C3", "Cz")


def test_clipped_channel(vhdr):
    data = vhdr.data.copy()
    lo, hi = np.percentile(data[0], [3, 97])
    data[0] = np.clip(data[0], lo, hi)
    report = check_recording(_with(vhdr, data=data))
    (clip,) = [f for f in report.warnings if f.code == "clipped"]
    pinned = 100 * np.mean((data[0] <= lo) | (data[0] >= hi))  # >= 6 %: ties at the percentiles
    assert clip.channel == "FP1" and clip.value == pytest.approx(pinned, abs=0.01)


def test_clinical_edf_saturated_and_non_neural_channels(recordings_dir):
    rec = Recording.read(recordings_dir / "test_edf_stim_channel.edf")
    report = check_recording(rec)
    assert report.ok
    assert {f.channel for f in report.warnings if f.code == "clipped"} >= {"Cz", "T6"}
    assert {"VEOG_I", "VEOG_II", "ECG1", "ECG2", "DIG DTRIG"} <= set(report.excluded)
    assert set(neural_channels(rec, report=report).ch_types) == {"eeg"}


@pytest.mark.parametrize(("name", "kind"), [("ACC_X", "movement"), ("Grip force", "force"), ("EMG_R", "EMG"),
                                            ("HEOG", "EOG"), ("EKG", "ECG"), ("TRIG", "trigger")])
def test_non_neural_channel_by_name_although_typed_eeg(bdf, name, kind):
    rec = _with(bdf, ch_names=["C3", name, "Cz", "Status"])
    report = check_recording(rec)
    (w,) = [f for f in report.findings if f.channel == name]
    assert w.code == "non_neural" and w.severity == "warning" and kind in w.value
    assert "typed 'eeg'" in w.message and "channels file" in w.message
    assert name not in neural_channels(rec, report=report).ch_names


def test_names_that_are_neural():
    for name in ("ECoG1", "STN_L1", "LFP01-02", "Cz", "SMA", "GPi3"):
        assert non_neural_reason(name, "eeg") is None, name
    assert non_neural_reason("x", "misc") == "misc" and non_neural_reason("Acc", "misc") == "misc"


def test_movement_channel_typed_misc_is_a_note(bdf):
    rec = _with(bdf, ch_types=["eeg", "misc", "eeg", "stim"], ch_names=["C3", "Accel", "Cz", "Status"])
    report = check_recording(rec)
    assert [f.severity for f in report.findings if f.channel == "Accel"] == ["info"]


@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_line_noise_names_its_frequency(vhdr, line_hz):
    eeg = [i for i, t in enumerate(vhdr.ch_types) if t == "eeg"]
    data = vhdr.data.copy()
    data[eeg] += 20.0 * np.sin(2 * np.pi * line_hz * vhdr.times)[None].astype(np.float32)
    report = check_recording(_with(vhdr, data=data))
    (w,) = [f for f in report.warnings if f.code == "line_noise"]
    assert w.value["line_hz"] == line_hz and w.value["median_db"] > 20
    assert f"{line_hz:g} Hz line noise" in w.message and "notch" in w.message
    assert "line_noise" not in _codes(check_recording(vhdr))


def test_too_short_for_the_requested_use(bdf):
    report = check_recording(bdf, min_duration_s=30.0)
    (err,) = report.errors
    assert err.code == "too_short" and err.value == pytest.approx(10.0) and "30.0 s" in err.message
    assert check_recording(bdf, min_duration_s=5.0).ok


def test_nan_gaps_counted_in_arrays_and_refused_by_the_reader(bdf, tmp_path):
    data = bdf.data.astype(np.float64)
    data[0, 1000:1250] = np.nan   # 0.5 s
    data[0, 3000:3010] = np.nan
    data[2, 10] = np.inf
    report = check_signals(data, bdf.fs, bdf.ch_names, bdf.ch_types)
    gaps = {f.channel: f.value for f in report.errors if f.code == "nan_gaps"}
    assert gaps["C3"] == {"n_gaps": 2, "longest_s": pytest.approx(0.5), "n_samples": 260}
    assert gaps["Cz"]["n_gaps"] == 1 and "C4" not in gaps
    raw = mne.io.RawArray(data[:3] * 1e-6, mne.create_info(list(bdf.ch_names[:3]), bdf.fs, "eeg"), verbose="error")
    path = tmp_path / "gaps_raw.fif"
    raw.save(path, verbose="error")
    with pytest.raises(RecordingError, match=r"gaps_raw.fif.*C3: 2 gap\(s\).*longest 0.5 s"):
        Recording.read(path)


def test_no_neural_channel_is_an_error(bdf):
    rec = _with(bdf, ch_types=["misc", "misc", "misc", "stim"])
    report = check_recording(rec)
    assert _codes(report, "error") == ["no_neural"] and "--channels-file" in report.errors[0].message
    with pytest.raises(RecordingError, match="no neural channel"):
        neural_channels(rec)


def test_report_json_summary_and_bads(bdf):
    rec = _with(bdf, meta={**bdf.meta, "bads": ["C4"]})
    report = check_recording(rec)
    blob = json.loads(report.to_json())
    assert blob["n_errors"] == 0 and len(blob["findings"]) == len(report.findings)
    assert {"code", "severity", "channel", "value", "plausible", "advice", "message"} <= set(blob["findings"][0])
    assert report.summary().splitlines()[0].startswith(str(bdf.meta["source"]))
    assert "C4" not in neural_channels(rec).ch_names


def test_positions_in_mm_stored_as_m(bdf):
    pos = np.array([[30.0, 10.0, 70.0], [-30.0, 10.0, 70.0], [0.0, 0.0, 90.0], [np.nan] * 3])
    report = check_recording(_with(bdf, positions=pos))
    assert "position_units" in _codes(report, "warning") and "no_positions" not in _codes(report)


def test_finding_validates_severity():
    with pytest.raises(ValidationError, match="severity"):
        Finding("x", "fatal", None, 1, "", "")
