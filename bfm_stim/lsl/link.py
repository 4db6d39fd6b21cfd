"""The two ends of the command channel over LSL.

- :class:`CommandSender` (controller): publishes signed commands on ``S.commands`` and reads
  acknowledgements from ``S.acks``.
- :class:`DeviceLink` (device): discovers command streams addressed to ``S``, passes every
  message through a :class:`~bfm_stim.lsl.protocol.DeviceCommandGate`, publishes rejections at
  once and applications when the device reports them.
"""

from __future__ import annotations

import math
import time

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import StreamError, ValidationError
from bfm_stim.lsl.config import local_clock, pylsl, seal
from bfm_stim.lsl.meta import ack_source_id, command_source_id, make_marker_info
from bfm_stim.lsl.protocol import Ack, Command, CommandSigner, DeviceCommandGate
from bfm_stim.space import Stimulus

__all__ = ["CommandSender", "DeviceLink"]

log = get_logger("lsl.link")


def _pull_strings(inlet: "pylsl.StreamInlet", timeout: float) -> list[str]:
    out: list[str] = []
    sample, _ = inlet.pull_sample(timeout=timeout)
    while sample is not None:
        out.append(sample[0])
        sample, _ = inlet.pull_sample(timeout=0.0)
    return out


class CommandSender:
    """Controller end: sign and send commands to device ``device_source_id``, read its acks.

    Args:
        device_source_id: ``source_id`` of the device's signal stream.
        key: Session key (:func:`~bfm_stim.lsl.protocol.load_key`).
        session: Session id (random by default).
        first_seq: First sequence number (resume after the last acknowledged one).
    """

    def __init__(self, device_source_id: str, key: bytes, *, session: str | None = None, first_seq: int = 1) -> None:
        self.device_source_id = device_source_id
        self.signer = CommandSigner(key, session=session, first_seq=first_seq)
        self._outlet: pylsl.StreamOutlet | None = None
        self._acks_in: pylsl.StreamInlet | None = None
        self._acks: dict[int, Ack] = {}

    @property
    def session(self) -> str:
        return self.signer.session

    @property
    def connected(self) -> bool:
        return self._outlet is not None

    def connect(self, timeout: float = 10.0) -> "CommandSender":
        """Open the command outlet, find the device's ack stream, wait until the device listens.

        Raises:
            StreamError: no ack stream or no listening device within ``timeout`` s.
        """
        if self.connected:
            raise StreamError("CommandSender is already connected; call disconnect() first")
        seal()
        t_end = time.monotonic() + timeout
        self._outlet = pylsl.StreamOutlet(make_marker_info(f"bfm-stim commands -> {self.device_source_id}",
                                                           command_source_id(self.device_source_id), kind="commands"))
        found = pylsl.resolve_byprop("source_id", ack_source_id(self.device_source_id), 1, timeout)
        if not found:
            self._outlet = None
            raise StreamError(f"no acknowledgement stream {ack_source_id(self.device_source_id)!r} within "
                              f"{timeout} s; is the device running?")
        self._acks_in = pylsl.StreamInlet(found[0], max_buflen=60, recover=True)
        self._acks_in.open_stream(timeout=max(0.1, t_end - time.monotonic()))
        if not self._outlet.wait_for_consumers(max(0.1, t_end - time.monotonic())):
            self.disconnect()
            raise StreamError(f"device {self.device_source_id!r} did not subscribe to the command stream "
                              f"within {timeout} s")
        return self

    def disconnect(self) -> "CommandSender":
        """Close both streams; returns self."""
        if self._acks_in is not None:
            self._acks_in.close_stream()
        self._outlet, self._acks_in = None, None
        return self

    def __enter__(self) -> "CommandSender":
        return self if self.connected else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _push(self, text: str) -> None:
        if self._outlet is None:
            raise StreamError("CommandSender is not connected; call connect() first")
        self._outlet.push_sample([text])

    def send(self, stim: Stimulus, apply_at: float | None = None, *, lead_s: float = 0.0) -> int:
        """Send a stimulate command; returns its sequence number.

        Args:
            stim: The stimulus (the device checks it again with its own space).
            apply_at: LSL time to apply it, s; default ``local_clock() + lead_s``.
            lead_s: Delay from now when ``apply_at`` is not given, s.
        """
        if apply_at is None:
            if not math.isfinite(lead_s) or lead_s < 0:
                raise ValidationError("lead_s", lead_s, "a finite delay >= 0 s")
            apply_at = local_clock() + lead_s
        seq, text = self.signer.stimulate(stim, apply_at)
        self._push(text)
        return seq

    def stop(self) -> int:
        """Send a stop (applied by the device at once); returns its sequence number."""
        seq, text = self.signer.stop(local_clock())
        self._push(text)
        return seq

    def send_raw(self, text: str) -> None:
        """Push an arbitrary message (testing the device's gate)."""
        self._push(text)

    @property
    def next_seq(self) -> int:
        """The sequence number the next command will carry (log it before sending)."""
        return self.signer.next_seq

    def poll_acks(self, timeout: float = 0.0, *, keep: bool = True) -> list[Ack]:
        """Acknowledgements received since the last call (waits up to ``timeout`` s for the first).

        With ``keep=False`` they are only returned, not kept for :meth:`wait_ack` (a caller that
        tracks acknowledgements itself, e.g. ten commands a second for hours)."""
        if self._acks_in is None:
            raise StreamError("CommandSender is not connected; call connect() first")
        out = []
        for text in _pull_strings(self._acks_in, timeout):
            try:
                ack = Ack.from_json(text)
            except (ValueError, TypeError) as e:
                log.warning("unreadable ack %r: %s", text[:200], e)
                continue
            out.append(ack)
            if not keep:
                continue
            if ack.session == self.session and ack.seq is not None:
                self._acks[ack.seq] = ack  # another session's acks (a shared device) are returned, not kept
        return out

    def wait_ack(self, seq: int, timeout: float = 2.0) -> Ack:
        """The acknowledgement of command ``seq`` of this session.

        Raises:
            StreamError: none within ``timeout`` s.
        """
        t_end = time.monotonic() + timeout
        while seq not in self._acks:
            left = t_end - time.monotonic()
            if left <= 0:
                raise StreamError(f"no acknowledgement for seq={seq} within {timeout} s")
            self.poll_acks(timeout=min(left, 0.05))
        return self._acks.pop(seq)


