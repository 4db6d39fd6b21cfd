"""Helpers for session tests: devices and sessions in real subprocesses, machine-only LSL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lsl_helpers import REPO, child_env, stop  # noqa: F401  (child_env, stop: re-exported to the session tests)

HERE = Path(__file__).resolve().parent


def unique_id(prefix: str) -> str:
    return f"{prefix}-{random.randrange(16 ** 8):08x}"


def start(args: list[str], log: Path | None = None) -> subprocess.Popen:
    """``python ARGS`` in a subprocess with the machine-only LSL configuration."""
    err = open(log, "w") if log is not None else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, *args], env=child_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


def serve(seed: int, key: Path, source_id: str, *, speed: float = 4.0, log: Path | None = None,
          patient: str = "bg-beta-v0") -> subprocess.Popen:
    return start(["-m", "simulators.stream", "--patient", patient, "--seed", str(seed), "--key-file", str(key),
                  "--speed", str(speed), "--source-id", source_id], log)


def faulty(seed: int, key: Path, source_id: str, mode: str, *, speed: float = 4.0, log: Path | None = None,
           extra: list[str] | None = None) -> subprocess.Popen:
    return start([str(HERE / "faulty_device.py"), "--seed", str(seed), "--key-file", str(key), "--source-id",
                  source_id, "--speed", str(speed), "--mode", mode, *(extra or [])], log)


def wait_stream(source_id: str, timeout: float = 60.0) -> None:
    from bfm_stim.lsl.config import pylsl

    if not pylsl.resolve_byprop("source_id", source_id, 1, timeout):
        raise RuntimeError(f"device {source_id} did not start within {timeout} s")


def _toml(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def write_config(path: Path, source_id: str, key: Path, **tables: dict[str, Any]) -> Path:
    """A session TOML with ``[device] source_id/key_file`` and the given tables."""
    lines = ["[device]", f'source_id = "{source_id}"', f'key_file = "{key}"']
    for k, v in tables.pop("device", {}).items():
        lines.append(f"{k} = {_toml(v)}")
    for name, t in tables.items():
        lines.append(f"\n[{name}]")
        for k, v in t.items():
            lines.append(f"{k} = {_toml(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def session_cmd(*args: str) -> list[str]:
    return ["-m", "loops.cli", "session", "--no-live", *args]


def run_session_proc(args: list[str], timeout: float = 240.0, log: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *session_cmd(*args)], env=child_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def records(session_dir: Path) -> list[dict]:
    from loops.session.store import read_log

    return read_log(session_dir / "trials.jsonl")


def wait_for(pred, timeout: float, poll: float = 0.1) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(poll)
    return False
