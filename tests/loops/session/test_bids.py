"""BIDS iEEG export: mne-bids reads it back; events.tsv carries the iEEG electrical-stimulation columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mne
import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError
from loops.session.bids import STIM_COLUMNS, export_bids
from loops.session.fif import FIF_NAME, Timeline

from ._fake_session import T0, make_session

mne_bids = pytest.importorskip("mne_bids")
pytest.importorskip("pybv", reason="mne-bids converts FIF to BrainVision through pybv")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("bids")
    truth = make_session(base / "sess", n_trials=6, seed=8)
    vhdr = export_bids(base / "sess", base / "bids", subject="07", session="1", run=2)
    return base, truth, vhdr


def test_layout_and_read_back(exported) -> None:
    base, truth, vhdr = exported
    assert vhdr.name == "sub-07_ses-1_task-closedloop_run-2_ieeg.vhdr" and vhdr.is_file()
    assert (base / "bids" / "dataset_description.json").is_file()
    raw = mne_bids.read_raw_bids(mne_bids.get_bids_path_from_fname(vhdr), verbose="error")
    fif = mne.io.read_raw_fif(base / "sess" / FIF_NAME, preload=True, verbose="error")
    assert raw.ch_names == fif.ch_names and raw.info["sfreq"] == truth.fs
    np.testing.assert_allclose(raw.get_data(), fif.get_data(), rtol=1e-5, atol=1e-10)  # float32 µV on disk
    rows = _rows(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_events.tsv")))
    assert len(raw.annotations) == len(rows) == len(fif.annotations)
    np.testing.assert_allclose(np.sort(raw.annotations.onset - raw.first_time),
                               np.sort([float(r["onset"]) for r in rows]), atol=1.5 / truth.fs)
    channels = _rows(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_channels.tsv")))
    assert [c["type"] for c in channels] == [t.upper() for t in truth.ch_types]
    scans = _rows(next((base / "bids" / "sub-07" / "ses-1").glob("*_scans.tsv")))
    assert scans[0]["acq_time"] not in ("", "n/a")  # from the log's Unix times


def test_stimulation_columns_follow_the_ieeg_spec(exported) -> None:
    _, truth, vhdr = exported
    rows = _rows(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_events.tsv")))
    cols = list(rows[0])
    assert cols[:2] == ["onset", "duration"] and set(STIM_COLUMNS) <= set(cols)
    stims = [r for r in rows if r["trial_type"] == "electrical_stimulation"]
    timeline = Timeline(np.fromfile(exported[0] / "sess" / "stream" / "times.f64"), truth.fs)
    assert sorted(int(r["trial"]) for r in stims) == sorted(truth.applied)
    for r in stims:
        k = int(r["trial"])
        s = truth.stimuli[k]
        assert float(r["electrical_stimulation_current"]) == pytest.approx(s["amplitude_ma"] / 1000, rel=1e-6)
        assert float(r["electrical_stimulation_frequency"]) == pytest.approx(s["frequency_hz"])
        assert float(r["electrical_stimulation_pulsewidth"]) == pytest.approx(s["pulse_width_us"] * 1e-6)
        assert r["electrical_stimulation_site"] == s["contact"]
        assert r["electrical_stimulation_type"] == "biphasic"
        assert float(r["duration"]) == pytest.approx(s["duration_s"])
        assert abs(float(r["onset"]) - timeline.sample(truth.applied[k]) / truth.fs) < 1e-5
        if truth.applied[k] < truth.resume_gap[0]:  # before the (compressed) resume gap: LSL time - t0
            assert abs(float(r["onset"]) - (truth.applied[k] - T0)) <= 1.0 / truth.fs
        assert json.loads(r["stimulus"]) == s
        assert r["status"] == truth.status[k]
        if truth.status[k] == "completed":
            assert float(r["cost"]) == pytest.approx(truth.costs[k], rel=1e-5)
    others = [r for r in rows if r["trial_type"] != "electrical_stimulation"]
    assert all(r[c] == "n/a" for r in others for c in STIM_COLUMNS)
    kinds = {r["trial_type"] for r in others}
    assert {"command_sent", "command_rejected", "stop_command", "stream_fault", "trial_interrupted",
            "BAD_ACQ_SKIP", "BAD_nonfinite"} <= kinds


def test_sidecars_describe_columns_and_stimulation(exported) -> None:
    _, _, vhdr = exported
    events_json = json.loads(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_events.json")).read_text())
    assert events_json["electrical_stimulation_current"]["Units"] == "A"
    assert events_json["electrical_stimulation_pulsewidth"]["Units"] == "s"
    assert events_json["electrical_stimulation_frequency"]["Units"] == "Hz"
    cols = list(_rows(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_events.tsv")))[0])
    assert set(cols) - {"onset", "duration"} <= set(events_json)  # every extra column is described
    sidecar = json.loads(vhdr.with_suffix(".json").read_text())
    assert sidecar["ElectricalStimulation"] is True
    assert "mA" in sidecar["ElectricalStimulationParameters"]
    assert sidecar["Manufacturer"] != "Elekta"  # mne-bids' guess from the .fif ending is replaced
    assert not list(vhdr.parent.glob("*electrodes*")) and not list(vhdr.parent.glob("*coordsystem*"))


def test_positions_give_electrodes(tmp_path: Path) -> None:
    path = tmp_path / "sess"
    truth = make_session(path, n_trials=2, seed=9, resume=False, continuous=False, interrupt=None, nonfinite=None,
                         reject=None)
    meta = json.loads((path / "session.json").read_text())
    n = truth.n_channels
    meta["stream"]["positions"] = [[0.01 * (i + 1), 0.02, 0.03] for i in range(n - 1)] + [[None, None, None]]
    (path / "session.json").write_text(json.dumps(meta))
    vhdr = export_bids(path, tmp_path / "bids")
    rows = _rows(next(vhdr.parent.glob("*_space-Other_electrodes.tsv")))
    assert [r["name"] for r in rows] == truth.ch_names
    assert float(rows[1]["x"]) == pytest.approx(0.02) and rows[-1]["x"] == "n/a"
    coords = json.loads(next(vhdr.parent.glob("*_space-Other_coordsystem.json")).read_text())
    assert coords["iEEGCoordinateUnits"] == "m"
    raw = mne_bids.read_raw_bids(mne_bids.get_bids_path_from_fname(vhdr), verbose="error")
    np.testing.assert_allclose(raw.info["chs"][1]["loc"][:3], [0.02, 0.02, 0.03], atol=1e-6)


def test_sensory_session_gets_sensory_columns(tmp_path: Path) -> None:
    path = tmp_path / "sess"
    truth = make_session(path, n_trials=3, seed=10, kind="sensory", resume=False, continuous=False, interrupt=None,
                         nonfinite=None, reject=None)
    vhdr = export_bids(path, tmp_path / "bids")
    rows = _rows(vhdr.with_name(vhdr.name.replace("_ieeg.vhdr", "_events.tsv")))
    sens = [r for r in rows if r["trial_type"] == "sensory_stimulation"]
    assert len(sens) == len(truth.applied)
    for r in sens:
        s = truth.stimuli[int(r["trial"])]
        assert r["sensory_modality"] == s["modality"] and float(r["sensory_rate"]) == pytest.approx(s["frequency_hz"])
        assert r["electrical_stimulation_current"] == "n/a"
    assert json.loads(vhdr.with_suffix(".json").read_text())["ElectricalStimulation"] is False


@pytest.mark.parametrize("kwargs,field", [({"subject": "0-1"}, "subject"), ({"task": "closed loop"}, "task"),
                                          ({"run": 0}, "run")])
def test_bad_entities_name_the_field(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        export_bids(tmp_path / "nowhere", tmp_path / "bids", **kwargs)
