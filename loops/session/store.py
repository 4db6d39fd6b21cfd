"""The session directory: the single source of truth of a closed-loop session.

Layout (every file is written so that a SIGKILL at any moment leaves a readable directory)::

    DIR/
      session.json      what the session is: config (as a dict), software versions, checkpoint
                        digest, the key's fingerprint (never the key), the device's stream spec
                        (source_id, channel names/types/units, rate), the target. Atomic rewrite.
      config.toml       the config file as given (a copy)
      trials.jsonl      write-ahead log, one JSON object a line, each line flushed and fsynced
                        before the action it announces (see RECORD TYPES)
      optimizer.json    the optimizer's state after the last logged operation (atomic), with
                        ``"op"``: the number of optimizer operations it includes
      continuous.jsonl  continuous-mode decisions (10 per second), flushed, fsynced every second
      stream/data.f32   every received signal sample, float32, row-major (n_samples, n_channels),
                        appended as it arrives (a torn last row is dropped when read)
      stream/times.f64  the LSL timestamp (s, local clock) of every sample, float64
      patient.pt        the adapted patient file (calibration), target.npy (latent targets)
      recording.fif     the received stream with every command and ack as annotations (MNE);
                        written at the end of a run, rebuilt by ``bfm-stim report DIR``
      report/           index.html (self-contained) and its PNGs

RECORD TYPES (``trials.jsonl``; every record has ``type``, ``t`` (Unix s) and ``lsl`` (LSL s)):

- ``start``: ``{"run": r, "resume": bool, "session_id": str, "first_seq": int}`` (one per run).
- ``calibrated``: ``{"rest_s", "mode", "target": {...}, "adapt": {...}}``.
- ``asked`` (optimizer op): ``{"trial": k, "stimulus": {...}, "ask_s": s, "probe": bool}``.
- ``sent`` (written before the command is pushed): ``{"trial": k, "seq", "apply_at", "session_id"}``.
- ``ack``: ``{"trial": k, "seq", "status": "applied"|"rejected", "applied_at"?, "reason"?, "detail"?}``.
- ``measured`` (as soon as a response is scored, fsynced): ``{"trial": k, "cost", "side_effect",
  "window": [t0, t1] (LSL s), "seq", "charge_uc", "score_s", "latent": [...] (mean latent, latent targets)}``.
- ``outcome`` (optimizer op: tell; the same fields): written when the optimizer is told, which may be
  after a proposal that was being computed (``--resume`` tells a measured trial the crash left untold);
  plus the trust in the model after it (:func:`loops.model_trust.trial_fields`): ``"trust"`` (``null``
  without a model), ``"model_weight"``, ``"led_by"`` (``"model"``, ``"bo"``, ``"explore"``, ``"design"``
  or ``null``), ``"trust_reason"``, and ``"trust_message"`` while the trials contradict the model.
- ``timing`` (after the rest): ``{"trial": k, "trial_s", "stim_s", "response_s", "rest_s", "overhead_s",
  "dead_s", "lead_s", "ask_s", "policy"}`` (wall-clock s; folded into :attr:`TrialView.timing`).
- ``interrupted`` (optimizer op: cancel): ``{"trial": k, "reason": str}``; its cost is never told.
- ``rejected`` (optimizer op: cancel): ``{"trial": k, "reason", "detail"}``: the device refused it.
- ``fault``: ``{"kind": "dropout"|"lost"|"stale"|"nonfinite"|"flat"|"saturated"|"no_ack"|"mismatch"|"gap",
  "detail": str}``; ``recovered``: ``{"detail": str}``.
- ``stop``: ``{"seq", "reason"}`` (a stop command was sent).
- ``continuous``: ``{"phase": "start"|"end", "mode": "adaptive"|"open_loop"|"off", ...summary}``.
- ``end``: ``{"reason": "budget"|"target"|"patience"|"wall_clock"|"signal"|"error", "best": {...}|null}``.

The optimizer operations (``asked``, ``outcome``, ``interrupted``, ``rejected``) in log order are
what the optimizer saw; :func:`replay` applies them to a fresh optimizer, so a resumed session
proposes exactly what an uninterrupted one would have from the same log.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, OptimizerError

__all__ = ["SessionStore", "SignalWriter", "TrialView", "read_log", "trial_views", "read_signal", "OPTIMIZER_OPS",
           "LOG", "META", "OPT_STATE", "CONTINUOUS"]

log = get_logger("loops.session.store")

LOG, META, OPT_STATE, CONTINUOUS = "trials.jsonl", "session.json", "optimizer.json", "continuous.jsonl"
OPTIMIZER_OPS = ("asked", "outcome", "interrupted", "rejected")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (the log is strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    return obj


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (fsynced)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JsonlWriter:
    """Append-only JSON-lines file; ``write(..., sync=True)`` returns once the line is on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def write(self, record: Mapping[str, Any], *, sync: bool = True) -> None:
        self._f.write(json.dumps(_clean(record), separators=(",", ":"), allow_nan=False) + "\n")
        self._f.flush()
        if sync:
            os.fsync(self._f.fileno())

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self.sync()
            self._f.close()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (killed mid-write) is dropped with a warning.

    Raises:
        ConfigError: a line other than the last is not JSON (the file was edited or corrupted).
    """
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # the last (possibly unterminated) line: torn by a kill
                log.warning("%s: dropping a torn last line (%d bytes)", p, len(line))
                continue
            raise ConfigError(f"{p}: line {i + 1} is not JSON; the log is corrupted") from None
    return out


class SignalWriter:
    """Appends received samples to ``stream/data.f32`` and ``stream/times.f64``.

    Each chunk is flushed to the OS at once (a killed process loses nothing); a background thread
    fsyncs both files every ``sync_every_s`` (against power loss), so a disk flush never sits in
    the loop's path between a sample's arrival and the command it causes.

    Args:
        folder: The ``stream/`` folder.
        n_channels: Signal channels per sample.
        sync_every_s: fsync both files this often, s.
    """

    def __init__(self, folder: Path, n_channels: int, *, sync_every_s: float = 1.0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.n_channels = int(n_channels)
        self._repair(folder)
        self._data = open(folder / "data.f32", "ab")
        self._times = open(folder / "times.f64", "ab")
        self.sync_every_s = sync_every_s
        self.n_samples = (folder / "times.f64").stat().st_size // 8
        self._closed = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="stream-fsync", daemon=True)
        self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._closed.wait(self.sync_every_s):
            try:
                os.fsync(self._data.fileno())
                os.fsync(self._times.fileno())
            except (OSError, ValueError):  # closed meanwhile
                return

    def _repair(self, folder: Path) -> None:
        """Cut both files to the samples present in both (a kill may tear the last write)."""
        d, t = folder / "data.f32", folder / "times.f64"
        if not d.exists() or not t.exists():
            return
        n = min(d.stat().st_size // (4 * self.n_channels), t.stat().st_size // 8)
        for f, size in ((d, n * 4 * self.n_channels), (t, n * 8)):
            if f.stat().st_size != size:
                with open(f, "r+b") as fh:
                    fh.truncate(size)

    def append(self, data: np.ndarray, times: np.ndarray) -> None:
        """Append ``data`` (n_channels, n) µV and ``times`` (n,) LSL s."""
        if data.shape[1] == 0:
            return
        if data.shape[0] != self.n_channels:
            raise ValueError(f"SignalWriter got {data.shape[0]} channels; expected {self.n_channels}")
        self._times.write(np.ascontiguousarray(times, np.float64).tobytes())
        self._data.write(np.ascontiguousarray(data.T, np.float32).tobytes())
        self._data.flush()
        self._times.flush()
        self.n_samples += data.shape[1]

    def sync(self) -> None:
        for f in (self._data, self._times):
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        self._closed.set()
        if not self._data.closed:
            self._syncer.join(timeout=5)
            self.sync()
            self._data.close()
            self._times.close()


def read_signal(folder: str | Path, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The received stream: ``(data (n_channels, n) float32 µV, times (n,) LSL s)``; torn tails dropped."""
    folder = Path(folder)
    d, t = folder / "data.f32", folder / "times.f64"
    if not d.exists() or not t.exists():
        return np.zeros((n_channels, 0), np.float32), np.zeros(0)
    raw = np.fromfile(d, np.float32)
    times = np.fromfile(t, np.float64)
    n = min(raw.size // n_channels, times.size)
    return raw[: n * n_channels].reshape(n, n_channels).T.copy(), times[:n]


@dataclass
class TrialView:
    """One trial as read back from the log (what the report, the BIDS export and the tests see).

    ``status`` is ``"completed"`` (scored; ``told`` once the optimizer has it), ``"interrupted"``, ``"rejected"``,
    ``"sent"`` (sent, the session died before it ended: marked interrupted on resume) or
    ``"asked"`` (proposed, never sent).
    """

    trial: int
    stimulus: dict[str, Any]
    status: str = "asked"
    probe: bool = False
    seq: int | None = None
    apply_at: float | None = None
    applied_at: float | None = None
    cost: float | None = None
    side_effect: Any = None
    reason: str | None = None
    window: list[float] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    ask_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    told: bool = False


def trial_views(records: list[dict[str, Any]]) -> list[TrialView]:
    """Fold the log's records into one :class:`TrialView` per trial, in trial order."""
    views: dict[int, TrialView] = {}
    for r in records:
        k = r.get("trial")
        typ = r.get("type")
        if k is None:
            continue
        if typ == "asked":
            views[k] = TrialView(trial=k, stimulus=r["stimulus"], probe=bool(r.get("probe")), ask_s=r.get("ask_s"))
            continue
        v = views.get(k)
        if v is None:
            continue
        if typ == "sent":
            v.status, v.seq, v.apply_at = "sent", r.get("seq"), r.get("apply_at")
        elif typ == "ack":
            if r.get("status") == "applied":
                v.applied_at = r.get("applied_at")
        elif typ in ("measured", "outcome"):  # measured: scored and logged; outcome: told to the optimizer
            v.told = v.told or typ == "outcome"
            v.status, v.cost, v.side_effect = "completed", r.get("cost"), r.get("side_effect")
            v.window, v.timing = r.get("window"), dict(r.get("timing") or {})
            v.extra = {key: val for key, val in r.items() if key not in
                       ("type", "t", "lsl", "trial", "cost", "side_effect", "window", "timing")}
        elif typ in ("interrupted", "rejected"):
            v.status, v.reason = typ, r.get("reason")
        elif typ == "timing":  # written after the rest that follows the outcome
            v.timing.update({key: val for key, val in r.items() if key not in ("type", "t", "lsl", "trial")})
    return [views[k] for k in sorted(views)]


class SessionStore:
    """Create or reopen a session directory (see the module docstring for its layout).

    Args:
        path: The directory.
        create: Make a new session (``path`` must not hold one); otherwise reopen one for resuming.
    """

    def __init__(self, path: str | Path, *, create: bool) -> None:
        self.path = Path(path)
        if create:
            if (self.path / LOG).exists():
                raise ConfigError(f"{self.path} already holds a session; continue it with "
                                  f"`bfm-stim session --resume {self.path}` or choose another --out")
            self.path.mkdir(parents=True, exist_ok=True)
        elif not (self.path / META).is_file():
            raise ConfigError(f"{self.path} is not a session directory (no {META}); "
                              "start one with `bfm-stim session --config FILE --out DIR`")
        self.records: list[dict[str, Any]] = read_log(self.path / LOG)
        self._log = JsonlWriter(self.path / LOG)
        self._continuous: JsonlWriter | None = None
        self.signal: SignalWriter | None = None
        self._lock = threading.Lock()  # the proposer thread logs too

    # --- metadata ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        p = self.path / META
        return json.loads(p.read_text()) if p.is_file() else {}

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        atomic_write(self.path / META, json.dumps(_clean(dict(meta)), indent=1, sort_keys=True) + "\n")

    def update_meta(self, **changes: Any) -> None:
        m = self.meta
        m.update(changes)
        self.write_meta(m)

    # --- the log ------------------------------------------------------------------------------------
    def append(self, type_: str, *, sync: bool = True, lsl: float | None = None, **fields: Any) -> dict[str, Any]:
        """Log one record (fsynced unless ``sync=False``); returns it."""
        if lsl is None:
            from bfm_stim.lsl.config import local_clock

            lsl = local_clock()
        rec = {"type": type_, "t": time.time(), "lsl": lsl, **fields}
        with self._lock:
            self._log.write(rec, sync=sync)
            self.records.append(_clean(rec))
        return rec

    def continuous(self, record: Mapping[str, Any], *, sync: bool = False) -> None:
        """Log one continuous-mode decision (flushed; fsynced when ``sync``)."""
        if self._continuous is None:
            self._continuous = JsonlWriter(self.path / CONTINUOUS)
        self._continuous.write(record, sync=sync)

    def open_signal(self, n_channels: int) -> SignalWriter:
        self.signal = SignalWriter(self.path / "stream", n_channels)
        return self.signal

    # --- the optimizer ------------------------------------------------------------------------------
    def optimizer_ops(self) -> list[dict[str, Any]]:
        """The optimizer operations in log order."""
        return [r for r in self.records if r["type"] in OPTIMIZER_OPS]

    def save_optimizer(self, opt: Any) -> None:
        state = opt.state_dict()
        state["op"] = len(self.optimizer_ops())
        atomic_write(self.path / OPT_STATE, json.dumps(state))

    def trials(self) -> list[TrialView]:
        return trial_views(self.records)

    def close(self) -> None:
        self._log.close()
        if self._continuous is not None:
            self._continuous.close()
        if self.signal is not None:
            self.signal.close()


def replay(opt: Any, ops: list[dict[str, Any]], *, start: int = 0) -> Iterator[tuple[dict[str, Any], Any]]:
    """Apply logged optimizer operations to an optimizer, checking every replayed proposal.

    ``asked`` asks one stimulus and checks it equals the logged one; ``outcome`` tells the
    trial's stimulus and outcome; ``interrupted``/``rejected`` cancel it (never told). Operations
    before ``start`` are already in ``opt`` (restored from ``optimizer.json``) and only read.
    Yields ``(record, stimulus)`` per applied operation.

    Raises:
        OptimizerError: a replayed proposal differs from the logged one (another optimizer,
            settings, seed or surrogate than the session that wrote the log).
    """
    from bfm_stim.optim import Outcome
    from bfm_stim.space import Stimulus

    asked: dict[int, Any] = {}
    for i, r in enumerate(ops):
        k = r["trial"]
        if r["type"] == "asked":
            logged = Stimulus.from_dict(r["stimulus"])
            if i >= start:
                got = opt.ask(1)[0]
                if got != logged:
                    raise OptimizerError(f"replaying trial {k}: the optimizer proposes {got.to_dict()} but the log "
                                         f"has {logged.to_dict()}; the optimizer, its settings or the surrogate differ "
                                         "from the session that wrote the log")
                yield r, got
            asked[k] = logged
        elif r["type"] == "outcome":
            stim = asked.pop(k)
            if i >= start:
                opt.tell([stim], [Outcome(r["cost"], r.get("side_effect"), {"trial": k})])
                yield r, stim
        else:
            stim = asked.pop(k)
            if i >= start:
                opt.cancel(stim)
                yield r, stim
