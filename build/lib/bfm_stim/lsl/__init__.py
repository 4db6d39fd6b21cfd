"""LSL bridge: loopback-safe configuration, stream conventions, ring-buffered inlet, command protocol.

Importing this package applies the machine-only liblsl configuration first (``config``); every
bfm-stim module reaches pylsl through :mod:`bfm_stim.lsl.config`. See ``docs/protocol.md`` in the repository.
"""

from __future__ import annotations

from bfm_stim.lsl.config import CONFIG_PATH, configure, local_clock, pylsl, scope  # noqa: F401  (first)
from bfm_stim.lsl.inlet import RingInlet, StreamEvent
from bfm_stim.lsl.link import CommandSender, DeviceLink
from bfm_stim.lsl.meta import (
    SignalSpec, ack_source_id, command_source_id, make_marker_info, make_signal_info, read_signal_spec,
)
from bfm_stim.lsl.protocol import (
    Ack, Command, CommandSigner, DeviceCommandGate, keygen, load_key, new_session_id,
)

__all__ = [
    "CONFIG_PATH", "configure", "scope", "local_clock", "RingInlet", "StreamEvent", "CommandSender",
    "DeviceLink", "SignalSpec", "make_signal_info", "read_signal_spec", "make_marker_info",
    "command_source_id", "ack_source_id", "Ack", "Command", "CommandSigner", "DeviceCommandGate",
    "keygen", "load_key", "new_session_id",
]
