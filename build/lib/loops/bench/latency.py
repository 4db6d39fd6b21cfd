"""Latency benchmark of the LSL bridge against raw pylsl, with real processes on both ends.

- **raw pylsl round trip**: this process pushes one ``n_channels`` sample on an outlet; a second
  process pulls it with a plain inlet and pushes an answer back; this process pulls the answer.
- **bridge round trip**: this process is the device (pushes ``n_channels`` + counter at ``fs``,
  one sample per push, and receives commands through :class:`DeviceLink` and the gate); the
  second process is the controller (:class:`RingInlet` → :class:`CommandSigner` →
  :class:`CommandSender`) and answers every ``trigger_every``-th sample with a signed
  stimulate command whose ``apply_at`` is that sample's timestamp. The latency is from the
  sample leaving the device to its command having passed the gate's verification.

``run_latency_bench`` returns (and optionally writes) a JSON-ready dict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from bfm_stim.exceptions import StreamError
from bfm_stim.lsl.config import local_clock, pylsl, scope, seal
from bfm_stim.lsl.meta import SignalSpec, make_signal_info

__all__ = ["run_latency_bench", "main"]

_STIM = {"kind": "electrical", "contact": "c0", "amplitude_ma": 1.0, "frequency_hz": 130.0,
         "pulse_width_us": 60.0, "duration_s": 1.0, "biphasic": True}


def _helper(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "loops.bench.latency", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stats(x_s: list[float]) -> dict[str, float]:
    a = np.asarray(x_s) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "mean_ms": float(a.mean())}


def _raw_round_trip(n_channels: int, fs: float, n: int, timeout: float) -> list[float]:
    tag = uuid.uuid4().hex[:8]
    seal()
    ping = pylsl.StreamOutlet(pylsl.StreamInfo("bench-ping", "EEG", n_channels, fs, "float32", f"bench-ping-{tag}"))
    proc = _helper(["echo", "--tag", tag])
    try:
        found = pylsl.resolve_byprop("source_id", f"bench-pong-{tag}", 1, timeout)
        if not found:
            raise StreamError(f"echo helper did not start: {proc.stderr.read().decode()[-2000:] if proc.poll() else ''}")
        pong = pylsl.StreamInlet(found[0], max_buflen=10, recover=False)
        pong.open_stream(timeout)
        if not ping.wait_for_consumers(timeout):
            raise StreamError("echo helper did not subscribe")
        row = np.zeros(n_channels, np.float32)
        rtts: list[float] = []
        for i in range(-50, n):  # 50 warm-up samples
            row[0] = i
            t = local_clock()
            ping.push_sample(row)
            while True:
                s, _ = pong.pull_sample(timeout=1.0)
                if s is None:
                    raise StreamError("echo helper stopped answering")
                if int(s[0]) == i:
                    break
            if i >= 0:
                rtts.append(local_clock() - t)
            time.sleep(max(0.0, t + 1.0 / fs - local_clock()))
        return rtts
    finally:
        proc.terminate()
        proc.wait(5)


def _bridge_round_trip(n_channels: int, fs: float, n: int, trigger_every: int, timeout: float) -> dict:
    from bfm_stim.lsl.link import DeviceLink
    from bfm_stim.lsl.protocol import DeviceCommandGate, keygen, load_key
    from bfm_stim.space import Contact, StimulusSpace

    tag = uuid.uuid4().hex[:8]
    sid = f"bench-dev-{tag}"
    with tempfile.TemporaryDirectory() as d:
        key_file = keygen(Path(d) / "bench.key")
        key = load_key(key_file)
        spec = SignalSpec(name="bench-device", source_id=sid, fs=fs, ch_names=tuple(f"ch{i}" for i in range(n_channels)),
                          counter=True)
        outlet = pylsl.StreamOutlet(make_signal_info(spec), max_buffered=10)
        gate = DeviceCommandGate(key, StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))]))
        link = DeviceLink(sid, gate, rescan_s=0.05).open()
        proc = _helper(["loop", "--source-id", sid, "--key-file", str(key_file), "--trigger-every", str(trigger_every)])
        n_total = (n + 100) * trigger_every  # samples to push (warm-up triggers dropped below)
        push_t = np.full(n_total, np.nan)
        lat: list[tuple[int, float]] = []
        done = threading.Event()

        def receive() -> None:
            while not done.is_set():
                for cmd in link.poll(timeout=0.002):
                    t = local_clock()
                    idx = int(round((cmd.apply_at - t0) * fs))
                    if 0 <= idx < n_total and np.isfinite(push_t[idx]):
                        lat.append((idx, t - push_t[idx]))

        try:
            t_end = time.monotonic() + timeout
            while link.n_controllers == 0 or not outlet.have_consumers():
                link.poll(0.0)
                if time.monotonic() > t_end or proc.poll() is not None:
                    raise StreamError(f"controller helper did not connect: {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else 'timeout'}")
                time.sleep(0.01)
            rx = threading.Thread(target=receive, daemon=True)
            t0 = local_clock()
            rx.start()
            row = np.zeros(n_channels + 1, np.float32)
            for k in range(n_total):
                target = t0 + k / fs
                while (w := target - local_clock()) > 0:
                    time.sleep(w)
                row[-1] = k
                push_t[k] = local_clock()
                outlet.push_sample(row, timestamp=target)
            time.sleep(0.2)
        finally:
            done.set()
            proc.terminate()
            proc.wait(5)
            link.close()
        warm = 100 * trigger_every
        out = [v for i, v in lat if i >= warm]
        return {"latencies": out, "accepted": gate.counts.get("accepted", 0),
                "rejected": sum(v for k, v in gate.counts.items() if k != "accepted")}


def run_latency_bench(n_channels: int = 64, fs: float = 1000.0, n: int = 1000, *, trigger_every: int = 5,
                      timeout: float = 20.0, json_path: str | os.PathLike[str] | None = None) -> dict:
    """Measure raw pylsl and bridge round trips (p50/p99, ms) at ``n_channels`` × ``fs``.

    Args:
        n_channels: Channels of the signal stream.
        fs: Sampling rate, Hz (the device pushes one sample every ``1/fs`` s).
        n: Round trips measured for each path (after warm-up).
        trigger_every: The controller answers every this-many-th sample.
        timeout: Start-up timeout of the helper processes, s.
        json_path: Also write the result there.

    Returns:
        ``{"raw_pylsl": {...}, "bridge": {...}, "targets": {...}, ...}`` with ``p50_ms``, ``p99_ms``.
    """
    raw = _raw_round_trip(n_channels, fs, n, timeout)
    br = _bridge_round_trip(n_channels, fs, n, trigger_every, timeout)
    raw_s, br_s = _stats(raw), _stats(br["latencies"])
    res = {
        "benchmark": "lsl_latency",
        "n_channels": n_channels, "fs_hz": fs, "n": n, "lsl_scope": scope(),
        "raw_pylsl": {**raw_s, "what": "push sample -> other process pulls and pushes answer -> pull answer"},
        "bridge": {**br_s, "accepted": br["accepted"], "rejected": br["rejected"],
                   "what": "sample pushed by device -> RingInlet -> signed command -> gate verified at device"},
        "targets": {},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "pylsl": pylsl.__version__, "liblsl": pylsl.library_version()},
    }
    if "p99_ms" in raw_s and "p99_ms" in br_s:
        res["targets"] = {"bridge_p99_le_5ms": br_s["p99_ms"] <= 5.0,
                          "bridge_p99_le_10x_raw_p99": br_s["p99_ms"] <= 10.0 * raw_s["p99_ms"],
                          "ratio_p99": br_s["p99_ms"] / raw_s["p99_ms"]}
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(res, indent=2))
    return res


# --- helper processes -------------------------------------------------------------------------
def _echo(tag: str) -> None:
    seal()
    found = pylsl.resolve_byprop("source_id", f"bench-ping-{tag}", 1, 20.0)
    if not found:
        raise SystemExit("no ping stream")
    inlet = pylsl.StreamInlet(found[0], max_buflen=10, recover=False)
    pong = pylsl.StreamOutlet(pylsl.StreamInfo("bench-pong", "Markers", 1, pylsl.IRREGULAR_RATE, "double64",
                                               f"bench-pong-{tag}"))
    inlet.open_stream(20.0)
    while True:
        try:
            s, _ = inlet.pull_sample(timeout=5.0)
        except Exception:  # noqa: BLE001 - ping closed: done
            return
        if s is None:
            return
        pong.push_sample([s[0]])


def _loop(source_id: str, key_file: str, trigger_every: int) -> None:
    from bfm_stim.lsl.inlet import RingInlet
    from bfm_stim.lsl.link import CommandSender
    from bfm_stim.lsl.protocol import load_key
    from bfm_stim.space import Stimulus

    stim = Stimulus.from_dict(_STIM)
    sender = CommandSender(source_id, load_key(key_file))
    with RingInlet(source_id, buffer_s=5.0) as inlet:
        sender.connect(timeout=20.0)
        while True:
            if not inlet.wait_new(1, timeout=2.0):
                return
            data, ts = inlet.pull_new(counter=True)
            for c, t in zip(data[-1], ts):
                if int(c) % trigger_every == 0:
                    sender.send(stim, apply_at=float(t))
            sender.poll_acks()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loops.bench.latency [run|echo|loop]``."""
    p = argparse.ArgumentParser(prog="python -m loops.bench.latency")
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--json")
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--channels", type=int, default=64)
    e = sub.add_parser("echo")
    e.add_argument("--tag", required=True)
    lp = sub.add_parser("loop")
    lp.add_argument("--source-id", required=True)
    lp.add_argument("--key-file", required=True)
    lp.add_argument("--trigger-every", type=int, default=5)
    a = p.parse_args(argv)
    if a.mode == "echo":
        _echo(a.tag)
    elif a.mode == "loop":
        try:
            _loop(a.source_id, a.key_file, a.trigger_every)
        except StreamError:
            pass
    else:
        res = run_latency_bench(a.channels, n=a.n, json_path=a.json)
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
