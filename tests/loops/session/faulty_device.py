"""A simulated bg-beta-v0 device that misbehaves on purpose (a test device, run as a script by
``lsl_session.faulty`` with the repository on ``PYTHONPATH``: ``lsl_helpers.child_env``).

``--mode nan``: channel 0 sends NaN for 0.5 s of signal starting 0.1 s after the 2nd applied command.
``--mode flat``: channel 3 sends a constant for 0.5 s from the same moment.
``--mode noack``: silently drops the 3rd stimulate command it receives (never applied, never acknowledged).
``--mode none``: behaves (with the acquisition metadata of a simulated patient).
"""

from __future__ import annotations

import argparse

import numpy as np

from bfm_stim.lsl.config import configure
from bfm_stim.lsl.protocol import load_key


class Faulty:
    """Wraps a patient; injects the fault into ``advance`` output."""

    def __init__(self, patient, mode: str) -> None:
        self.p, self.mode = patient, mode
        self.fs, self.n_channels = patient.fs, patient.n_channels
        self.channel_names, self.channel_types = patient.channel_names, patient.channel_types
        self.channel_units, self.channel_positions = patient.channel_units, patient.channel_positions
        self.t = 0
        self.n_started = 0
        self.fault = (None, None)

    def stimulus_space(self):
        return self.p.stimulus_space()

    def side_effect(self, stim, *, trial: int = 0):
        return self.p.side_effect(stim, trial=trial)

    def start_stimulation(self, stim) -> None:
        self.p.start_stimulation(stim)
        self.n_started += 1
        if self.n_started == 2 and self.mode != "none":
            a = self.t + int(0.1 * self.fs)
            self.fault = (a, a + int(0.5 * self.fs))

    def stop_stimulation(self) -> None:
        self.p.stop_stimulation()

    def advance(self, n: int) -> np.ndarray:
        x = self.p.advance(n).copy()
        a, b = self.fault
        if a is not None:
            idx = self.t + np.arange(n)
            m = (idx >= a) & (idx < b)
            if m.any():
                if self.mode == "nan":
                    x[0, m] = np.nan
                elif self.mode == "flat":
                    x[3, m] = 7.0
        self.t += n
        return x


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--source-id", required=True)
    ap.add_argument("--speed", type=float, default=4.0)
    ap.add_argument("--mode", choices=["nan", "flat", "noack", "none"], default="none")
    a = ap.parse_args()
    configure("machine")
    import simulators
    from simulators.stream import StreamServer, _install_signal_handlers

    class Server(StreamServer):
        n_cmds = 0

        def _schedule(self, cmds, link, k):
            keep = []
            for c in cmds:
                if c.action == "stimulate":
                    Server.n_cmds += 1
                    if a.mode == "noack" and Server.n_cmds == 3:
                        continue  # lost: a device that hung on this command
                keep.append(c)
            super()._schedule(keep, link, k)

    src = Faulty(simulators.make("bg-beta-v0", seed=a.seed), a.mode)
    server = Server(src, source_id=a.source_id, key=load_key(a.key_file), speed=a.speed,
                          acquisition={"model": "bg-beta-v0", "patient_id": "bg-beta-v0", "seed": str(a.seed)})
    _install_signal_handlers(server.stop_event)
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
