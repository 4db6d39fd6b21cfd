"""Serve a recording as a live LSL device, optionally as a digital twin.

The recording's channels and metadata are published like a patient's
(:class:`simulators.stream.StreamServer`), looping on request. Accepted stimulation commands
are gated by the same protocol and safety check; with a ``twin`` hook, the predicted response
of each applied stimulus (``twin(stimulus, n_samples) -> (n_channels, n_samples)`` µV) is added
to the played signal from the sample it takes effect on.

    python -m simulators.playback rec.fif --key-file session.key --loop --space space.toml
"""

from __future__ import annotations

import argparse
import math
import threading
from typing import Callable, Sequence

import numpy as np

from bfm_stim._logging import get_logger, log_to_stderr
from bfm_stim.exceptions import ValidationError
from bfm_stim.lsl.config import SCOPES, configure
from bfm_stim.lsl.protocol import load_key
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from simulators.stream import StreamServer, _install_signal_handlers

__all__ = ["Twin", "RecordingSource", "DampedOscillationTwin", "serve_recording", "main"]

log = get_logger("simulators.playback")

Twin = Callable[[Stimulus, int], np.ndarray]
"""``twin(stimulus, n_samples) -> added response (n_channels, n_samples)`` µV."""


class RecordingSource:
    """A recording played sample by sample, with an optional twin response on stimulation.

    Args:
        rec: A :class:`bfm_stim.recording.Recording` (or anything with ``data``, ``fs``,
            ``ch_names``, ``ch_types``, ``units``, ``positions``).
        space: Stimulus space the commands are checked against.
        loop: Start over at the end (otherwise the device stops at the end).
        twin: Response model; ``None`` plays the recording unchanged whatever the commands.
        response_s: Length of each twin response, s (default: the stimulus duration + 1 s).
    """

    def __init__(self, rec: object, space: StimulusSpace, *, loop: bool = False, twin: Twin | None = None,
                 response_s: float | None = None) -> None:
        data = np.asarray(getattr(rec, "data"), np.float32)
        if data.ndim != 2 or data.shape[1] == 0:
            raise ValidationError("recording.data", data.shape, "(n_channels, n_samples) with n_samples > 0")
        self._data, self.fs = data, float(getattr(rec, "fs"))
        self.n_channels, self.n_samples = data.shape
        self.channel_names = tuple(getattr(rec, "ch_names"))
        self.channel_types = tuple(str(t).upper() for t in (getattr(rec, "ch_types", None) or ()))
        self.channel_units = tuple(getattr(rec, "units", None) or ())
        self.channel_positions = getattr(rec, "positions", None)
        self._space, self.loop, self.twin, self.response_s = space, loop, twin, response_s
        self._pos = 0
        self._resp: np.ndarray | None = None  # remaining twin response (n_channels, m)
        self.exhausted = False

    def stimulus_space(self) -> StimulusSpace:
        return self._space

    def start_stimulation(self, stim: Stimulus) -> None:
        self._space.check(stim)
        if self.twin is None or stim.is_off:
            self._resp = None
            return
        n = max(1, int(round((self.response_s if self.response_s is not None else stim.duration_s + 1.0) * self.fs)))
        resp = np.asarray(self.twin(stim, n), np.float32)
        if resp.shape != (self.n_channels, n):
            raise ValidationError("twin(stimulus, n)", resp.shape, f"shape ({self.n_channels}, {n})")
        self._resp = resp

    def stop_stimulation(self) -> None:
        """Stop: the rest of the twin response is dropped."""
        self._resp = None

    def advance(self, n_samples: int) -> np.ndarray:
        total = self._data.shape[1]
        idx = self._pos + np.arange(n_samples)
        if not self.loop and idx[-1] >= total:
            self.exhausted = True
            idx = np.minimum(idx, total - 1)  # hold the last sample; the server stops at the end
        out = self._data[:, idx % total].copy()
        self._pos += n_samples
        if self._resp is not None:
            m = min(n_samples, self._resp.shape[1])
            out[:, :m] += self._resp[:, :m]
            self._resp = self._resp[:, m:] if self._resp.shape[1] > m else None
        return out


class DampedOscillationTwin:
    """A simple response model: a damped oscillation driven by the stimulus' charge or level.

    ``response[c, t] = gain_c × drive × exp(-t / tau_s) × sin(2π f t)`` with ``drive`` the charge
    per phase (µC) for electrical stimuli (× 1000 to µV-scale) or the level for sensory ones.

    Args:
        weights: Per-channel gain, shape ``(n_channels,)``, µV per unit drive.
        fs: Sampling rate, Hz.
        freq_hz: Oscillation frequency, Hz.
        tau_s: Decay time constant, s.
    """

    def __init__(self, weights: np.ndarray, fs: float, *, freq_hz: float = 20.0, tau_s: float = 0.2) -> None:
        self.weights = np.asarray(weights, np.float32).reshape(-1, 1)
        for name, v in (("fs", fs), ("freq_hz", freq_hz), ("tau_s", tau_s)):
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(name, v, "a finite value > 0")
        self.fs, self.freq_hz, self.tau_s = float(fs), float(freq_hz), float(tau_s)

    def __call__(self, stim: Stimulus, n_samples: int) -> np.ndarray:
        drive = stim.charge_uc * 1000.0 if stim.kind == "electrical" else stim.level
        t = np.arange(n_samples) / self.fs
        wave = np.exp(-t / self.tau_s) * np.sin(2 * np.pi * self.freq_hz * t)
        return (self.weights * float(drive) * wave[None]).astype(np.float32)


