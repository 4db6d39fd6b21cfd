"""Stream conventions: signal streams with XDF channel metadata, command and acknowledgement streams.

A device publishes one signal stream (``source_id = S``) and one acknowledgement stream
(``source_id = S + ".acks"``); the controller publishes one command stream
(``source_id = S + ".commands"``). See ``docs/protocol.md`` in the repository for the full description.

Channel metadata follows the XDF meta-data conventions: ``desc/channels/channel`` with
``label``, ``type``, ``unit`` and ``location/X,Y,Z`` (millimetres), and ``desc/acquisition``
with ``manufacturer``, ``model`` and bfm-stim fields (``speed``, ``counter_channel``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bfm_stim.exceptions import StreamError, ValidationError
from bfm_stim.lsl.config import pylsl, seal

__all__ = [
    "SIGNAL_TYPE", "COMMAND_TYPE", "ACK_TYPE", "COUNTER_LABEL", "SignalSpec",
    "command_source_id", "ack_source_id", "make_signal_info", "read_signal_spec", "make_marker_info",
]

SIGNAL_TYPE = "EEG"
"""XDF content type of a signal stream (all neural voltage channels)."""
COMMAND_TYPE = "Markers"
ACK_TYPE = "Markers"
COUNTER_LABEL = "counter"
"""Label of the optional sample-counter channel (type ``MISC``, unit ``samples``, modulo 2**24)."""
COUNTER_MODULO = 1 << 24  # exact in float32


def command_source_id(device_source_id: str) -> str:
    """``source_id`` of the command stream addressed to the device ``device_source_id``."""
    return f"{device_source_id}.commands"


def ack_source_id(device_source_id: str) -> str:
    """``source_id`` of the acknowledgement stream of the device ``device_source_id``."""
    return f"{device_source_id}.acks"


@dataclass(frozen=True)
class SignalSpec:
    """What a signal stream carries.

    Args:
        name: Stream name.
        source_id: Stable, unique id of the device (reconnection and routing key).
        fs: Nominal sampling rate, Hz.
        ch_names: Channel labels (without the counter channel).
        ch_types: Channel types (e.g. ``"EEG"``, ``"SEEG"``, ``"DBS"``), one per channel.
        units: Channel units (``"microvolts"`` for µV), one per channel.
        positions: Electrode positions, shape ``(n_channels, 3)``, m; NaN where unknown.
        content_type: XDF content type of the stream.
        counter: Whether a sample-counter channel is appended as the last channel.
        acquisition: Extra ``desc/acquisition`` fields (strings), e.g. patient id, seed.
        speed: Samples are produced ``speed`` times faster than real time (tests); timestamps
            advance by ``1 / (fs * speed)`` s per sample.
    """

    name: str
    source_id: str
    fs: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    positions: np.ndarray | None = None
    content_type: str = SIGNAL_TYPE
    counter: bool = False
    acquisition: Mapping[str, str] = field(default_factory=dict)
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.source_id, str) or not self.source_id:
            raise ValidationError("source_id", self.source_id, "a non-empty string")
        if not (isinstance(self.fs, (int, float)) and np.isfinite(self.fs) and self.fs > 0):
            raise ValidationError("fs", self.fs, "a finite rate > 0 Hz")
        if not (isinstance(self.speed, (int, float)) and np.isfinite(self.speed) and self.speed > 0):
            raise ValidationError("speed", self.speed, "a finite factor > 0")
        n = len(self.ch_names)
        if n == 0:
            raise ValidationError("ch_names", self.ch_names, "at least one channel")
        object.__setattr__(self, "ch_names", tuple(str(c) for c in self.ch_names))
        for name, default in (("ch_types", "EEG"), ("units", "microvolts")):
            v = tuple(getattr(self, name)) or (default,) * n
            if len(v) != n:
                raise ValidationError(name, len(v), f"{n} entries (one per channel)")
            object.__setattr__(self, name, tuple(str(x) for x in v))
        pos = np.full((n, 3), np.nan) if self.positions is None else np.asarray(self.positions, float)
        if pos.shape != (n, 3):
            raise ValidationError("positions", pos.shape, f"shape ({n}, 3) in m")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "acquisition", {str(k): str(v) for k, v in dict(self.acquisition).items()})

    @property
    def n_channels(self) -> int:
        """Number of signal channels (without the counter channel)."""
        return len(self.ch_names)

    @property
    def n_stream_channels(self) -> int:
        """Number of channels on the wire (with the counter channel, if any)."""
        return self.n_channels + int(self.counter)


def make_signal_info(spec: SignalSpec) -> "pylsl.StreamInfo":
    """A float32 ``StreamInfo`` for ``spec`` with XDF channel and acquisition metadata."""
    seal()
    info = pylsl.StreamInfo(spec.name, spec.content_type, spec.n_stream_channels, float(spec.fs),
                            "float32", spec.source_id)
    desc = info.desc()
    chans = desc.append_child("channels")
    rows = list(zip(spec.ch_names, spec.ch_types, spec.units, spec.positions))
    if spec.counter:
        rows.append((COUNTER_LABEL, "MISC", "samples", np.full(3, np.nan)))
    for label, typ, unit, pos in rows:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("type", typ)
        ch.append_child_value("unit", unit)
        if np.all(np.isfinite(pos)):
            loc = ch.append_child("location")
            for axis, v in zip("XYZ", pos):
                loc.append_child_value(axis, repr(float(v) * 1000.0))  # XDF: mm
    acq = desc.append_child("acquisition")
    acq.append_child_value("manufacturer", "bfm-stim")
    acq.append_child_value("model", spec.acquisition.get("model", "synthetic"))
    acq.append_child_value("speed", repr(float(spec.speed)))
    acq.append_child_value("counter_channel", str(spec.n_channels) if spec.counter else "")
    for k, v in spec.acquisition.items():
        if k != "model":
            acq.append_child_value(k, v)
    return info


def read_signal_spec(info: "pylsl.StreamInfo") -> SignalSpec:
    """Parse the metadata of a (full) ``StreamInfo`` back into a :class:`SignalSpec`.

    Streams from other software with no ``desc/channels`` get labels ``ch0, ch1, ...``.
    """
    n_total = info.channel_count()
    labels, types, units, pos = [], [], [], []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty() and len(labels) < n_total:
        labels.append(ch.child_value("label") or f"ch{len(labels)}")
        types.append(ch.child_value("type") or "EEG")
        units.append(ch.child_value("unit") or "microvolts")
        loc = ch.child("location")
        xyz = [loc.child_value(a) for a in "XYZ"] if not loc.empty() else []
        try:
            pos.append([float(v) / 1000.0 for v in xyz] if len(xyz) == 3 and all(xyz) else [np.nan] * 3)
        except ValueError:
            pos.append([np.nan] * 3)
        ch = ch.next_sibling("channel")
    if len(labels) != n_total:  # no or partial channel metadata
        labels = [f"ch{i}" for i in range(n_total)]
        types, units, pos = ["EEG"] * n_total, ["microvolts"] * n_total, [[np.nan] * 3] * n_total
    acq = info.desc().child("acquisition")
    fields: dict[str, str] = {}
    if not acq.empty():
        c = acq.first_child()
        while not c.empty():
            fields[c.name()] = c.child_value()
            c = c.next_sibling()
    counter = fields.pop("counter_channel", "") == str(n_total - 1) or (labels[-1] == COUNTER_LABEL and n_total > 1)
    try:
        speed = float(fields.pop("speed", "1") or 1.0)
    except ValueError:
        raise StreamError(f"stream {info.source_id()!r}: desc/acquisition/speed is not a number") from None
    fields.pop("manufacturer", None)
    k = n_total - int(counter)
    return SignalSpec(
        name=info.name(), source_id=info.source_id() or info.uid(), fs=info.nominal_srate(),
        ch_names=tuple(labels[:k]), ch_types=tuple(types[:k]), units=tuple(units[:k]),
        positions=np.asarray(pos[:k], float).reshape(k, 3), content_type=info.type(),
        counter=counter, acquisition=fields, speed=speed,
    )


def make_marker_info(name: str, source_id: str, *, kind: str) -> "pylsl.StreamInfo":
    """An irregular-rate, one-channel string ``Markers`` stream carrying JSON messages.

    Args:
        name: Stream name.
        source_id: ``command_source_id(S)`` or ``ack_source_id(S)``.
        kind: ``"commands"`` or ``"acks"`` (written to ``desc/bfm_stim/role``).
    """
    if kind not in ("commands", "acks"):
        raise ValidationError("kind", kind, "'commands' or 'acks'")
    seal()
    info = pylsl.StreamInfo(name, COMMAND_TYPE, 1, pylsl.IRREGULAR_RATE, "string", source_id)
    d = info.desc().append_child("bfm_stim")
    d.append_child_value("role", kind)
    d.append_child_value("encoding", "json")
    d.append_child_value("protocol_version", "1")
    return info

