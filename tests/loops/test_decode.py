"""`bfm-stim embed` and `bfm-stim decode`, the simulated-cohort state decoder, and its session biomarker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bfm_stim.decoding import StateDecoder
from bfm_stim.features import Embedding
from loops.cli import main


def test_embed_a_real_recording(tmp_path, recordings_dir, capsys):
    out = tmp_path / "lat.npz"
    assert main(["embed", str(recordings_dir / "test.vhdr"), "--out", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    e = Embedding.load(out)
    assert e.latents.shape == tuple(res["latents"]) and e.latents.shape[1] == 64
    assert len(e.ch_names) == res["channels"] and e.meta["source"] == "test.vhdr"
    assert np.all(np.diff(e.times) > 0) and e.times[-1] <= 7.9 + 1e-9


def test_embed_and_decode_refuse_what_they_cannot_use(tmp_path, recordings_dir, capsys):
    assert main(["embed", "--out", str(tmp_path / "x.npz")]) == 2
    assert "RECORDING file or --stream" in capsys.readouterr().err
    assert main(["decode", str(recordings_dir / "test_edf_stim_channel.edf")]) == 2
    assert "annotations" in capsys.readouterr().err
    assert main(["decode", str(recordings_dir / "test.vhdr"), "--labels", "channel:NOPE"]) == 2
    assert "channel:NAME" in capsys.readouterr().err
    assert main(["decode", "--simulated", "bg-beta-v0"]) == 2
    assert "--save" in capsys.readouterr().err


def test_decode_a_real_recording_reports_both_feature_sets(recordings_dir, capsys):
    assert main(["decode", str(recordings_dir / "test.vhdr"), "--window-s", "0.5", "--folds", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "classification" and res["windows"] == 15 and "none" in res["classes"]
    for k in ("latent", "handcrafted"):
        assert 0.0 <= res[k]["score"] <= 1.0 and len(res[k]["folds"]) >= 1
    # a continuous channel as the target: regression, the channel left out of the features
    assert main(["decode", str(recordings_dir / "test.vhdr"), "--labels", "channel:Vb", "--window-s", "0.5",
                 "--folds", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "regression" and res["metric"] == "R2" and np.isfinite(res["latent"]["score"])


@pytest.mark.slow
def test_simulated_state_decoder_as_a_session_biomarker(tmp_path, capsys):
    """Trained on pretraining-cohort patients, it tells an evaluation patient's pathological windows from
    its healthy twin's through the session's own surrogate and rest alignment."""
    import simulators
    from bfm_stim.surrogate import Surrogate
    from loops.session.state_biomarker import LatentStateBiomarker
    from simulators.registry import cohort

    out = tmp_path / "state.npz"
    assert main(["decode", "--simulated", "bg-beta-v0", "--n-patients", "3", "--save", str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["cohort"] == "pretrain" and res["classes"] == ["healthy", "pathological"]
    assert len(res["leave_one_patient_out_balanced_accuracy"]) == 3
    dec = StateDecoder.load(out)
    assert dec.meta["align"] == "rest" and dec.align_mean is None

    p = simulators.make("bg-beta-v0", cohort("eval", 1)[0])  # never a training seed
    rest = p.simulate(20.0, trial=70).data.numpy()
    from loops.offline import _resample

    sur = Surrogate.from_checkpoint(positions=p.channel_positions, rest=_resample(rest, p.fs, 250.0))
    rows = list(range(p.n_channels))
    bio = LatentStateBiomarker(dec, sur, rows, p.fs, rest)
    assert bio.n_samples == 1000
    patho = [bio(p.simulate(1.0, trial=80 + i).data.numpy()) for i in range(6)]
    healthy = [bio(p.healthy_twin().simulate(1.0, trial=90 + i).data.numpy()) for i in range(6)]
    assert all(0.0 <= v <= 1.0 for v in patho + healthy)
    assert np.median(patho) > 0.5 > np.median(healthy)
    bad = p.simulate(1.0, trial=99).data.numpy()
    bad[0, 10] = np.nan
    assert np.isnan(bio(bad))
