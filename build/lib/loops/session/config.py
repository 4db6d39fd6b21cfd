"""The session's TOML configuration (the bundled ``session`` config), as frozen, validated dataclasses.

Every field has a default, so ``[device] source_id`` and ``key_file`` are all a session needs.
Unknown keys and bad values raise :class:`~bfm_stim.exceptions.ConfigError` naming the file, the
table, the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bfm_stim.exceptions import ConfigError
from bfm_stim.files import read_toml
from loops.config_files import config_path, is_bundled

__all__ = ["DeviceConfig", "CalibrationConfig", "TrialConfig", "PreprocessConfig", "HealthConfig",
           "ContinuousSegments", "SessionConfig", "load_config", "read_toml"]

MODES = ("zero_shot", "embedding", "full")


def _num(table: str, name: str, v: Any, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, integer: bool = False) -> None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if integer:
        ok = ok and isinstance(v, int)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        rng = f"{'>' if lo_open else '>='} {lo}" if lo is not None else ""
        rng += (" and " if rng and hi is not None else "") + (f"<= {hi}" if hi is not None else "")
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"[{table}] {name} = {v!r}: expected {kind}{' ' + rng if rng else ''}")


class _Table:
    """Mixin: build from a TOML table, refusing unknown keys."""

    TABLE = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        if not isinstance(d, Mapping):
            raise ConfigError(f"[{cls.TABLE}] must be a table, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"[{cls.TABLE}] unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        try:
            return cls(**kw)  # type: ignore[call-arg]
        except TypeError as e:
            raise ConfigError(f"[{cls.TABLE}] {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class DeviceConfig(_Table):
    """``[device]``: the LSL device (signal + acknowledgement streams) and the session key.

    Attributes:
        source_id: ``source_id`` of the device's signal stream (preferred: reconnection works by it).
        name: Stream name, when no ``source_id`` is given.
        key_file: Session key shared with the device (``bfm-stim keygen``); relative to the config file.
        space: Stimulus space TOML (contacts, bounds, safety limits): a path relative to the config
            file, or the name of a bundled config (``"space-dbs"``);
            ``""``: the simulated patient's own space (only for a ``bfm-stim serve`` device).
        space_kind: With a simulated patient: ``"electrical"`` or ``"sensory"`` (flicker/click trains).
        n_channels: Expected signal channels (0: accept the stream's).
        fs: Expected sampling rate, Hz (0: accept the stream's).
        units: Expected unit of every channel (``""``: any).
        lsl_scope: ``"machine"`` (default: nothing leaves this computer) or ``"lab"``.
        connect_timeout_s: How long to wait for the device, s.
        lead_s: A command's ``apply_at`` is this far after it is sent, s.
        ack_timeout_s: A command without acknowledgement after this long is a fault, s.
    """

    TABLE = "device"
    source_id: str = ""
    name: str = ""
    key_file: str = "session.key"
    space: str = ""
    space_kind: str = "electrical"
    n_channels: int = 0
    fs: float = 0.0
    units: str = "microvolts"
    lsl_scope: str = "machine"
    connect_timeout_s: float = 30.0
    lead_s: float = 0.02
    ack_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.source_id or self.name):
            raise ConfigError("[device] needs source_id (or name): the device's signal stream, e.g. "
                              "source_id = \"bfm-sim-bg-beta-v0-3\" (`bfm-stim serve` prints it)")
        if self.space_kind not in ("electrical", "sensory"):
            raise ConfigError(f"[device] space_kind = {self.space_kind!r}: expected 'electrical' or 'sensory'")
        _num("device", "n_channels", self.n_channels, lo=0, integer=True)
        _num("device", "fs", self.fs, lo=0)
        if self.lsl_scope not in ("machine", "lab"):
            raise ConfigError(f"[device] lsl_scope = {self.lsl_scope!r}: expected 'machine' or 'lab'")
        _num("device", "connect_timeout_s", self.connect_timeout_s, lo=0, lo_open=True)
        _num("device", "lead_s", self.lead_s, lo=0, hi=5.0)
        _num("device", "ack_timeout_s", self.ack_timeout_s, lo=0, lo_open=True, hi=30.0)


@dataclass(frozen=True)
class CalibrationConfig(_Table):
    """``[calibration]``: rest recording, adaptation of the shipped BFM, and the target.

    Attributes:
        rest_s: Stimulation-free recording, s (>= the model's context; 30 s recommended).
        mode: Adaptation: ``"zero_shot"``, ``"embedding"`` or ``"full"`` (anchored defaults of
            ``bfm-stim adapt``).
        checkpoint: Pretrained checkpoint (``""``: the shipped one).
        target: ``healthy`` (the simulated patient's healthy twin, when the device is a simulator),
            ``recording:PATH[:TMIN:TMAX]``, ``latent:FILE.npy`` or ``bandpower:LO-HI`` (Hz).
        target_channels: Channel names a band-power target averages (empty: the DBS lead's, else all).
        probes: Trials from a space-filling design before the optimizer's own proposals.
    """

    TABLE = "calibration"
    rest_s: float = 30.0
    mode: str = "zero_shot"
    checkpoint: str = ""
    target: str = "healthy"
    target_channels: tuple[str, ...] = ()
    probes: int = 0

    def __post_init__(self) -> None:
        _num("calibration", "rest_s", self.rest_s, lo=1.0, hi=3600.0)
        if self.mode not in MODES:
            raise ConfigError(f"[calibration] mode = {self.mode!r}: expected one of {MODES}")
        kind = self.target.partition(":")[0]
        if kind not in ("healthy", "recording", "latent", "bandpower"):
            raise ConfigError(f"[calibration] target = {self.target!r}: expected healthy | recording:PATH[:TMIN:TMAX]"
                              " | latent:FILE.npy | bandpower:LO-HI")
        _num("calibration", "probes", self.probes, lo=0, hi=1000, integer=True)


@dataclass(frozen=True)
class TrialConfig(_Table):
    """``[trials]``: the optimizer and the trial schedule.

    Attributes:
        optimizer: Registered optimizer (``bfm_stim.optim.registry``), e.g. ``guided``, ``bo``.
        settings: Optimizer settings (default: its table in the bundled ``optimizers`` config).
        seed: Optimizer seed.
        budget: Completed trials after which the session ends.
        rest_s: Inter-trial rest after each response window, s.
        response_s: Response window after the stimulation ends, s (0: the stimulation window only,
            the window the surrogate forecasts and the oracle scores).
        stop_cost: End when a trial's cost is at or below this (absent: never).
        patience: End after this many trials without a new best (0: never).
        max_minutes: End after this much wall-clock time, minutes (0: never).
        prefetch: When the next proposal is computed: ``"pending"`` (as soon as this trial's command
            has left, with this trial as a pending point: a slow model fit adds no dead time),
            ``"after_tell"`` (after this trial's outcome: one trial more information, but the ask
            delays the next command when it is slower than the rest) or ``"auto"`` (``after_tell``
            for random, sobol and cmaes, whose asks cost nothing; ``pending`` otherwise).
    """

    TABLE = "trials"
    optimizer: str = "guided"
    settings: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    budget: int = 20
    rest_s: float = 1.5
    response_s: float = 0.0
    stop_cost: float | None = None
    patience: int = 0
    max_minutes: float = 0.0
    prefetch: str = "auto"

    def __post_init__(self) -> None:
        from bfm_stim.optim import registry

        if self.optimizer not in registry:
            raise ConfigError(f"[trials] optimizer = {self.optimizer!r}: expected one of {sorted(registry)}")
        _num("trials", "seed", self.seed, lo=0, integer=True)
        _num("trials", "budget", self.budget, lo=1, integer=True)
        _num("trials", "rest_s", self.rest_s, lo=0, hi=600)
        _num("trials", "response_s", self.response_s, lo=0, hi=60)
        if self.stop_cost is not None:
            _num("trials", "stop_cost", self.stop_cost)
        _num("trials", "patience", self.patience, lo=0, integer=True)
        _num("trials", "max_minutes", self.max_minutes, lo=0)
        if self.prefetch not in ("auto", "pending", "after_tell"):
            raise ConfigError(f"[trials] prefetch = {self.prefetch!r}: expected 'auto', 'pending' or 'after_tell'")

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["settings"] = dict(self.settings)
        return d


@dataclass(frozen=True)
class PreprocessConfig(_Table):
    """``[preprocess]``: what is done to a response window before it is scored.

    Attributes:
        blank_ms: Blank this long after each stimulation pulse (artifact), ms (0: off). Blanked
            samples are interpolated linearly.
        highpass_hz: High-pass cut-off, Hz (0: off).
        lowpass_hz: Low-pass cut-off, Hz (0: off).
        notch_hz: Line-noise notch, Hz (0: off; e.g. 50 or 60).
    """

    TABLE = "preprocess"
    blank_ms: float = 0.0
    highpass_hz: float = 0.0
    lowpass_hz: float = 0.0
    notch_hz: float = 0.0

    def __post_init__(self) -> None:
        _num("preprocess", "blank_ms", self.blank_ms, lo=0, hi=50)
        for n in ("highpass_hz", "lowpass_hz", "notch_hz"):
            _num("preprocess", n, getattr(self, n), lo=0)


@dataclass(frozen=True)
class HealthConfig(_Table):
    """``[health]``: when the stream counts as faulty (no command is sent then).

    Attributes:
        stale_s: The newest sample older than this is a fault, s.
        window_s: Data checks look at the newest this many s.
        flat_uv: A channel whose standard deviation is below this is flat, µV.
        saturation_uv: A sample at or beyond ± this is saturated, µV.
        max_wait_s: Give up (end the session) after waiting this long for valid data, s.
    """

    TABLE = "health"
    stale_s: float = 0.3
    window_s: float = 0.25
    flat_uv: float = 1e-3
    saturation_uv: float = 1e5
    max_wait_s: float = 600.0

    def __post_init__(self) -> None:
        _num("health", "stale_s", self.stale_s, lo=0, lo_open=True)
        _num("health", "window_s", self.window_s, lo=0.01, hi=10)
        _num("health", "flat_uv", self.flat_uv, lo=0)
        _num("health", "saturation_uv", self.saturation_uv, lo=0, lo_open=True)
        _num("health", "max_wait_s", self.max_wait_s, lo=0, lo_open=True)


@dataclass(frozen=True)
class ContinuousSegments(_Table):
    """``[continuous]``: the continuous (adaptive) segments after the trials.

    Attributes:
        segments: Modes to run in order, each for ``duration_s``: ``"adaptive"``, ``"open_loop"``
            (the same settings at the top amplitude, always on) and ``"off"``.
        duration_s: Length of each segment, s.
        use_best: Stimulate on the contact of the trials' best train (rate and pulse width are the
            controller's, 130 Hz and 60 µs by default).
        biomarker: What the controller reads: ``"bandpower:13-30"`` (log10 beta power of the DBS lead,
            the default) or ``"state:FILE.npz"``: the probability a latent state decoder
            (``bfm-stim decode --save`` / ``--simulated``) gives to its state, e.g. pathological.
        controller: The controller's settings (``loops.session.controller.ControllerConfig``).
    """

    TABLE = "continuous"
    segments: tuple[str, ...] = ()
    duration_s: float = 20.0
    use_best: bool = True
    controller: Mapping[str, Any] = field(default_factory=dict)
    biomarker: str = "bandpower:13-30"

    def __post_init__(self) -> None:
        if not isinstance(self.biomarker, str) or not (self.biomarker.startswith("bandpower:")
                                                       or (self.biomarker.startswith("state:") and len(self.biomarker) > 6)):
            raise ConfigError(f"[continuous] biomarker = {self.biomarker!r}: expected 'bandpower:LO-HI' or "
                              "'state:FILE.npz' (a decoder from bfm-stim decode --save)")
        for s in self.segments:
            if s not in ("adaptive", "open_loop", "off"):
                raise ConfigError(f"[continuous] segments has {s!r}: expected 'adaptive', 'open_loop' or 'off'")
        _num("continuous", "duration_s", self.duration_s, lo=0.5, hi=86400)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["controller"] = dict(self.controller)
        return d


@dataclass(frozen=True)
class SessionConfig:
    """The whole configuration; ``base`` is the folder relative paths are resolved against.

    ``base`` is the config file's folder; for a bundled config (a template) it is the current
    directory when it was loaded, so its ``key_file = "session.key"`` is the user's key.
    """

    device: DeviceConfig
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    trials: TrialConfig = field(default_factory=TrialConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    continuous: ContinuousSegments = field(default_factory=ContinuousSegments)
    base: str = "."

    TABLES = {"device": DeviceConfig, "calibration": CalibrationConfig, "trials": TrialConfig,
              "preprocess": PreprocessConfig, "health": HealthConfig, "continuous": ContinuousSegments}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base: str | Path = ".") -> "SessionConfig":
        unknown = set(d) - set(cls.TABLES)
        if unknown:
            raise ConfigError(f"unknown table(s) {sorted(unknown)}; allowed: {sorted(cls.TABLES)}")
        if "device" not in d:
            raise ConfigError("[device] is missing: give at least source_id and key_file")
        parts = {name: t.from_dict(d.get(name, {})) for name, t in cls.TABLES.items()}
        return cls(**parts, base=str(base))

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict() for name in self.TABLES}

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base) / q

    def config_file(self, p: str, *, what: str) -> Path:
        """A config file the config names: a path as :meth:`resolve` gives it, else a bundled config's name."""
        return config_path(p, what=what, base=self.base)

    def replace(self, table: str, **changes: Any) -> "SessionConfig":
        """A copy with fields of one table changed (CLI overrides), validated again."""
        d = self.to_dict()
        d[table].update(changes)
        return SessionConfig.from_dict(d, base=self.base)


def load_config(path: str | Path) -> SessionConfig:
    """Read a session config into a :class:`SessionConfig`; errors name the file.

    Args:
        path: A TOML file, or the name of a bundled config (``"session"``; see :mod:`loops.config_files`).
    """
    p = config_path(path, what="session config")
    try:
        return SessionConfig.from_dict(read_toml(p), base=Path.cwd() if is_bundled(p) else p.parent)
    except ConfigError as e:
        if str(p) in str(e):
            raise
        raise ConfigError(f"{p}: {e}") from None
