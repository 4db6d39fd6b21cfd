"""The ``bfm-stim`` command: help, version, patients, simulate to FIF, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from loops.cli import main


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "bfm-stim 0.1.0" in capsys.readouterr().out
    r = subprocess.run([sys.executable, "-m", "loops.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("demo", "simulate", "patients", "pretrain", "serve", "play", "bench", "keygen"):
        assert cmd in r.stdout


def test_patients_lists_both_families(capsys):
    assert main(["patients"]) == 0
    out = capsys.readouterr().out
    assert "bg-beta-v0" in out and "cortex-jr-v0" in out
    # wrapped descriptions stay in their column (issue 34: long lines broke the columns)
    lines = out.splitlines()
    col = lines[0].index(lines[0].split()[1])
    assert all(len(line) <= max(100, col + 40) for line in lines)
    import simulators

    ids = {pid for pid, _ in simulators.list_patients()}
    assert all(line[:col].strip() in ids or not line[:col].strip() for line in lines)
    assert sum(bool(line[:col].strip()) for line in lines) == len(ids)


def test_simulate_writes_fif_that_mne_opens(tmp_path):
    mne = pytest.importorskip("mne")
    stim = {"kind": "electrical", "contact": "c1", "amplitude_ma": 2.0, "frequency_hz": 130.0,
            "pulse_width_us": 60.0, "duration_s": 1.0}
    (tmp_path / "stim.json").write_text(json.dumps([{"onset_s": 1.0, "stimulus": stim}]))
    out = tmp_path / "rec_raw.fif"
    rc = main(["-q", "simulate", "--patient", "bg-beta-v0", "--seed", "3", "--duration", "3",
               "--stimulus", str(tmp_path / "stim.json"), "--out", str(out)])
    assert rc == 0
    raw = mne.io.read_raw_fif(out, preload=True, verbose="error")
    assert raw.info["sfreq"] == 1000.0 and raw.n_times == 3000
    assert np.isfinite(raw.get_data()).all()
    ann = [a for a in raw.annotations if a["description"].startswith("stim")]
    assert len(ann) == 1 and ann[0]["onset"] == pytest.approx(1.0)


def test_simulate_rejects_unsafe_stimulus_with_clear_error(tmp_path, capsys):
    stim = {"kind": "electrical", "contact": "c1", "amplitude_ma": 5.0, "frequency_hz": 130.0,
            "pulse_width_us": 450.0, "duration_s": 1.0}
    (tmp_path / "stim.json").write_text(json.dumps(stim))
    rc = main(["simulate", "--seed", "3", "--duration", "3", "--stimulus", str(tmp_path / "stim.json"),
               "--out", str(tmp_path / "x_raw.fif")])
    err = capsys.readouterr().err
    assert rc == 2 and "charge_density" in err and "exceeds the limit" in err
    assert not (tmp_path / "x_raw.fif").exists()


@pytest.mark.parametrize(
    "content,needle",
    [("{not json", "not valid JSON"), ('[{"onset_s": -1, "stimulus": {"kind": "off"}}]', "events[0].onset_s"),
     ('{"kind": "electrical", "contact": "c1", "amplitude_ma": NaN}', "amplitude_ma")],
)
def test_simulate_bad_files(tmp_path, capsys, content, needle):
    (tmp_path / "s.json").write_text(content)
    rc = main(["simulate", "--seed", "3", "--duration", "2", "--stimulus", str(tmp_path / "s.json"),
               "--out", str(tmp_path / "x_raw.fif")])
    assert rc == 2 and needle in capsys.readouterr().err


def test_optimize_says_on_stdout_when_the_model_is_contradicted(tmp_path, capsys, monkeypatch,
                                                                restore_package_logger):
    """``optimize`` prints the one-line message when the trials first contradict the model, then the trust
    at the end (the numbers come from run_offline, checked in test_offline)."""
    import loops.offline

    def fake(**kw):
        kw["on_trust_message"]("The model does not know this patient: ...; use `bo`.")
        return {"top": [], "trust": {"trust": 0.03, "model_weight": 0.06, "reason": "the trials contradict it"}}

    monkeypatch.setattr(loops.offline, "run_offline", fake)
    assert main(["-q", "optimize", "--optimizer", "guided", "--out", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("The model does not know this patient") == 1
    assert "model trust at the end: 0.03 (weight 0.06): the trials contradict it" in out
