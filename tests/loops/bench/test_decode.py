"""`bfm-stim bench decode` (quick): structure, honest splits, a targets block, the real recordings' rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from loops.bench.decode import CROSS_METHODS, LABEL_S, simulate_tasks
from simulators.registry import cohort


def test_task_data_is_balanced_blocked_and_from_eval_seeds():
    p, tasks, rest = simulate_tasks("cortex-jr-epileptic-v0", cohort("eval", 1)[0])
    assert set(tasks) == {"state", "stim", "flicker", "hidden"}
    assert rest.shape == (p.n_channels, int(30 * p.fs))
    for name, td in tasks.items():
        assert td.X.shape == (240, p.n_channels, int(p.fs)) and len(td.y) == len(td.groups) == 240
        assert np.all(np.diff(td.groups) >= 0)  # blocks in time order
        for b in np.unique(td.groups):  # a block has one label (classification)
            if td.kind == "classification":
                assert len(set(td.y[td.groups == b])) == 1
    assert sorted(set(tasks["stim"].y)) == ["130Hz", "20Hz", "off"]
    assert np.bincount(tasks["state"].y).tolist() == [120, 120]
    assert np.isfinite(tasks["hidden"].y).all() and tasks["hidden"].y.std() > 0
    _, bg_tasks, _ = simulate_tasks("bg-beta-v0", cohort("eval", 1)[0], ("state", "flicker"))
    assert set(bg_tasks) == {"state"}  # no sensory input in the basal-ganglia family


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_decode_bench(tmp_path, capsys):
    from loops.cli import main

    out = tmp_path / "decode.json"
    assert main(["bench", "decode", "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["quick"] and r["seeds"] == cohort("eval", 2)
    for fam in r["families"]:
        s = r["summary"][fam]
        for t in ("state", "stim", "hidden"):
            for fs in ("latent", "random_init", "handcrafted"):
                assert set(s[t][fs]) == {str(x) for x in LABEL_S}
                assert all(math.isfinite(v) for v in s[t][fs].values())
        for t in ("state", "stim"):
            assert set(s[f"{t}_cross_patient"]) == set(CROSS_METHODS)
            assert all(0.0 <= v <= 1.0 for v in s[f"{t}_cross_patient"].values())
    assert isinstance(r["summary"]["bg-beta-v0"]["flicker"], str)  # not applicable, said so
    for name, t in r["targets"].items():
        assert {"measured", "target", "met"} <= set(t) and isinstance(t["met"], bool), name
    from loops.bench.real import DEFAULT_RECORDINGS

    files = {row["file"] for row in r["real"]}
    if DEFAULT_RECORDINGS.is_dir():  # the shared recordings with annotations are all reported
        assert {"test.vhdr", "test_edf_stim_channel.edf"} <= files
    else:
        assert files == set()
    assert not any("/" in f for f in files)  # file names, never a path of this machine
    assert r["checkpoint_digest"] and "/" not in (r["checkpoint"] or "").lstrip("bfm_stim/")
