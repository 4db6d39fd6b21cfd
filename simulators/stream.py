"""Serve a synthetic patient as an LSL device.

The device publishes its channels in real time (chunks of at most 10 ms of signal; ``speed``
> 1 runs faster than real time for tests), takes signed stimulation commands from any
controller (``bfm_stim.lsl.link.DeviceLink`` + ``DeviceCommandGate``), applies each accepted one
at the sample its ``apply_at`` falls on, and acknowledges it with the time of application.
SIGINT/SIGTERM stop it cleanly.

    python -m simulators.stream --patient bg-beta-v0 --seed 3 --key-file session.key
    python -m simulators.stream --synthetic 64 --key-file session.key --counter   # cheap source
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
from typing import Any, Protocol, Sequence

import numpy as np

from bfm_stim._logging import get_logger, log_to_stderr
from bfm_stim.exceptions import ValidationError
from bfm_stim.lsl.config import SCOPES, configure, local_clock, pylsl
from bfm_stim.lsl.link import DeviceLink
from bfm_stim.lsl.meta import COUNTER_MODULO, SignalSpec, make_signal_info
from bfm_stim.lsl.protocol import Command, DeviceCommandGate, load_key
from bfm_stim.space import Contact, Stimulus, StimulusSpace

__all__ = ["Source", "SyntheticSource", "StreamServer", "serve", "main"]

log = get_logger("simulators.stream")


class Source(Protocol):
    """What a device serves: the ``simulators`` Patient interface."""

    fs: float
    n_channels: int
    channel_names: Sequence[str]

    def advance(self, n_samples: int) -> np.ndarray: ...  # (n_channels, n_samples) µV
    def start_stimulation(self, stim: Stimulus) -> None: ...
    def stop_stimulation(self) -> None: ...
    def stimulus_space(self) -> StimulusSpace: ...


class SyntheticSource:
    """A cheap source (no simulation): per-channel sinusoids plus noise, µV.

    A stimulus adds a sinusoid at its frequency with amplitude ``5 µV/mA × amplitude_ma`` (or
    ``5 µV × level`` for sensory stimuli) until it ends or is stopped. Used for soak tests and
    latency benchmarks where the physics does not matter.

    Args:
        n_channels: Number of channels.
        fs: Sampling rate, Hz.
        seed: Random seed (phases, noise).
    """

    def __init__(self, n_channels: int = 64, fs: float = 1000.0, seed: int = 0) -> None:
        if not isinstance(n_channels, int) or n_channels < 1:
            raise ValidationError("n_channels", n_channels, "an integer >= 1")
        if not (math.isfinite(fs) and fs > 0):
            raise ValidationError("fs", fs, "a finite rate > 0 Hz")
        self.fs, self.n_channels = float(fs), n_channels
        self.channel_names = tuple(f"ch{i}" for i in range(n_channels))
        self.channel_types = ("EEG",) * n_channels
        self.channel_units = ("microvolts",) * n_channels
        ang = np.linspace(0, 2 * np.pi, n_channels, endpoint=False)
        self.channel_positions = np.stack([0.08 * np.cos(ang), 0.08 * np.sin(ang), np.full(n_channels, 0.05)], 1)
        rng = np.random.default_rng(seed)
        self._freq = rng.uniform(4.0, 30.0, (n_channels, 1))
        self._phase = rng.uniform(0, 2 * np.pi, (n_channels, 1))
        self._rng = rng
        self._t = 0
        self._stim: Stimulus | None = None
        self._stim_end = 0

    def stimulus_space(self) -> StimulusSpace:
        return StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))])

    def start_stimulation(self, stim: Stimulus) -> None:
        self.stimulus_space().check(stim)
        self._stim, self._stim_end = stim, self._t + int(round(stim.duration_s * self.fs))

    def stop_stimulation(self) -> None:
        self._stim = None

    def advance(self, n_samples: int) -> np.ndarray:
        t = (self._t + np.arange(n_samples)) / self.fs
        x = 10.0 * np.sin(2 * np.pi * self._freq * t + self._phase) + self._rng.normal(0, 1.0, (self.n_channels, n_samples))
        s = self._stim
        if s is not None and not s.is_off:
            on = (self._t + np.arange(n_samples)) < self._stim_end
            gain = 5.0 * (s.amplitude_ma if s.kind == "electrical" else s.level)
            x += on * gain * np.sin(2 * np.pi * s.frequency_hz * t)
        self._t += n_samples
        return x.astype(np.float32)


def spec_for(source: Any, *, source_id: str, name: str, counter: bool, speed: float,
             acquisition: dict[str, str] | None = None) -> SignalSpec:
    """The :class:`SignalSpec` of a source (Patient-like attributes)."""
    n = int(source.n_channels)
    return SignalSpec(
        name=name, source_id=source_id, fs=float(source.fs), ch_names=tuple(source.channel_names),
        ch_types=tuple(getattr(source, "channel_types", ()) or ()),
        units=tuple(getattr(source, "channel_units", ()) or ()),
        positions=getattr(source, "channel_positions", None) if getattr(source, "channel_positions", None) is not None
        else np.full((n, 3), np.nan),
        counter=counter, speed=speed, acquisition=acquisition or {},
    )


class StreamServer:
    """Publish a source on LSL and apply the commands its gate accepts.

    Args:
        source: The device (a ``simulators`` Patient, :class:`SyntheticSource`, a recording player).
        source_id: Stable ``source_id`` of the signal stream (commands are addressed to it).
        key: Session key shared with controllers.
        name: Stream name (default: the ``source_id``).
        speed: Real-time factor (> 1: faster than real time).
        chunk_s: Signal per pushed chunk, s (at most 0.01).
        counter: Append a sample-counter channel (continuity checks).
        acquisition: Extra ``desc/acquisition`` fields.
        max_age_s: Gate staleness tolerance, s.
        max_lead_s: Gate's furthest accepted ``apply_at`` ahead, s.
        duration_s: Stop after this much signal, s (``None``: until stopped).
        space: The gate's stimulus space (default ``source.stimulus_space()``).
    """

    def __init__(self, source: Source, *, source_id: str, key: bytes, name: str | None = None, speed: float = 1.0,
                 chunk_s: float = 0.01, counter: bool = False, acquisition: dict[str, str] | None = None,
                 max_age_s: float = 0.5, max_lead_s: float = 10.0, duration_s: float | None = None,
                 space: StimulusSpace | None = None) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValidationError("speed", speed, "a finite factor > 0")
        if not (math.isfinite(chunk_s) and 0 < chunk_s <= 0.01):
            raise ValidationError("chunk_s", chunk_s, "(0, 0.01] s")
        self.source = source
        self.spec = spec_for(source, source_id=source_id, name=name or source_id, counter=counter, speed=speed,
                             acquisition=acquisition)
        self.gate = DeviceCommandGate(key, space or source.stimulus_space(), max_age_s=max_age_s,
                                      max_lead_s=max_lead_s)
        self.step = max(1, int(math.floor(chunk_s * self.spec.fs + 1e-9)))
        self.period = 1.0 / (self.spec.fs * speed)
        self.duration_s = duration_s
        self.stop_event = threading.Event()
        #: Set by the SIGINT/SIGTERM handler: a plain flag, because a handler that calls
        #: ``stop_event.set()`` while the main thread is inside ``stop_event.wait()`` deadlocks on the
        #: event's own lock (seen: ``serve`` behind schedule never exiting on SIGTERM).
        self.signalled = False
        self._thread: threading.Thread | None = None
        self._pending: list[tuple[int, Command]] = []  # (apply sample, command), sorted
        self._stim_end: int | None = None
        self.n_samples = 0
        self.applied: list[tuple[Command, float]] = []
        self.error: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "StreamServer":
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self._run_safe, name=f"StreamServer[{self.spec.source_id}]", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "StreamServer":
        """Stop serving and close the streams; returns self."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        return self

    def __enter__(self) -> "StreamServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_safe(self) -> None:
        try:
            self.run()
        except BaseException as e:  # noqa: BLE001 - reported through .error
            self.error = e
            log.exception("stream server failed")

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> int:
        """Serve until :attr:`stop_event` is set or ``duration_s`` is reached; returns samples sent."""
        outlet = pylsl.StreamOutlet(make_signal_info(self.spec), chunk_size=0, max_buffered=60)
        link = DeviceLink(self.spec.source_id, self.gate).open()
        limit = None if self.duration_s is None else int(round(self.duration_s * self.spec.fs))
        log.info("serving %s: %d ch at %g Hz (speed %g)", self.spec.source_id, self.spec.n_channels,
                 self.spec.fs, self.spec.speed)
        self.t0 = t0 = local_clock()
        k = 0
        try:
            while not (self.signalled or self.stop_event.is_set()) and (limit is None or k < limit):
                self._schedule(link.poll(0.0), link, k)
                due = int((local_clock() - t0) / self.period)
                if due < k + self.step:
                    wait = t0 + (k + self.step) * self.period - local_clock()
                    self.stop_event.wait(min(max(wait, 0.0), 0.002))
                    continue
                n = self.step if limit is None else min(self.step, limit - k)
                data = self._produce(k, n, link)
                if self.spec.counter:
                    data = np.vstack([data, ((k + np.arange(n)) % COUNTER_MODULO)[None].astype(np.float32)])
                outlet.push_chunk(np.ascontiguousarray(data.T, np.float32), timestamp=list(t0 + (k + np.arange(n)) * self.period))
                k += n
                self.n_samples = k
        finally:
            link.close()
            del outlet
            log.info("stopped %s after %d samples%s", self.spec.source_id, k, " (signal)" if self.signalled else "")
        return k

    def _schedule(self, cmds: list[Command], link: DeviceLink, k: int) -> None:
        for cmd in cmds:
            if cmd.action == "stop":  # a stop always wins: now, and cancels what is scheduled
                for _, pending in self._pending:
                    link.ack_superseded(pending, cmd)
                self._pending.clear()
                self.source.stop_stimulation()
                self._stim_end = None
                t = self.t0 + k * self.period
                self.applied.append((cmd, t))
                link.ack_applied(cmd, t)
                continue
            idx = max(k, int(math.ceil((cmd.apply_at - self.t0) / self.period - 1e-9)))
            self._pending.append((idx, cmd))
            self._pending.sort(key=lambda p: (p[0], p[1].seq))

    def _produce(self, k: int, n: int, link: DeviceLink) -> np.ndarray:
        """Samples ``[k, k + n)``, splitting the advance where commands take effect or end."""
        parts, pos = [], k
        while True:
            cuts = [i for i, _ in self._pending[:1]] + ([self._stim_end] if self._stim_end is not None else [])
            nxt = min([c for c in cuts if c < k + n] or [k + n])
            if nxt > pos:
                parts.append(self.source.advance(nxt - pos))
                pos = nxt
            if pos >= k + n:
                break
            if self._stim_end is not None and self._stim_end <= pos:
                self.source.stop_stimulation()
                self._stim_end = None
            if self._pending and self._pending[0][0] <= pos:
                _, cmd = self._pending.pop(0)
                self._apply(cmd, pos, link)
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def _apply(self, cmd: Command, pos: int, link: DeviceLink) -> None:
        stim = cmd.stimulus
        assert stim is not None  # stops are handled in _schedule
        try:
            self.source.start_stimulation(stim)
        except Exception as e:  # noqa: BLE001 - the source refused: report, never crash
            from bfm_stim.lsl.protocol import Ack

            link.send_ack(Ack(status="rejected", session=cmd.session, seq=cmd.seq, action=cmd.action,
                              reason="unsafe" if isinstance(e, ValueError) else "internal",
                              detail=f"device refused: {e}"[:300], received_at=local_clock()))
            return
        self._stim_end = pos + max(1, int(round(stim.duration_s * self.spec.fs)))
        t = self.t0 + pos * self.period
        self.applied.append((cmd, t))
        # A simulated patient reports its side effect of the train (a real device: a patient's
        # report or an EMG threshold); sources without one report nothing.
        report = getattr(self.source, "side_effect", None)
        severity = float(report(stim, trial=cmd.seq)[0]) if callable(report) else None
        link.ack_applied(cmd, t, side_effect=severity)


