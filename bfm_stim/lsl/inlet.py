"""A ring-buffered LSL inlet: one background worker, one lock, gap/dropout detection, reconnection.

Lifecycle (mne-lsl style)::

    inlet = RingInlet("bfm-sim-bg-beta-v0-3", buffer_s=10).connect()
    data, ts = inlet.get_data(500)      # (n_channels, 500) µV, (500,) s in the local LSL clock
    new, ts = inlet.pull_new()          # samples that arrived since the last pull_new
    inlet.disconnect()

or ``with RingInlet(...) as inlet: ...``. The worker pulls chunks as they arrive (no added
latency), checks continuity (the counter channel when the stream has one, timestamps
otherwise), reports a dropout when no sample came for ``dropout_s``, and reconnects by
``source_id`` when the source comes back (a restarted device is a new outlet with the same
``source_id``). A returning stream with another channel count or rate is refused with
:class:`StreamMismatchError`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import StreamError, StreamMismatchError, ValidationError
from bfm_stim.lsl.config import local_clock, pylsl, seal
from bfm_stim.lsl.meta import COUNTER_MODULO, SignalSpec, read_signal_spec

__all__ = ["RingInlet", "StreamEvent"]

log = get_logger("lsl.inlet")


@dataclass(frozen=True)
class StreamEvent:
    """Something the inlet noticed.

    ``kind`` is one of ``"connected"``, ``"gap"`` (``n_missing`` samples lost), ``"dropout"``
    (no sample for ``dropout_s``), ``"lost"`` (the source closed), ``"recovered"``,
    ``"mismatch"`` (a stream with the wrong shape appeared) or ``"overrun"`` (``pull_new``
    was called too rarely; ``n_missing`` samples overwritten). ``time`` is local LSL time, s.
    """

    kind: str
    time: float
    detail: str = ""
    n_missing: int = 0


class RingInlet:
    """Ring-buffered inlet on one signal stream.

    Args:
        source_id: ``source_id`` of the stream (recommended: makes reconnection possible).
        name: Stream name, if no ``source_id`` is given.
        stream_type: Stream type, if neither ``source_id`` nor ``name`` is given.
        n_channels: Expected number of signal channels (without a counter channel); checked.
        fs: Expected nominal rate, Hz; checked.
        buffer_s: Ring length, s of signal.
        dropout_s: Silence after which a dropout is reported, s.
        gap_tolerance: Timestamp steps longer than this many sample periods count as a gap
            (streams without a counter channel).
        clocksync: Add the inlet's ``time_correction`` to timestamps (local clock).
        on_event: Called from the worker thread with each :class:`StreamEvent`.
    """

    def __init__(self, source_id: str | None = None, *, name: str | None = None, stream_type: str | None = None,
                 n_channels: int | None = None, fs: float | None = None, buffer_s: float = 30.0,
                 dropout_s: float = 0.2, gap_tolerance: float = 1.5, clocksync: bool = True,
                 on_event: Callable[[StreamEvent], None] | None = None) -> None:
        if not (source_id or name or stream_type):
            raise ValidationError("source_id", source_id, "a source_id, name or stream_type to resolve")
        if not (np.isfinite(buffer_s) and buffer_s > 0):
            raise ValidationError("buffer_s", buffer_s, "a finite duration > 0 s")
        if not (np.isfinite(dropout_s) and dropout_s > 0):
            raise ValidationError("dropout_s", dropout_s, "a finite duration > 0 s")
        self._pred = (f"source_id='{source_id}'" if source_id else f"name='{name}'" if name
                      else f"type='{stream_type}'")
        self.expected_channels, self.expected_fs = n_channels, fs
        self.buffer_s, self.dropout_s, self.gap_tolerance = float(buffer_s), float(dropout_s), float(gap_tolerance)
        self.clocksync, self.on_event = clocksync, on_event
        self._lock = threading.Condition(threading.Lock())
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._inlet: pylsl.StreamInlet | None = None
        self.spec: SignalSpec | None = None
        self._uid = ""
        self._flush_before: float | None = None
        self._resolver: pylsl.ContinuousResolver | None = None
        self._error: StreamError | None = None
        self._events: list[StreamEvent] = []
        self.time_correction = 0.0
        self.in_dropout = False
        self.n_received = 0
        self.n_missing = 0

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` was called and :meth:`disconnect` not yet."""
        return self._worker is not None

    def connect(self, timeout: float = 10.0) -> "RingInlet":
        """Resolve the stream, open it (flushing old samples) and start the worker; returns self.

        Raises:
            StreamError: No such stream within ``timeout`` s, or already connected.
            StreamMismatchError: The stream's channel count or rate is not the expected one.
        """
        if self.connected:
            raise StreamError("RingInlet is already connected; call disconnect() first")
        info = self._resolve(timeout)
        if info is None:
            raise StreamError(f"no LSL stream with {self._pred} within {timeout} s (scope: machine unless "
                              "configured otherwise); is the device running?")
        self._open(info, timeout)
        spec = self.spec
        assert spec is not None  # set by _open
        if self.expected_channels is not None and spec.n_channels != self.expected_channels:
            self._close_inlet()
            raise StreamMismatchError(f"stream {spec.source_id!r} has {spec.n_channels} channels; "
                                      f"expected n_channels={self.expected_channels}")
        if self.expected_fs is not None and abs(spec.fs - self.expected_fs) > 1e-9:
            self._close_inlet()
            raise StreamMismatchError(f"stream {spec.source_id!r} has fs={spec.fs} Hz; expected fs={self.expected_fs} Hz")
        self.expected_channels, self.expected_fs = spec.n_channels, spec.fs
        cap = max(1, int(round(self.buffer_s * spec.fs * spec.speed)))
        self._buf = np.zeros((spec.n_stream_channels, cap), np.float32)
        self._ts = np.zeros(cap, np.float64)
        self._scratch = np.zeros((1024, spec.n_stream_channels), np.float32)
        self._write = 0  # total samples written
        self._read = 0  # total samples handed out by pull_new
        self._last_counter: int | None = None
        self._last_ts: float | None = None
        self._stop.clear()
        self._resolver = pylsl.ContinuousResolver(pred=self._pred, forget_after=2.0)
        self._error = None
        self._events.clear()
        self._emit("connected", f"{spec.name} ({spec.source_id}): {spec.n_channels} ch at {spec.fs} Hz")
        self._worker = threading.Thread(target=self._run, name=f"RingInlet[{spec.source_id}]", daemon=True)
        self._worker.start()
        return self

    def disconnect(self) -> "RingInlet":
        """Stop the worker and close the stream; returns self."""
        if not self.connected:
            raise StreamError("RingInlet is not connected; call connect() first")
        self._stop.set()
        assert self._worker is not None
        self._worker.join(timeout=5.0)
        self._worker = None
        self._resolver = None
        self._close_inlet()
        return self

    def __enter__(self) -> "RingInlet":
        return self if self.connected else self.connect()

    def __exit__(self, *exc: object) -> None:
        if self.connected:
            self.disconnect()

    def __del__(self) -> None:
        try:
            if self.connected:
                self._stop.set()
        except Exception:  # noqa: BLE001
            pass

    # --- data access ----------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.connected:
            raise StreamError("RingInlet is not connected; call connect() first")
        if self._error is not None:
            raise self._error

    @property
    def ch_names(self) -> tuple[str, ...]:
        self._check()
        return self.spec.ch_names  # type: ignore[union-attr]

    @property
    def n_available(self) -> int:
        """Samples in the ring (at most its capacity)."""
        return min(self._write, self._ts.size) if self.connected else 0

    def _slice(self, start: int, stop: int, counter: bool) -> tuple[np.ndarray, np.ndarray]:
        cap = self._ts.size
        idx = np.arange(start, stop) % cap
        rows = slice(None) if counter else slice(0, self.spec.n_channels)  # type: ignore[union-attr]
        return self._buf[rows][:, idx], self._ts[idx]

    def get_data(self, n: int | None = None, *, counter: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The latest ``n`` samples (all in the ring if ``None``); does not consume.

        Returns:
            ``(data, timestamps)``: data ``(n_channels, n)`` float32 (plus the counter row when
            ``counter``), timestamps ``(n,)`` s. Fewer than ``n`` if fewer have arrived.

        Raises:
            StreamMismatchError: the stream came back with another shape.
        """
        self._check()
        with self._lock:
            k = self.n_available if n is None else min(int(n), self.n_available)
            if n is not None and n > self._ts.size:
                raise ValidationError("n", n, f"at most the ring capacity {self._ts.size} samples (buffer_s)")
            return self._slice(self._write - k, self._write, counter)

    def pull_new(self, *, counter: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Samples that arrived since the previous call: ``(data (n_channels, n), timestamps (n,))``."""
        self._check()
        with self._lock:
            start = self._read
            if self._write - start > self._ts.size:
                lost = self._write - start - self._ts.size
                self._emit("overrun", f"{lost} samples overwritten before pull_new()", lost)
                start = self._write - self._ts.size
            self._read = self._write
            return self._slice(start, self._write, counter)

    def wait_new(self, n: int = 1, timeout: float = 1.0) -> bool:
        """Block until at least ``n`` unread samples are available or ``timeout`` s passed."""
        self._check()
        with self._lock:
            return self._lock.wait_for(lambda: self._write - self._read >= n or self._error is not None,
                                       timeout=timeout)

    def events(self) -> list[StreamEvent]:
        """Events since the previous call (oldest first)."""
        with self._lock:
            out, self._events = self._events, []
        return out

    # --- worker ---------------------------------------------------------------------------------
    def _emit(self, kind: str, detail: str = "", n_missing: int = 0) -> None:
        ev = StreamEvent(kind, local_clock(), detail, n_missing)
        self._events.append(ev)
        del self._events[:-1000]
        (log.warning if kind in ("gap", "dropout", "lost", "mismatch", "overrun") else log.info)(
            "%s: %s", kind, detail)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001
                log.exception("on_event callback failed")

    def _resolve(self, timeout: float) -> "pylsl.StreamInfo | None":
        seal()
        found = pylsl.resolve_bypred(self._pred, 1, timeout)
        return found[0] if found else None

    def _open(self, info: "pylsl.StreamInfo", timeout: float) -> None:
        inlet = pylsl.StreamInlet(info, max_buflen=max(1, int(np.ceil(self.buffer_s))), recover=False)
        try:
            full = inlet.info(timeout=timeout)
            inlet.open_stream(timeout=timeout)
        except Exception as e:  # noqa: BLE001 - pylsl raises TimeoutError/LostError
            del inlet
            raise StreamError(f"could not open stream {info.source_id()!r}: {e}") from None
        inlet.flush()
        self.spec = read_signal_spec(full)
        self._uid = full.uid()
        self._inlet = inlet
        self._update_correction(timeout=min(timeout, 1.0))
        self._flush_before = local_clock() - 0.05  # backlog the outlet sends on open is dropped too

    def _close_inlet(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:  # noqa: BLE001
                pass
            del inlet

    def _update_correction(self, timeout: float = 0.2) -> None:
        if not self.clocksync or self._inlet is None:
            return
        try:
            self.time_correction = float(self._inlet.time_correction(timeout=timeout))
        except Exception:  # noqa: BLE001 - a timeout keeps the previous estimate
            pass

    def _run(self) -> None:
        last_rx = local_clock()
        next_probe = next_tc = last_rx + 5.0
        while not self._stop.is_set():
            now = local_clock()
            if self._inlet is None:
                if now >= next_probe:
                    next_probe = now + 0.1
                    self._try_reconnect()
                    last_rx = local_clock()
                else:
                    self._stop.wait(0.02)
                continue
            try:
                data, ts = self._inlet.pull_chunk(timeout=0.02, max_samples=1024, dest_obj=self._scratch,
                                                  min_samples=1, as_numpy=True)
            except Exception as e:  # noqa: BLE001 - pylsl.LostError: the source closed
                with self._lock:
                    self._emit("lost", f"source closed ({type(e).__name__}); waiting for it to return")
                    self.in_dropout = True
                    self._lock.notify_all()
                self._close_inlet()
                next_probe = local_clock() + 0.05
                continue
            now = local_clock()
            if len(ts):
                self._append(np.asarray(data).T, np.asarray(ts) + self.time_correction, now)
                last_rx = now
            elif not self.in_dropout and now - last_rx > self.dropout_s:
                with self._lock:
                    self.in_dropout = True
                    self._emit("dropout", f"no sample for {now - last_rx:.3f} s")
            if now >= next_tc:
                next_tc = now + 5.0
                self._update_correction()

    def _try_reconnect(self) -> None:
        if self._resolver is None:
            self._resolver = pylsl.ContinuousResolver(pred=self._pred, forget_after=2.0)
        fresh = [i for i in self._resolver.results() if i.uid() != self._uid]
        if not fresh:
            return
        info = fresh[0]
        spec_old = self.spec
        assert spec_old is not None
        if info.channel_count() != spec_old.n_stream_channels or abs(info.nominal_srate() - spec_old.fs) > 1e-9:
            msg = (f"stream {info.source_id()!r} came back with {info.channel_count()} channels at "
                   f"{info.nominal_srate()} Hz; expected {spec_old.n_stream_channels} channels at {spec_old.fs} Hz")
            with self._lock:
                if self._error is None:
                    self._error = StreamMismatchError(msg)
                    self._emit("mismatch", msg)
                self._lock.notify_all()
            return
        try:
            self._open(info, 1.0)
        except StreamError as e:
            log.info("reconnect failed: %s", e)
            return
        with self._lock:
            self._last_counter, self._last_ts = None, None
            self._error = None
            self.in_dropout = False
            self._emit("recovered", f"reconnected to {info.source_id()!r} (uid {self._uid})")

    def _append(self, chunk: np.ndarray, ts: np.ndarray, now: float) -> None:
        """Store one chunk ``(n_stream_channels, n)`` and check its continuity."""
        spec = self.spec
        assert spec is not None
        if self._flush_before is not None:
            keep = ts >= self._flush_before
            if not keep.any():
                return
            chunk, ts, self._flush_before = chunk[:, keep], ts[keep], None
        n = ts.size
        with self._lock:
            if self.in_dropout:
                self.in_dropout = False
                self._emit("recovered", "samples flowing again")
            missing = 0
            if spec.counter:
                c = chunk[-1].astype(np.int64)
                prev = np.concatenate(([self._last_counter], c[:-1])) if self._last_counter is not None else c[:-1]
                cur = c if self._last_counter is not None else c[1:]
                steps = (cur - prev) % COUNTER_MODULO
                missing = int(np.sum(steps[steps > 1] - 1)) if steps.size else 0
                self._last_counter = int(c[-1])
            else:
                period = 1.0 / (spec.fs * spec.speed)
                t = np.concatenate(([self._last_ts], ts)) if self._last_ts is not None else ts
                d = np.diff(t)
                big = d > self.gap_tolerance * period
                missing = int(np.sum(np.round(d[big] / period) - 1)) if big.any() else 0
                self._last_ts = float(ts[-1])
            if missing:
                self.n_missing += missing
                self._emit("gap", f"{missing} samples missing", missing)
            cap = self._ts.size
            if n >= cap:
                chunk, ts = chunk[:, -cap:], ts[-cap:]
                self._write += n - cap
                n = cap
            idx = (self._write + np.arange(n)) % cap
            self._buf[:, idx] = chunk
            self._ts[idx] = ts
            self._write += n
            self.n_received += n
            self._lock.notify_all()
