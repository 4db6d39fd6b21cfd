"""Helpers for LSL tests: subprocess environment and device servers (machine-only LSL config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LSL_CFG = REPO / "bfm_stim" / "lsl" / "lsl_api.cfg"
os.environ["LSLAPICFG"] = str(LSL_CFG)


def child_env() -> dict[str, str]:
    """Environment for LSL subprocesses: machine-only config, the repo on the path."""
    env = dict(os.environ)
    env["LSLAPICFG"] = str(LSL_CFG)
    env.pop("BFM_STIM_LSL_SCOPE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start_server(*args: str) -> subprocess.Popen:
    """``python -m simulators.stream ARGS`` in a subprocess."""
    return subprocess.Popen([sys.executable, "-m", "simulators.stream", *args], env=child_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout)