def _install_signal_handlers(server: "StreamServer") -> None:
    """SIGINT/SIGTERM stop ``server`` (main thread only). The handler only sets a flag: no lock, no
    logging, nothing that can block inside a handler; the loop sees it within one chunk."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        server.signalled = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def serve(patient_id: str | None, seed: int, key_file: str, speed: float = 1.0, *, source_id: str | None = None,
          counter: bool = False, duration_s: float | None = None, synthetic_channels: int | None = None,
          fs: float = 1000.0, max_age_s: float = 0.5, stop_event: threading.Event | None = None,
          space_kind: str = "electrical") -> int:
    """Serve ``simulators.make(patient_id, seed)`` (or a :class:`SyntheticSource`) until stopped.

    Args:
        patient_id: Registered patient id, e.g. ``"bg-beta-v0"``; ``None`` with ``synthetic_channels``.
        seed: Patient seed.
        key_file: Session key file (``bfm-stim keygen``).
        speed: Real-time factor.
        source_id: Default ``bfm-sim-<patient>-<seed>``.
        counter: Append a sample-counter channel.
        duration_s: Stop after this much signal, s.
        synthetic_channels: Serve a cheap :class:`SyntheticSource` with this many channels.
        fs: Sampling rate of the synthetic source, Hz.
        max_age_s: Gate staleness tolerance, s.
        stop_event: Set it to stop (SIGINT/SIGTERM also stop when run in the main thread).
        space_kind: ``"electrical"`` (the DBS lead) or ``"sensory"`` (flicker and click trains).

    Returns:
        Number of samples published.
    """
    key = load_key(key_file)
    if synthetic_channels is not None:
        source: Any = SyntheticSource(synthetic_channels, fs, seed)
        pid = f"synthetic{synthetic_channels}"
    else:
        if not patient_id:
            raise ValidationError("patient_id", patient_id, "a registered patient id (simulators.list_patients())")
        import simulators

        source, pid = simulators.make(patient_id, seed=seed), patient_id
    # A device accepts trains of any duration its limits allow (searches fix them at 1 s; continuous
    # control sends short trains, reissued every period); charge and amplitude limits are the patient's.
    space = source.stimulus_space(space_kind, duration_s=(0.05, 600.0)) if synthetic_channels is None else None
    server = StreamServer(source, source_id=source_id or f"bfm-sim-{pid}-{seed}", key=key, speed=speed,
                          counter=counter, duration_s=duration_s, max_age_s=max_age_s, space=space,
                          acquisition={"model": pid, "patient_id": pid, "seed": str(seed)})
    if stop_event is not None:
        server.stop_event = stop_event
    _install_signal_handlers(server)
    return server.run()


def build_parser(prog: str = "python -m simulators.stream") -> argparse.ArgumentParser:
    """The command-line options of ``simulators.stream`` (``bfm-stim serve``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--patient", help="registered patient id, e.g. bg-beta-v0")
    src.add_argument("--synthetic", type=int, metavar="N_CHANNELS", help="cheap synthetic source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key-file", required=True)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--fs", type=float, default=1000.0, help="synthetic source rate, Hz")
    p.add_argument("--source-id")
    p.add_argument("--counter", action="store_true", help="append a sample-counter channel")
    p.add_argument("--duration", type=float, help="stop after this many seconds of signal")
    p.add_argument("--max-age", type=float, default=0.5, help="command staleness tolerance, s")
    p.add_argument("--space-kind", choices=["electrical", "sensory"], default="electrical",
                   help="what the device delivers: electrical trains on the lead, or sensory (flicker, clicks)")
    p.add_argument("--lsl-scope", choices=SCOPES, default="machine")
    p.add_argument("--log-level", default=None,
                   help="DEBUG, INFO, WARNING ... (default: WARNING; under bfm-stim its -v/-q level)")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m simulators.stream") -> int:
    """``python -m simulators.stream``: serve a patient until SIGINT/SIGTERM."""
    p = build_parser(prog)
    a = p.parse_args(argv)
    log_to_stderr(a.log_level)  # one handler, on the package logger: no second copy of each line
    configure(a.lsl_scope)
    serve(a.patient, a.seed, a.key_file, a.speed, source_id=a.source_id, counter=a.counter, duration_s=a.duration,
          synthetic_channels=a.synthetic, fs=a.fs, max_age_s=a.max_age, space_kind=a.space_kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
