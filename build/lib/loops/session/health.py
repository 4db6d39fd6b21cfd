"""Is the stream fit to act on? Checks of the newest samples and of the inlet's events.

A session sends no command while :meth:`StreamHealth.check` reports a fault, and a fault during a
trial interrupts it (stop sent, cost never told).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bfm_stim.lsl.config import local_clock

__all__ = ["Fault", "StreamHealth"]

NEURAL = ("eeg", "seeg", "ecog", "dbs")


@dataclass(frozen=True)
class Fault:
    """What is wrong: ``kind`` (``stale``, ``nonfinite``, ``flat``, ``saturated``, ``dropout``,
    ``lost``, ``mismatch``, ``gap``, ``no_ack``) and a message naming channel, value and limit."""

    kind: str
    detail: str


class StreamHealth:
    """Checks a :class:`~bfm_stim.lsl.inlet.RingInlet`'s newest data against ``[health]`` limits.

    Args:
        inlet: The connected inlet.
        cfg: :class:`~loops.session.config.HealthConfig`.
        ch_names: Channel names (for messages).
    """

    def __init__(self, inlet, cfg, ch_names: tuple[str, ...], ch_types: tuple[str, ...] = ()) -> None:
        self.inlet, self.cfg = inlet, cfg
        types = [t.lower() for t in ch_types]
        # the data checks look at the neural channels (a trigger or temperature channel may be flat)
        self.rows = [i for i, t in enumerate(types) if t in NEURAL] or list(range(len(ch_names)))
        self.ch_names = tuple(ch_names[i] for i in self.rows)
        self.fs = float(inlet.spec.fs) * float(inlet.spec.speed or 1.0)  # samples per wall-clock second
        self.last: Fault | None = None
        self.n_faults = 0

    def data_fault(self, data: np.ndarray) -> Fault | None:
        """Fault of a window ``(n_channels, n)`` µV, or None: non-finite, saturated or flat channels."""
        if data.size == 0:
            return Fault("stale", "no samples yet")
        data = data[self.rows]
        bad = ~np.isfinite(data)
        if bad.any():
            ch = int(np.nonzero(bad.any(1))[0][0])
            return Fault("nonfinite", f"channel {self.ch_names[ch]!r} has {int(bad[ch].sum())} non-finite samples "
                                      f"(NaN/inf) in the newest {data.shape[1]} samples; expected finite µV")
        peak = np.abs(data).max(1)
        sat = peak >= self.cfg.saturation_uv
        if sat.any():
            ch = int(np.argmax(sat))
            return Fault("saturated", f"channel {self.ch_names[ch]!r} reaches {peak[ch]:.4g} µV; allowed |x| < "
                                      f"{self.cfg.saturation_uv:g} µV ([health] saturation_uv)")
        if data.shape[1] >= 8:
            sd = data.std(1)
            flat = sd < self.cfg.flat_uv
            if flat.any():
                ch = int(np.argmax(flat))
                return Fault("flat", f"channel {self.ch_names[ch]!r} is flat (standard deviation {sd[ch]:.3g} µV "
                                     f"< {self.cfg.flat_uv:g} µV, [health] flat_uv): disconnected electrode?")
        return None

    def check(self) -> Fault | None:
        """The current fault (None when the stream is healthy); reads the inlet's newest window."""
        inlet = self.inlet
        try:
            n = max(8, int(self.cfg.window_s * inlet.spec.fs))
            data, ts = inlet.get_data(n)
        except Exception as e:  # noqa: BLE001 - a StreamMismatchError raised by the inlet
            return self._set(Fault("mismatch", str(e)))
        if inlet.in_dropout:
            return self._set(Fault("dropout", f"no sample for more than {inlet.dropout_s:g} s"))
        if ts.size == 0:
            return self._set(Fault("stale", "no sample received yet"))
        age = local_clock() - float(ts[-1])
        if age > self.cfg.stale_s:
            return self._set(Fault("stale", f"the newest sample is {age:.3f} s old; allowed {self.cfg.stale_s:g} s "
                                            "([health] stale_s)"))
        return self._set(self.data_fault(data))

    def _set(self, f: Fault | None) -> Fault | None:
        if f is not None and (self.last is None or self.last.kind != f.kind):
            self.n_faults += 1
        self.last = f
        return f
