"""recording.fif from a session directory: annotations where the log says, gaps and NaN marked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mne
import numpy as np
import pytest

from bfm_stim.exceptions import RecordingError
from loops.session.fif import FIF_NAME, Timeline, write_session_fif
from loops.session.store import SessionStore

from ._fake_session import T0, make_session, tear


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, mne.io.BaseRaw]:
    path = tmp_path_factory.mktemp("fif") / "sess"
    truth = make_session(path, n_trials=8, seed=3)
    fif = write_session_fif(path)
    assert fif == path / FIF_NAME
    raw = mne.io.read_raw_fif(fif, preload=True, verbose="error")
    return path, truth, raw


def _ann(raw: mne.io.BaseRaw, prefix: str) -> list[tuple[float, float, str]]:
    return [(float(a["onset"]), float(a["duration"]), str(a["description"])) for a in raw.annotations
            if str(a["description"]).startswith(prefix)]


def test_opens_in_mne_with_channels_units_and_rate(session) -> None:
    path, truth, raw = session
    assert raw.info["sfreq"] == truth.fs
    assert raw.ch_names == truth.ch_names
    assert raw.get_channel_types() == truth.ch_types  # "DBS"/"ECOG" of the LSL spec mapped to MNE's types
    data = raw.get_data()
    assert np.isfinite(data).all()
    received = np.fromfile(path / "stream" / "data.f32", np.float32).reshape(-1, truth.n_channels).T
    # the first second is the first received second, in volts (µV on the wire)
    first = received[:, : int(truth.fs)]
    np.testing.assert_allclose(data[:, : int(truth.fs)], first.astype(np.float64) * 1e-6, rtol=1e-5, atol=1e-12)


def test_stimulation_annotations_at_applied_at_within_one_sample(session) -> None:
    _, truth, raw = session
    stims = _ann(raw, "stim ")
    assert len(stims) == len(truth.applied)
    by_trial = {int(re.search(r"trial=(\d+)", d).group(1)): (o, du, d) for o, du, d in stims}
    assert set(by_trial) == set(truth.applied)
    for k, applied in truth.applied.items():
        onset, dur, desc = by_trial[k]
        if truth.resume_gap and applied > truth.resume_gap[1]:
            continue  # after the compressed resume gap; checked below
        expected = applied - T0  # the 2 s dropout is filled with zeros, so time stays linear across it
        assert abs(onset - expected) <= 1.0 / truth.fs, (k, onset, expected)
        stim = json.loads(desc.split("stimulus=", 1)[1])
        assert stim == truth.stimuli[k]
        assert dur == pytest.approx(stim["duration_s"])


def test_dropout_gap_is_bad_acq_skip_and_filled_with_zeros(session) -> None:
    _, truth, raw = session
    skips = _ann(raw, "BAD_ACQ_SKIP")
    a, b = truth.dropout[0] - T0, truth.dropout[1] - T0
    hit = [(o, d) for o, d, _ in skips if abs(o - a) < 2.0 / truth.fs]
    assert hit, (skips, a)
    onset, dur = hit[0]
    assert onset <= a + 1.0 / truth.fs and onset + dur >= b - 1.0 / truth.fs  # covers the whole gap
    i0, i1 = int(round(onset * truth.fs)), int(round((onset + dur) * truth.fs))
    assert not raw.get_data(start=i0, stop=i1).any()
    kept = raw.get_data(reject_by_annotation="omit")
    assert kept.shape[1] < raw.n_times


def test_long_resume_gap_is_compressed_and_marked(session) -> None:
    _, truth, raw = session
    assert any("compressed" in d for _, _, d in _ann(raw, "gap "))
    assert raw.times[-1] < truth.resume_gap[1] - T0  # 90 s shown as 60 s
    desc = json.loads(raw.info["description"])["bfm_stim"]["meta"]
    assert desc["lsl_t0"] == pytest.approx(T0, abs=1e-3)
    assert any(abs(g[2] - 90.0) < 0.01 for g in desc["gaps"])
    # an event after the gap lands where the received samples put it
    k = max(truth.applied)
    onset = [o for o, _, d in _ann(raw, "stim ") if f"trial={k} " in d][0]
    tl = Timeline(np.fromfile(Path(raw.filenames[0]).parent / "stream" / "times.f64"), truth.fs)
    assert abs(onset - tl.sample(truth.applied[k]) / truth.fs) < 0.01 / truth.fs  # FIF onsets are float32


def test_nonfinite_samples_zeroed_and_marked(session) -> None:
    _, truth, raw = session
    bads = _ann(raw, "BAD_nonfinite")
    assert len(bads) == 1
    onset, dur, _ = bads[0]
    a, b = truth.nonfinite
    assert abs(onset - (a - T0)) <= 2.0 / truth.fs
    assert dur == pytest.approx(b - a, abs=2.0 / truth.fs)
    i0, i1 = int(round(onset * truth.fs)), int(round((onset + dur) * truth.fs))
    assert not raw.get_data(picks=[0], start=i0, stop=i1).any()


def test_commands_rejections_stops_faults_interruptions_annotated(session) -> None:
    _, truth, raw = session
    descs = [a["description"] for a in raw.annotations]
    assert sum(d.startswith("sent ") for d in descs) == len(truth.status)  # every trial was sent
    rejected = [d for d in descs if d.startswith("rejected ")]
    assert len(rejected) == 1 and "reason=unsafe" in rejected[0] and "trial=2" in rejected[0]
    assert any(d.startswith("stop ") and "reason=dropout" in d for d in descs)
    assert any(d.startswith("fault ") and "kind=dropout" in d for d in descs)
    assert any(d.startswith("interrupted ") and "trial=4" in d for d in descs)
    assert any(d.startswith("recovered") for d in descs)


def test_torn_directory_still_builds(tmp_path: Path) -> None:
    path = tmp_path / "torn"
    truth = make_session(path, n_trials=3, seed=5, resume=False, continuous=False, interrupt=None, nonfinite=None)
    tear(path)
    raw = mne.io.read_raw_fif(write_session_fif(path), verbose="error")
    assert raw.n_times == truth.n_samples - 1  # the torn last row is dropped
    assert len(_ann(raw, "stim ")) == len(truth.applied)


def test_zero_samples_is_a_clear_error(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "empty", create=True)
    store.write_meta({"stream": {"source_id": "x", "name": "x", "fs": 500.0, "ch_names": ["a", "b"],
                                 "ch_types": ["EEG", "EEG"], "units": ["microvolts"] * 2, "n_channels": 2}})
    store.open_signal(2)
    store.close()
    with pytest.raises(RecordingError, match="no samples"):
        write_session_fif(tmp_path / "empty")
    (tmp_path / "nometa").mkdir()
    with pytest.raises(RecordingError, match="not a session directory"):
        write_session_fif(tmp_path / "nometa")


def test_bad_stream_spec_names_the_field(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "bad", create=True)
    store.write_meta({"stream": {"fs": 0, "ch_names": ["a"], "n_channels": 1}})
    store.close()
    with pytest.raises(RecordingError, match=r"stream\.fs=0"):
        write_session_fif(tmp_path / "bad")


def test_faster_than_real_time_stream_maps_lsl_time_by_speed(tmp_path: Path) -> None:
    """A simulator served at speed 2: LSL time runs at half the signal's time; the FIF keeps signal time."""
    path = tmp_path / "fast"
    truth = make_session(path, n_trials=4, seed=11, speed=2.0, resume=False, continuous=False, nonfinite=None,
                         reject=None, interrupt=2)
    raw = mne.io.read_raw_fif(write_session_fif(path), verbose="error")
    assert raw.n_times == truth.n_samples + int(round(2.0 * truth.fs * 2.0))  # 2 s (LSL) dropout: 4 s of zeros
    for o, du, d in _ann(raw, "stim "):
        k = int(re.search(r"trial=(\d+)", d).group(1))
        assert abs(o - (truth.applied[k] - T0) * 2.0) <= 1.0 / truth.fs or truth.applied[k] > truth.dropout[0]
        assert du == pytest.approx(truth.stimuli[k]["duration_s"])  # signal seconds
    rest = _ann(raw, "calibration rest")[0]
    assert rest[0] == 0.0 and rest[1] == pytest.approx(4.0, abs=2.0 / truth.fs)  # rest_s of signal
    skip = _ann(raw, "BAD_ACQ_SKIP")[0]
    assert skip[1] == pytest.approx(4.0, abs=2.0 / truth.fs)
