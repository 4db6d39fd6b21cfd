"""Soak: 4 devices × 64 channels × 1 kHz for 2 minutes, no sample lost, bounded memory.

The devices are the cheap ``--synthetic`` source (the bg-beta patient has 29 channels and its
physics is not what is soaked here). ``BFM_STIM_SOAK_S`` sets the duration (s): 120 by default, which
keeps the suite inside its CI time; ``BFM_STIM_SOAK_S=300`` (or longer) for a release soak. Memory is
compared between 30 s in and the end.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bfm_stim.lsl.inlet import RingInlet
from lsl_helpers import start_server, stop

pytestmark = [pytest.mark.lsl, pytest.mark.slow]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_soak_4_devices_64ch_1khz(key_file, source_id):
    duration = float(os.environ.get("BFM_STIM_SOAK_S", "120"))
    sids = [f"{source_id}-{i}" for i in range(4)]
    procs = [start_server("--synthetic", "64", "--counter", "--seed", str(i), "--source-id", s, "--key-file", str(key_file))
             for i, s in enumerate(sids)]
    try:
        inlets = [RingInlet(s, buffer_s=5.0).connect(timeout=30.0) for s in sids]
        last = [None] * 4
        counts = [0] * 4
        t_start = time.monotonic()
        mem0 = None
        while time.monotonic() - t_start < duration:
            time.sleep(0.5)
            for i, inlet in enumerate(inlets):
                data, _ = inlet.pull_new(counter=True)
                assert data.shape[0] == 65
                c = data[-1].astype(np.int64)
                if c.size:
                    if last[i] is not None:
                        assert c[0] == last[i] + 1, f"device {i}: sample lost at {last[i]}"
                    assert np.all(np.diff(c) == 1), f"device {i}: gap inside a chunk"
                    last[i], counts[i] = int(c[-1]), counts[i] + c.size
            if mem0 is None and time.monotonic() - t_start > min(30.0, duration / 4):
                mem0 = [_rss_kb(os.getpid())] + [_rss_kb(p.pid) for p in procs]
        mem1 = [_rss_kb(os.getpid())] + [_rss_kb(p.pid) for p in procs]
        for inlet in inlets:
            assert inlet.n_missing == 0 and not [e for e in inlet.events() if e.kind in ("gap", "dropout", "lost")]
            inlet.disconnect()
        assert min(counts) >= 0.98 * duration * 1000
        growth = [(b - a) / a for a, b in zip(mem0, mem1)]
        assert max(growth) < 0.10, f"memory growth {growth}"
        print(f"soak {duration:.0f} s: samples {counts}, RSS kB start {mem0} end {mem1}")
    finally:
        for p in procs:
            stop(p)
