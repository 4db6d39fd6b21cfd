"""Recording: construction checks, selection, preprocessing and the FIF round trip."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from bfm_stim.exceptions import RecordingError, ValidationError
from bfm_stim.recording import Event, Recording

FS = 1000.0


def _stim(amplitude_ma: float = 2.0, frequency_hz: float = 130.0, duration_s: float = 0.5) -> dict:
    return {"kind": "electrical", "contact": "c1", "amplitude_ma": amplitude_ma, "frequency_hz": frequency_hz,
            "pulse_width_us": 60.0, "duration_s": duration_s, "modality": None, "level": 0.0, "biphasic": True}


def _rec(n: int = 3000, events: tuple[Event, ...] = ()) -> Recording:
    t = np.arange(n) / FS
    rng = np.random.default_rng(0)
    data = np.vstack([
        10 * np.sin(2 * np.pi * 20 * t) + rng.normal(0, 1, n),
        5 * np.sin(2 * np.pi * 7 * t),
        np.where((t > 0.5) & (t < 0.502), 5.0, 0.0),
    ])
    pos = np.array([[0.01, 0.02, 0.03], [np.nan] * 3, [np.nan] * 3])
    return Recording(data, FS, ["L0", "L1", "TRIG"], ["dbs", "seeg", "stim"], positions=pos, events=events,
                     meta={"patient": "p1"})


def test_properties_and_defaults() -> None:
    rec = _rec()
    assert rec.data.dtype == np.float32 and rec.data.shape == (3, 3000)
    assert (rec.n_channels, rec.n_samples, rec.duration_s) == (3, 3000, 3.0)
    assert rec.times[1] == pytest.approx(1e-3) and len(rec.times) == 3000
    assert rec.units == ("µV", "µV", "")
    bare = Recording(np.zeros((2, 10)), 100.0, ["a", "b"])
    assert bare.ch_types == ("misc", "misc") and bare.units == ("", "")
    assert np.isnan(bare.positions).all() and bare.positions.shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data": np.full((2, 5), np.nan)}, "data"),
        ({"data": np.zeros(5)}, "data.shape"),
        ({"ch_names": ["a"]}, "len(ch_names)"),
        ({"ch_names": ["a", "a"]}, "ch_names"),
        ({"fs": 0.0}, "fs"),
        ({"fs": float("nan")}, "fs"),
        ({"ch_types": ["eeg"]}, "len(ch_types)"),
        ({"positions": np.zeros((2, 2))}, "positions.shape"),
        ({"events": [Event(5.0)]}, "events.onset_s"),
    ],
)
def test_constructor_rejects_bad_input(kwargs: dict, field: str) -> None:
    args = {"data": np.zeros((2, 5)), "fs": 100.0, "ch_names": ["a", "b"]} | kwargs
    with pytest.raises(ValidationError) as info:
        Recording(**args)
    assert info.value.field == field
    assert "expected" in str(info.value)


def test_nan_message_names_rows() -> None:
    data = np.zeros((3, 5))
    data[2, 1] = np.nan
    with pytest.raises(ValidationError, match=r"rows \[2\]"):
        Recording(data, 100.0, ["a", "b", "c"])


def test_event_checks_and_annotation_round_trip() -> None:
    with pytest.raises(ValidationError):
        Event(0.0, -1.0)
    with pytest.raises(ValidationError):
        Event(float("inf"))
    with pytest.raises(ValidationError):
        Event(0.0, stimulus={"x": object()})
    ev = Event(1.25, 0.5, "stim on", _stim())
    back = Event.from_annotation(1.25, 0.5, ev.to_annotation())
    assert back == ev and hash(back) == hash(ev) and ev.is_stimulation
    assert Event.from_annotation(0, 0, "plain text").stimulus is None
    assert not Event(0.0, 1.0, "", {"kind": "off"}).is_stimulation

    class Stim:  # anything with to_dict(), like bfm_stim.space.Stimulus
        def to_dict(self) -> dict:
            return {"kind": "off", "duration_s": 1.0}

    assert Event(0.0, stimulus=Stim()).stimulus == {"kind": "off", "duration_s": 1.0}


def test_pick_and_crop() -> None:
    rec = _rec(events=(Event(0.5, 0.1, "a"), Event(2.5, 0.0, "b")))
    assert rec.pick("stim").ch_names == ("TRIG",)
    picked = rec.pick(["L1", "dbs"])
    assert picked.ch_names == ("L1", "L0") and picked.ch_types == ("seeg", "dbs")
    np.testing.assert_array_equal(picked.data[1], rec.data[0])
    np.testing.assert_array_equal(picked.positions[1], [0.01, 0.02, 0.03])
    with pytest.raises(ValidationError, match="nope"):
        rec.pick("nope")
    cropped = rec.crop(0.4, 1.4)
    assert cropped.n_samples == 1000
    np.testing.assert_array_equal(cropped.data, rec.data[:, 400:1400])
    assert [(e.description, round(e.onset_s, 9)) for e in cropped.events] == [("a", 0.1)]
    with pytest.raises(ValidationError):
        rec.crop(2.0, 1.0)


def _band_amplitude(x: np.ndarray, fs: float, f: float) -> float:
    spec = np.abs(np.fft.rfft(x)) * 2 / len(x)
    freqs = np.fft.rfftfreq(len(x), 1 / fs)
    return float(spec[np.argmin(np.abs(freqs - f))])


def test_filter_attenuates_out_of_band_and_keeps_in_band() -> None:
    rec = _rec()
    out = rec.filter(13.0, 30.0)
    # 20 Hz (ch0) passes at full amplitude, 7 Hz (ch1) is strongly attenuated, stim untouched.
    assert _band_amplitude(out.data[0], FS, 20) == pytest.approx(10.0, rel=0.05)
    assert _band_amplitude(out.data[1], FS, 7) < 0.05 * 5.0
    np.testing.assert_array_equal(out.data[2], rec.data[2])
    # zero phase: the filtered 20 Hz line stays aligned with the original
    core = slice(500, 2500)
    assert np.corrcoef(out.data[0, core], rec.data[0, core])[0, 1] > 0.98
    assert _band_amplitude(rec.filter(None, 10.0).data[0], FS, 20) < 0.5
    assert _band_amplitude(rec.filter(10.0, None).data[1], FS, 7) < 2.5
    with pytest.raises(ValidationError, match="h_freq"):
        rec.filter(1.0, 600.0)
    with pytest.raises(ValidationError, match="l_freq"):
        rec.filter(30.0, 13.0)


def test_notch_removes_line() -> None:
    t = np.arange(4000) / FS
    rec = Recording(np.vstack([np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 10 * t)]), FS, ["x"], ["eeg"])
    out = rec.notch([50.0, 100.0])
    assert _band_amplitude(out.data[0], FS, 50) < 0.05
    assert _band_amplitude(out.data[0], FS, 10) == pytest.approx(1.0, rel=0.03)


def test_resample_keeps_frequency_and_triggers() -> None:
    rec = _rec()
    out = rec.resample(250.0)
    assert out.fs == 250.0 and out.n_samples == 750 and out.duration_s == pytest.approx(rec.duration_s)
    spec = np.abs(np.fft.rfft(out.data[1]))
    assert np.fft.rfftfreq(out.n_samples, 1 / 250.0)[np.argmax(spec)] == pytest.approx(7.0, abs=0.34)
    assert out.data[2].max() == 5.0 and set(np.unique(out.data[2])) == {0.0, 5.0}  # 2-ms pulse survives
    odd = rec.resample(128.0)
    assert odd.fs == 128.0 and odd.n_samples == 384
    with pytest.raises(ValidationError):
        rec.resample(-1.0)


def test_blank_artifacts_and_stim_free_segments() -> None:
    stim = _stim(frequency_hz=10.0, duration_s=0.5)
    rec = _rec(events=(Event(1.0, 0.5, "stimulus", stim), Event(2.0, 0.2, "note")))
    spiky = rec.data.copy()
    pulses = [1000 + 100 * k for k in range(5)]
    for p in pulses:
        spiky[0, p : p + 2] = 1000.0
    rec = Recording(spiky, FS, rec.ch_names, rec.ch_types, events=rec.events)
    lin = rec.blank_artifacts(pre_s=0.001, post_s=0.002)
    assert np.abs(lin.data[0]).max() < 50  # every pulse blanked
    a, b = 999, 1003
    expected = np.linspace(spiky[0, a - 1], spiky[0, b + 1], b - a + 3)[1:-1]
    np.testing.assert_allclose(lin.data[0, a : b + 1], expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(lin.data[0, 1010:1090], spiky[0, 1010:1090])  # between pulses untouched
    np.testing.assert_array_equal(lin.data[2], spiky[2])  # stim channel untouched
    zero = rec.blank_artifacts(pre_s=0.0, post_s=0.0, mode="zero", per_pulse=False)
    assert np.all(zero.data[:2, 1000:1501] == 0) and zero.data[0, 999] != 0
    assert rec.stim_free_segments() == [(0.0, 1.0), (1.5, 3.0)]
    assert rec.stim_free_segments(margin_s=0.1, min_duration_s=1.0) == [(1.6, 3.0)]
    with pytest.raises(ValidationError):
        rec.blank_artifacts(mode="cubic")


def test_fif_round_trip(tmp_path) -> None:
    events = (Event(0.1234567891, 0.5, "stimulus", _stim()), Event(2.0, 0.0, "marker"),
              Event(1.5, 0.25, "", {"kind": "off", "duration_s": 0.25}))
    rec = _rec(events=events)
    rec = Recording(rec.data, rec.fs, rec.ch_names, ["dbs", "lfp_custom", "stim"], ["µV", "mV", ""],
                    rec.positions, rec.events, rec.meta)
    path = rec.write_fif(tmp_path / "session_raw.fif")
    raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
    assert raw.get_channel_types() == ["dbs", "misc", "stim"]
    np.testing.assert_allclose(raw.get_data()[0] * 1e6, rec.data[0], rtol=1e-6)
    np.testing.assert_allclose(raw.get_data()[1] * 1e3, rec.data[1], rtol=1e-6)
    assert raw.info["chs"][0]["loc"][:3].tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert len(raw.annotations) == 3 and '"amplitude_ma":2.0' in raw.annotations.description[0]
    back = Recording.read(path)
    np.testing.assert_array_equal(back.data, rec.data)
    assert back.ch_names == rec.ch_names and back.ch_types == rec.ch_types and back.units == rec.units
    assert back.events == rec.events and back.fs == rec.fs and back.meta["patient"] == "p1"
    np.testing.assert_array_equal(np.isnan(back.positions), np.isnan(rec.positions))
    # a file edited in MNE (annotations changed) still reads, from its annotations
    raw.set_annotations(raw.annotations[:1])
    raw.save(tmp_path / "edited_raw.fif", verbose="error")
    edited = Recording.read(tmp_path / "edited_raw.fif")
    assert len(edited.events) == 1 and edited.events[0].stimulus == _stim()
    assert edited.events[0].onset_s == pytest.approx(0.1234567891, abs=1e-5)


def test_mne_conversion_and_write_errors(tmp_path) -> None:
    rec = _rec()
    again = Recording.from_mne(rec.to_mne())
    np.testing.assert_array_equal(again.data, rec.data)
    with pytest.raises(RecordingError, match=r"\.fif"):
        rec.write_fif(tmp_path / "x.edf")
    rec.write_fif(tmp_path / "x_raw.fif")
    with pytest.raises(RecordingError, match="overwrite"):
        rec.write_fif(tmp_path / "x_raw.fif")
    rec.write_fif(tmp_path / "x_raw.fif", overwrite=True)
    with pytest.raises(RecordingError, match="does not exist"):
        rec.write_fif(tmp_path / "missing" / "x_raw.fif")