def default_space() -> StimulusSpace:
    """One-contact electrical space (Medtronic-3387-sized contact) used when none is given."""
    return StimulusSpace.electrical([Contact("c0", (0.0, 0.0, 0.0))])


def make_server(source: RecordingSource, *, key: bytes, source_id: str, speed: float = 1.0, counter: bool = False,
                name: str | None = None) -> StreamServer:
    """A :class:`StreamServer` for a recording source; it stops at the end unless the source loops."""
    duration = None if source.loop else source.n_samples / source.fs
    return StreamServer(source, source_id=source_id, key=key, speed=speed, counter=counter, name=name,
                        duration_s=duration, acquisition={"model": "playback"})


def serve_recording(path: str, key_file: str, *, loop: bool = False, speed: float = 1.0,
                    twin: Twin | None = None, space: StimulusSpace | None = None, source_id: str | None = None,
                    stream: str | int | None = None, counter: bool = False,
                    stop_event: threading.Event | None = None) -> int:
    """Serve the recording at ``path`` until its end (or forever with ``loop``) or a signal.

    Args:
        path: Any file :meth:`bfm_stim.recording.Recording.read` reads.
        key_file: Session key file.
        loop: Start over at the end.
        speed: Real-time factor.
        twin: Response model added on applied stimulation (see :data:`Twin`).
        space: Stimulus space for the safety check (default :func:`default_space`).
        source_id: Default ``bfm-play-<file stem>``.
        stream: XDF stream name or index.
        counter: Append a sample-counter channel.
        stop_event: Set it to stop.

    Returns:
        Samples published.
    """
    from pathlib import Path

    from bfm_stim.recording import Recording

    rec = Recording.read(path, stream=stream) if stream is not None else Recording.read(path)
    src = RecordingSource(rec, space or default_space(), loop=loop, twin=twin)
    server = make_server(src, key=load_key(key_file), source_id=source_id or f"bfm-play-{Path(path).stem}",
                         speed=speed, counter=counter)
    if stop_event is not None:
        server.stop_event = stop_event
    _install_signal_handlers(server)
    return server.run()


def build_parser(prog: str = "python -m simulators.playback") -> argparse.ArgumentParser:
    """The command-line options of ``simulators.playback`` (``bfm-stim play``)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--key-file", required=True)
    p.add_argument("--loop", action="store_true")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--source-id")
    p.add_argument("--stream", help="XDF stream name or index")
    p.add_argument("--space", help="stimulus space TOML (default: one 0.06 cm² contact c0)")
    p.add_argument("--twin", metavar="CHECKPOINT",
                   help="add the foundation model's predicted response to each applied stimulus (a pretrained "
                        "checkpoint, adapted zero-shot to the recording, or a `bfm-stim adapt` patient file)")
    p.add_argument("--twin-demo", action="store_true", help="add a damped-oscillation response on stimulation")
    p.add_argument("--counter", action="store_true")
    p.add_argument("--lsl-scope", choices=SCOPES, default="machine")
    p.add_argument("--log-level", default=None,
                   help="DEBUG, INFO, WARNING ... (default: WARNING; under bfm-stim its -v/-q level)")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m simulators.playback") -> int:
    """``python -m simulators.playback FILE``: serve a recording until its end or a signal."""
    p = build_parser(prog)
    a = p.parse_args(argv)
    log_to_stderr(a.log_level)  # one handler, on the package logger: no second copy of each line
    configure(a.lsl_scope)
    space = StimulusSpace.from_toml(a.space) if a.space else None
    twin = None
    if a.twin:
        from bfm_stim.recording import Recording
        from simulators.twin import load_twin

        twin = load_twin(a.twin, Recording.read(a.file), space or default_space())
    elif a.twin_demo:
        from bfm_stim.recording import Recording

        rec = Recording.read(a.file)
        twin = DampedOscillationTwin(np.ones(rec.n_channels), rec.fs)
    stream: str | int | None = int(a.stream) if a.stream and a.stream.isdigit() else a.stream
    serve_recording(a.file, a.key_file, loop=a.loop, speed=a.speed, twin=twin, space=space,
                    source_id=a.source_id, stream=stream, counter=a.counter)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
