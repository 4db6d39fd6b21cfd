"""Channel types, positions and stimulation contacts from BIDS sidecars, TOML, CSV and MNE montages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError
from bfm_stim.io.geometry import (ASSUMED_AREA_CM2, Electrode, Geometry, apply_geometry, bids_sidecars,
                                  missing_contacts_message, montage_geometry, read_geometry, resolve_geometry,
                                  stimulation_contacts)
from bfm_stim.recording import Recording
from bfm_stim.sanity import check_recording, neural_channels


@pytest.fixture
def bdf(recordings_dir) -> Recording:
    """C3, C4, Cz (EEG) and Status (stim), 500 Hz, 10 s, no positions."""
    return Recording.read(recordings_dir / "test_bdf_stim_channel.bdf")


def _bids(tmp_path: Path, rec: Recording, *, coordsystem: bool = True) -> Path:
    """The BDF as a BIDS iEEG recording: two DBS contacts, one ECoG contact marked bad, a trigger."""
    path = rec.write_fif(tmp_path / "sub-01_ses-01_task-rest_run-1_ieeg.fif")
    (tmp_path / "sub-01_ses-01_task-rest_run-1_channels.tsv").write_text(
        "name\ttype\tunits\tstatus\n"
        "C3\tDBS\tuV\tgood\nC4\tLFP\tuV\tgood\nCz\tECOG\tuV\tbad\nStatus\tTRIG\tn/a\tgood\n")
    (tmp_path / "sub-01_ses-01_space-ACPC_electrodes.tsv").write_text(
        "name\tx\ty\tz\tsize\tgroup\n"
        "C3\t12.0\t-13.0\t-6.0\t6.0\tSTN-L\nC4\t12.5\t-12.5\t-4.0\t6.0\tSTN-L\n"
        "Cz\t40.0\t-20.0\t60.0\t4.2\tstrip\nspare\tn/a\tn/a\tn/a\tn/a\tn/a\n")
    if coordsystem:
        (tmp_path / "sub-01_ses-01_space-ACPC_coordsystem.json").write_text(
            json.dumps({"iEEGCoordinateSystem": "ACPC", "iEEGCoordinateUnits": "mm"}))
    return path


def test_bids_sidecars_next_to_the_file(bdf, tmp_path):
    path = _bids(tmp_path, bdf)
    assert set(bids_sidecars(path)) == {"channels", "electrodes"}
    rec, findings = resolve_geometry(Recording.read(path), path=path)
    assert rec.ch_types == ("dbs", "dbs", "ecog", "stim")
    np.testing.assert_allclose(rec.positions[:3], [[0.012, -0.013, -0.006], [0.0125, -0.0125, -0.004],
                                                   [0.04, -0.02, 0.06]])
    assert np.isnan(rec.positions[3]).all() and rec.meta["bads"] == ["Cz"]
    assert any(f.code == "geometry" and f.severity == "info" for f in findings)
    report = check_recording(rec)
    assert "no_positions" not in [f.code for f in report.findings]
    assert neural_channels(rec, report=report).ch_names == ("C3", "C4")  # Cz is bad, Status a trigger
    contacts, notes = stimulation_contacts(rec)
    assert [c.name for c in contacts] == ["C3", "C4"] and not notes
    assert contacts[0].position_mm == pytest.approx((12.0, -13.0, -6.0)) and contacts[0].area_cm2 == pytest.approx(0.06)
    back = Recording.read(rec.write_fif(tmp_path / "placed_raw.fif"))  # geometry survives a FIF round trip
    assert back.ch_types == rec.ch_types and back.meta["bads"] == ["Cz"]
    assert [c.name for c in stimulation_contacts(back)[0]] == ["C3", "C4"]


def test_bids_electrodes_without_coordsystem_guess_mm_and_say_so(bdf, tmp_path):
    path = _bids(tmp_path, bdf, coordsystem=False)
    rec, findings = resolve_geometry(Recording.read(path), path=path)
    assert rec.positions[0] == pytest.approx([0.012, -0.013, -0.006])
    assert any(f.code == "position_units" and "coordsystem.json" in f.message for f in findings)


def test_toml_electrodes_with_units_and_stim_flags(bdf, tmp_path):
    f = tmp_path / "electrodes.toml"
    f.write_text('units = "mm"\n'
                 '[[electrodes]]\nname = "C3"\ntype = "seeg"\nx = 1.0\ny = 2.0\nz = 3.0\narea_mm2 = 5.0\n'
                 'lead = "A"\ncontact = 1\n'
                 '[[electrodes]]\nname = "C4"\ntype = "seeg"\nposition = [4.0, 5.0, 6.0]\nstim = false\n'
                 '[[electrodes]]\nname = "Cz"\ntype = "eeg"\n')
    geo = read_geometry(f)
    assert geo.electrodes[0] == Electrode("C3", "seeg", (0.001, 0.002, 0.003), 5.0, "A", "1")
    rec, _ = apply_geometry(bdf, geo)
    assert rec.ch_types[:3] == ("seeg", "seeg", "eeg") and np.isnan(rec.positions[2]).all()
    contacts, _ = stimulation_contacts(rec)
    assert [(c.name, c.area_cm2) for c in contacts] == [("C3", 0.05)]  # C4 is marked stim = false


def test_csv_in_metres_and_assumed_area(bdf, tmp_path):
    f = tmp_path / "chans.csv"
    f.write_text("# name, type, x, y, z in m\nname,type,x,y,z\nC3,dbs,0.01,0.02,0.03\nC4,dbs,0.01,0.02,0.032\n"
                 "Status,trig,,,\n")
    rec, _ = apply_geometry(bdf, read_geometry(f))
    assert rec.ch_types == ("dbs", "dbs", "eeg", "stim")
    contacts, notes = stimulation_contacts(rec)
    assert [c.position_mm for c in contacts] == [(10.0, 20.0, 30.0), (10.0, 20.0, 32.0)]
    assert all(c.area_cm2 == ASSUMED_AREA_CM2 for c in contacts)
    assert notes[0].code == "contact_area" and "area_mm2" in notes[0].message


def test_bipolar_channels_sit_between_their_contacts(bdf):
    rec = Recording(bdf.data[:2], bdf.fs, ["LFP1-LFP2", "LFP2-LFP3"], ["dbs", "dbs"])
    geo = Geometry(tuple(Electrode(f"LFP{i}", "dbs", (0.0, 0.0, 0.002 * i)) for i in (1, 2, 3)), "test")
    placed, _ = apply_geometry(rec, geo)
    np.testing.assert_allclose(placed.positions[:, 2], [0.003, 0.005])
    contacts, _ = stimulation_contacts(placed)  # the electrodes, not the bipolar channels
    assert [c.name for c in contacts] == ["LFP1", "LFP2", "LFP3"]


def test_standard_montage_on_the_clinical_edf(recordings_dir):
    rec = Recording.read(recordings_dir / "test_edf_stim_channel.edf")
    placed, findings = resolve_geometry(rec, montage="standard_1020")
    known = [n for n, p in zip(placed.ch_names, placed.positions) if np.isfinite(p).all()]
    assert {"Fp1", "Cz", "T3", "O2"} <= set(known) and "ECG1" not in known
    assert np.abs(placed.positions[placed.ch_names.index("Cz")]).max() < 0.15  # m, a head
    assert not stimulation_contacts(placed)[0]  # scalp EEG: nothing to stimulate through
    with pytest.raises(ConfigError, match="built-in"):
        montage_geometry("no-such-montage")


def test_no_match_and_bad_files(bdf, tmp_path):
    f = tmp_path / "other.csv"
    f.write_text("name,type\nX1,dbs\n")
    rec, findings = apply_geometry(bdf, read_geometry(f))
    assert rec.ch_types == bdf.ch_types and findings[-1].severity == "warning" and "none of its" in findings[-1].message
    bad = tmp_path / "bad.csv"
    bad.write_text("label,type\nC3,dbs\n")
    with pytest.raises(ConfigError, match="'name'"):
        read_geometry(bad)
    bad.write_text("name,x,y,z\nC3,1,two,3\n")
    with pytest.raises(ConfigError, match="row 2"):
        read_geometry(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_geometry(tmp_path / "missing.tsv")
    (tmp_path / "chans.json").write_text("{}")
    with pytest.raises(ConfigError, match="unsupported"):
        read_geometry(tmp_path / "chans.json")


def test_missing_contacts_message_says_how_to_give_them(bdf):
    msg = missing_contacts_message(bdf)
    assert "--space FILE.toml" in msg and "position_mm" in msg and "--electrodes" in msg
    assert "\n" not in msg  # one line: the command prints an error's first line
    lead = Recording(bdf.data[:2], bdf.fs, ["L0", "L1"], ["dbs", "dbs"])
    assert "L0, L1) have no positions" in missing_contacts_message(lead)
