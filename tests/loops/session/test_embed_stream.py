"""`bfm-stim embed --stream`: latents of a live LSL stream served by another process, written as they come."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from bfm_stim.lsl.protocol import keygen
from .lsl_session import REPO, child_env, serve, stop, unique_id, wait_stream

pytestmark = [pytest.mark.lsl, pytest.mark.slow]
SEED = 1000003  # evaluation cohort


def test_embed_stream_writes_latents_while_it_runs(tmp_path):
    from bfm_stim.features import Embedding
    from bfm_stim.lsl.config import pylsl

    key = keygen(tmp_path / "k.key")
    sid = unique_id("test-embed")
    out = tmp_path / "live.npz"
    dev = serve(SEED, key, sid, speed=1.0)  # real time: the device's timestamps are its clock's
    try:
        wait_stream(sid)
        n_ch = pylsl.resolve_byprop("source_id", sid, 1, 10.0)[0].channel_count()
        t0 = pylsl.local_clock()
        proc = subprocess.Popen([sys.executable, "-m", "loops.cli", "embed", "--stream", sid, "--out", str(out),
                                 "--duration", "14", "--rest-s", "4"], env=child_env(), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        partial = None
        while proc.poll() is None:  # the file is rewritten every 5 s, not only at the end
            if partial is None and out.is_file():
                partial = Embedding.load(out)
            time.sleep(0.2)
        stdout, stderr = proc.communicate()
        t1 = pylsl.local_clock()
    finally:
        stop(dev)
    assert proc.returncode == 0, stderr[-3000:]
    assert partial is not None, "no latents file before the command ended"
    e = Embedding.load(out)
    assert len(partial.latents) < len(e.latents)
    np.testing.assert_array_equal(partial.latents, e.latents[: len(partial.latents)])  # appended, never rewritten
    assert e.latents.ndim == 2 and np.isfinite(e.latents).all() and e.latents.std() > 0
    assert e.embedding is not None and np.isfinite(e.embedding).all()
    assert e.meta["embedding"].startswith("zero_shot") and e.meta["source"] == f"lsl:{sid}"
    assert len(e.ch_names) == n_ch
    # LSL times of the served signal: increasing by one patch, inside the command's lifetime
    assert np.allclose(np.diff(e.times), e.patch_s, atol=0.02)  # consecutive windows, no gap or overlap
    assert t0 - 5.0 < e.times[0] and e.times[-1] < t1 + 1.0
    # 14 s of signal, 4 s of it for the embedding: most of the rest is encoded
    assert e.times[-1] - e.times[0] > 6.0