class DeviceLink:
    """Device end: command inlets from any controller addressing ``source_id``, one ack outlet.

    Args:
        source_id: The device's signal-stream ``source_id``.
        gate: The gate every message passes through.
        rescan_s: How often to look for new controllers, s.
    """

    def __init__(self, source_id: str, gate: DeviceCommandGate, *, rescan_s: float = 0.2) -> None:
        self.source_id, self.gate, self.rescan_s = source_id, gate, rescan_s
        self._outlet: pylsl.StreamOutlet | None = None
        self._resolver: pylsl.ContinuousResolver | None = None
        self._inlets: dict[str, pylsl.StreamInlet] = {}
        self._next_scan = 0.0
        self.n_received = 0

    def open(self) -> "DeviceLink":
        """Publish the ack stream and start discovering command streams; returns self."""
        seal()
        self._outlet = pylsl.StreamOutlet(make_marker_info(f"bfm-stim acks <- {self.source_id}",
                                                           ack_source_id(self.source_id), kind="acks"))
        self._resolver = pylsl.ContinuousResolver(pred=f"source_id='{command_source_id(self.source_id)}'")
        return self

    def close(self) -> "DeviceLink":
        """Close every stream; returns self."""
        for inlet in self._inlets.values():
            try:
                inlet.close_stream()
            except Exception:  # noqa: BLE001
                pass
        self._inlets.clear()
        self._resolver = self._outlet = None
        return self

    def _scan(self) -> None:
        assert self._resolver is not None
        for info in self._resolver.results():
            uid = info.uid()
            if uid not in self._inlets:
                inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False)
                try:
                    inlet.open_stream(timeout=1.0)
                except Exception as e:  # noqa: BLE001
                    log.info("cannot open command stream %s: %s", uid, e)
                    continue
                self._inlets[uid] = inlet
                log.info("controller connected: %s on %s", info.hostname(), info.source_id())

    def poll(self, timeout: float = 0.0) -> list[Command]:
        """Read every pending message; return accepted commands (rejections are acked here).

        Args:
            timeout: Wait up to this long for a first message, s (only with one controller).
        """
        if self._outlet is None:
            raise StreamError("DeviceLink is not open; call open() first")
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self.rescan_s
            self._scan()
        accepted: list[Command] = []
        for uid, inlet in list(self._inlets.items()):
            try:
                texts = _pull_strings(inlet, timeout if len(self._inlets) == 1 else 0.0)
            except Exception:  # noqa: BLE001 - LostError: that controller went away
                log.info("controller %s went away", uid)
                del self._inlets[uid]
                continue
            for text in texts:
                self.n_received += 1
                cmd, ack = self.gate.process(text)
                if cmd is not None:
                    accepted.append(cmd)
                elif ack is not None:
                    self.send_ack(ack)
        if not self._inlets and timeout > 0:
            time.sleep(min(timeout, 0.01))
        return accepted

    @property
    def n_controllers(self) -> int:
        return len(self._inlets)

    def send_ack(self, ack: Ack) -> None:
        """Publish one acknowledgement."""
        if self._outlet is None:
            raise StreamError("DeviceLink is not open; call open() first")
        self._outlet.push_sample([ack.to_json()])

    def ack_applied(self, cmd: Command, applied_at: float, *, side_effect: float | None = None) -> None:
        """Acknowledge that ``cmd`` took effect at LSL time ``applied_at`` (first sample under it),
        with the side-effect severity in [0, 1] the device assessed for it, if any."""
        self.send_ack(Ack(status="applied", session=cmd.session, seq=cmd.seq, action=cmd.action,
                          applied_at=float(applied_at), received_at=local_clock(),
                          side_effect=None if side_effect is None else float(side_effect)))

    def ack_superseded(self, cmd: Command, by: Command) -> None:
        """Acknowledge that a scheduled ``cmd`` was cancelled by the stop ``by``."""
        self.send_ack(Ack(status="rejected", session=cmd.session, seq=cmd.seq, action=cmd.action,
                          reason="superseded", detail=f"cancelled by stop seq={by.seq}", received_at=local_clock()))
