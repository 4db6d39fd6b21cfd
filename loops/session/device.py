"""The session's side of one LSL device: signal inlet, command sender, recorder and acknowledgements.

``Device.pump()`` is called often (every few ms to 50 ms) by the loop: it moves newly received
samples to the session's stream files, turns the inlet's events into logged faults, and collects
acknowledgements. All durations a session asks for are in *signal* seconds (the patient's time);
:attr:`Device.speed` converts them to wall-clock seconds for a simulator running faster than real
time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import StreamError, StreamMismatchError
from bfm_stim.lsl.config import local_clock
from bfm_stim.lsl.inlet import RingInlet
from bfm_stim.lsl.link import CommandSender
from bfm_stim.lsl.protocol import Ack
from bfm_stim.space import Stimulus

__all__ = ["Device"]

log = get_logger("loops.session.device")
FAULT_EVENTS = ("gap", "dropout", "lost", "mismatch", "overrun")
NEURAL = ("eeg", "seeg", "ecog", "dbs")
_UNIT = {"µV": "microvolts", "uV": "microvolts", "μV": "microvolts", "mV": "millivolts", "V": "volts"}


class Device:
    """Connect to a device's streams and keep what it sends.

    Args:
        cfg: :class:`~loops.session.config.DeviceConfig`.
        key: Session key.
        store: The :class:`~loops.session.store.SessionStore` (stream files and the log).
        session_id: Command session id (kept across a resume).
        first_seq: First command sequence number (after the last one logged, on resume).
        buffer_s: Ring length, s of signal.
    """

    def __init__(self, cfg: Any, key: bytes, store: Any, *, session_id: str, first_seq: int = 1,
                 buffer_s: float = 60.0) -> None:
        self.cfg, self.key, self.store = cfg, key, store
        self.session_id, self.first_seq, self.buffer_s = session_id, first_seq, buffer_s
        self.inlet: RingInlet | None = None
        self.sender: CommandSender | None = None
        self.acks: dict[int, Ack] = {}
        self.on_ack: Any = None  # callback(ack) for every ack of this session (continuous mode)

    # --- connection -------------------------------------------------------------------------------
    def connect(self) -> "Device":
        """Open the signal inlet and the command stream; check the stream against ``[device]``.

        Raises:
            StreamError: no device within ``connect_timeout_s``.
            StreamMismatchError: channel count, rate or units differ from the config (all differences named).
        """
        c = self.cfg
        self.inlet = RingInlet(c.source_id or None, name=c.name or None, buffer_s=self.buffer_s, dropout_s=0.2)
        self.inlet.connect(timeout=c.connect_timeout_s)
        spec = self.spec
        diffs = []
        if c.n_channels and spec.n_channels != c.n_channels:
            diffs.append(f"{spec.n_channels} channels, expected n_channels = {c.n_channels}")
        if c.fs and abs(spec.fs - c.fs) > 1e-9:
            diffs.append(f"{spec.fs:g} Hz, expected fs = {c.fs:g}")
        want = _UNIT.get(c.units, c.units)
        types = [t.lower() for t in (spec.ch_types or ())] or ["eeg"] * spec.n_channels
        off = [(n, u) for n, t, u in zip(spec.ch_names, types, spec.units or ())
               if t in NEURAL and _UNIT.get(u, u) != want]
        if c.units and off:  # the neural channels' unit (a temperature or trigger channel may have its own)
            diffs.append(f"neural channels in other units: {off[:4]}{' ...' if len(off) > 4 else ''}, expected "
                         f"units = {c.units!r}")
        if diffs:
            self.inlet.disconnect()
            raise StreamMismatchError(f"device stream {spec.source_id!r} differs from [device] in the config: "
                                      + "; ".join(diffs) + ". Fix the config or connect the right device.")
        self.sender = CommandSender(spec.source_id, self.key, session=self.session_id, first_seq=self.first_seq)
        self.sender.connect(timeout=c.connect_timeout_s)
        log.info("connected to %s: %d channels at %g Hz (speed %g)", spec.source_id, spec.n_channels, spec.fs,
                 spec.speed)
        return self

    def disconnect(self) -> None:
        if self.sender is not None:
            self.sender.disconnect()
        if self.inlet is not None and self.inlet.connected:
            self.inlet.disconnect()

    @property
    def spec(self) -> Any:
        assert self.inlet is not None and self.inlet.spec is not None
        return self.inlet.spec

    @property
    def speed(self) -> float:
        """Signal seconds per wall-clock second (1 for a real device)."""
        return float(self.spec.speed or 1.0)

    def wall(self, signal_s: float) -> float:
        """Wall-clock seconds of ``signal_s`` s of signal."""
        return signal_s / self.speed

    @property
    def listening(self) -> bool:
        """Whether the device is subscribed to our command stream (it is, while it runs)."""
        out = self.sender._outlet if self.sender is not None else None  # noqa: SLF001
        return bool(out is not None and out.have_consumers())

    # --- the pump ---------------------------------------------------------------------------------
    def pump(self) -> list[Any]:
        """Record new samples, log stream events, collect acks; returns the inlet's events."""
        assert self.inlet is not None and self.sender is not None
        events = self.inlet.events()
        for ev in events:
            if ev.kind in FAULT_EVENTS:
                self.store.append("fault", kind=ev.kind, detail=ev.detail, sync=False, lsl=ev.time)
            elif ev.kind == "recovered":
                self.store.append("recovered", detail=ev.detail, sync=False, lsl=ev.time)
        try:
            data, ts = self.inlet.pull_new()
        except StreamError:
            data, ts = np.zeros((0, 0), np.float32), np.zeros(0)
        if ts.size and self.store.signal is not None:
            self.store.signal.append(data, ts)
        for ack in self.sender.poll_acks(0.0, keep=False):
            if ack.session != self.session_id or ack.seq is None:
                continue
            self.acks[ack.seq] = ack
            if self.on_ack is not None:
                self.on_ack(ack)
        return events

    def newest_time(self) -> float | None:
        """LSL time of the newest received sample (None before any)."""
        if self.inlet is None or not self.inlet.n_available:
            return None
        _, ts = self.inlet.get_data(1)
        return float(ts[-1]) if ts.size else None

    def window(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples with LSL times in ``[t0, t1)``: ``(data (n_channels, n) µV, times (n,))``."""
        assert self.inlet is not None
        rate = self.spec.fs * self.speed  # samples per LSL second
        n = min(int((local_clock() - t0) * rate) + 256, self.inlet.n_available)
        data, ts = self.inlet.get_data(max(n, 1))
        sel = (ts >= t0 - 1e-9) & (ts < t1 - 1e-9)
        return data[:, sel], ts[sel]

    def wait_until(self, t_lsl: float, *, check: Any = None, poll_s: float = 0.01) -> Any:
        """Pump until a sample at or after LSL time ``t_lsl`` has arrived; ``check()`` each poll may
        return a fault, which ends the wait and is returned (None when the data arrived)."""
        while True:
            self.pump()
            newest = self.newest_time()
            if newest is not None and newest >= t_lsl:
                return None
            if check is not None:
                f = check()
                if f is not None:
                    return f
            time.sleep(poll_s)

    # --- commands -----------------------------------------------------------------------------------
    @property
    def next_seq(self) -> int:
        assert self.sender is not None
        return self.sender.next_seq

    def send(self, stim: Stimulus, apply_at: float) -> int:
        """Push a signed stimulate command (log it *before* calling this); returns its seq."""
        assert self.sender is not None
        return self.sender.send(stim, apply_at)

    def stop(self, reason: str) -> int | None:
        """Send a stop (a stop always wins at the device) and log it; None when not connected."""
        if self.sender is None or not self.sender.connected:
            return None
        seq = self.sender.next_seq
        self.store.append("stop", seq=seq, reason=reason)
        self.sender.stop()
        return seq

    def wait_ack(self, seq: int, timeout_s: float, *, check: Any = None) -> Ack | None:
        """The ack of ``seq`` (pumping meanwhile), or None after ``timeout_s`` wall-clock s."""
        t_end = local_clock() + timeout_s
        while local_clock() < t_end:
            self.pump()
            if seq in self.acks:
                return self.acks.pop(seq)
            time.sleep(0.002)
        self.pump()
        return self.acks.pop(seq, None)
