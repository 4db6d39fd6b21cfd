"""How ``adapt`` and ``optimize --surrogate-only`` read a user's recording: scale, geometry, checks,
stimulation contacts from the recording (never a default lead), and an honest ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, RecordingError
from bfm_stim.recording import Recording
from loops.cli import main
from loops.offline import ranking_verdict, run_offline
from loops.recording_input import prepare_recording


pytestmark = pytest.mark.usefixtures("restore_package_logger")


@pytest.fixture
def bdf(recordings_dir) -> Recording:
    return Recording.read(recordings_dir / "test_bdf_stim_channel.bdf")


def _volts_as_microvolts(rec: Recording, path) -> str:
    """The recording with its EEG 1e6 too large (the unit error of the issue), as a FIF file."""
    data = rec.data.copy()
    data[:3] *= 1e6
    out = Recording(data, rec.fs, rec.ch_names, rec.ch_types, rec.units, rec.positions, rec.events, rec.meta)
    return str(out.write_fif(path))


def _lead(tmp_path) -> str:
    f = tmp_path / "lead.toml"
    f.write_text('units = "mm"\n'
                 '[[electrodes]]\nname = "C3"\ntype = "dbs"\nx = 12.0\ny = -13.0\nz = -6.0\narea_mm2 = 6.0\n'
                 '[[electrodes]]\nname = "C4"\ntype = "dbs"\nx = 12.5\ny = -12.5\nz = -4.0\narea_mm2 = 6.0\n')
    return str(f)


def test_prepare_stops_on_a_unit_error_and_scale_fixes_it(bdf, tmp_path):
    path = _volts_as_microvolts(bdf, tmp_path / "big_raw.fif")
    with pytest.raises(RecordingError, match=r"big_raw.fif.*implausible amplitude scale.*--scale 1e-06"):
        prepare_recording(path)
    prep = prepare_recording(path, scale=1e-6, channel_files=[_lead(tmp_path)])
    assert prep.recording.ch_names == ("C3", "C4", "Cz") and prep.changed
    assert prep.recording.ch_types == ("dbs", "dbs", "eeg")
    info = prep.to_dict()
    assert info["scale"] == 1e-6 and info["positions_known"] == 2 and info["checks"]["n_errors"] == 0
    with prep.as_file() as f:
        back = Recording.read(f)
    np.testing.assert_allclose(back.data, bdf.data[:3], rtol=1e-4)


def test_surrogate_only_without_contacts_says_how_to_give_them(recordings_dir, tmp_path):
    with pytest.raises(ConfigError) as info:
        run_offline(target="bandpower:13-30", optimizer="gradient", budget=1, out=tmp_path / "p.json",
                    surrogate_only=True, recording=recordings_dir / "test_bdf_stim_channel.bdf", progress=False)
    msg = str(info.value)
    assert "no stimulation contacts" in msg and "does not assume a lead" in msg
    assert "--space FILE.toml" in msg and "position_mm" in msg and "--electrodes" in msg
    assert not (tmp_path / "p.json").exists()


def test_cli_optimize_refuses_and_names_the_fix(recordings_dir, tmp_path, capsys):
    rc = main(["optimize", "--surrogate-only", "--recording", str(recordings_dir / "test_bdf_stim_channel.bdf"),
               "--target", "bandpower:13-30", "--out", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "no stimulation contacts" in err and "--space FILE.toml" in err


def test_cli_optimize_stops_on_the_unit_error(bdf, tmp_path, capsys):
    path = _volts_as_microvolts(bdf, tmp_path / "big_raw.fif")
    rc = main(["optimize", "--surrogate-only", "--recording", path, "--target", "bandpower:13-30",
               "--out", str(tmp_path / "p.json"), "--electrodes", _lead(tmp_path)])
    assert rc == 2 and "--scale 1e-06" in capsys.readouterr().err


def test_cli_adapt_with_scale_and_electrodes(bdf, tmp_path, capsys):
    path = _volts_as_microvolts(bdf, tmp_path / "big_raw.fif")
    out = tmp_path / "patient.pt"
    rc = main(["adapt", "--recording", path, "--out", str(out), "--mode", "zero_shot", "--scale", "1e-6",
               "--electrodes", _lead(tmp_path)])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    result = json.loads(text[text.index("{"):])
    assert result["recording"] == path and result["n_channels"] == 3
    assert result["recording_input"]["scale"] == 1e-6 and result["recording_input"]["channels"] == ["C3", "C4", "Cz"]
    assert any(f["code"] == "line_noise" for f in result["recording_input"]["checks"]["findings"])


def test_surrogate_only_uses_the_recordings_contacts(tmp_path):
    """A placed recording with its own lead: the space is its contacts; the ranking says what it can tell."""
    import simulators

    p = simulators.make("bg-beta-v0", seed=11)
    sim = p.simulate(6.0)
    rec = Recording(sim.data.numpy(), p.fs, list(p.channel_names), ch_types=list(p.channel_types),
                    positions=p.channel_positions)
    path = rec.write_fif(tmp_path / "rec_raw.fif")
    cfg = tmp_path / "opt.toml"
    cfg.write_text("[gradient]\nn_starts = 1\nsteps = 3\n")
    r = run_offline(target="bandpower:13-30", optimizer="gradient", budget=1, out=tmp_path / "p.json", config=cfg,
                    surrogate_only=True, recording=path, progress=False)
    assert [c["name"] for c in r["space"]["contacts"]] == [f"DBS{i}" for i in range(8)]
    assert "lead contacts" in r["recording_input"]["space_source"]
    assert r["ranking"]["n"] >= 1 and r["ranking"]["message"]
    assert json.loads((tmp_path / "p.json").read_text())["ranking"] == r["ranking"]


def _cand(m: float, sd: float) -> dict:
    return {"stimulus": {}, "predicted_cost": m, "predicted_std": sd, "measured": False}


def test_ranking_verdict_ties_within_uncertainty():
    tied = [_cand(0.500, 0.02), _cand(0.501, 0.02), _cand(0.503, 0.02)]
    v = ranking_verdict(tied)
    assert not v["distinguishable"] and v["message"].startswith("the surrogate cannot tell these apart")
    assert v["spread"] == pytest.approx(0.003) and v["uncertainty"] == pytest.approx(0.02)
    assert all(c["rank"] is None and c["tied_with_best"] for c in tied)
    apart = [_cand(0.1, 0.01), _cand(0.5, 0.01), _cand(0.9, 0.01)]
    v = ranking_verdict(apart)
    assert v["distinguishable"] and v["n_tied_with_best"] == 1
    assert [c["rank"] for c in apart] == [1, 2, 3]
    mixed = [_cand(0.10, 0.05), _cand(0.12, 0.05), _cand(0.9, 0.05)]
    v = ranking_verdict(mixed)
    assert v["n_tied_with_best"] == 2 and [c["rank"] for c in mixed] == [None, None, 3]
    assert ranking_verdict([{"measured": True, "predicted_cost": 1.0}])["n"] == 0
