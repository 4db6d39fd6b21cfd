"""The continuous (adaptive) stimulation controller: biomarker every period -> amplitude.

Pure logic (no LSL, no threads, no clock of its own): the session loop calls
:meth:`AdaptiveController.step` every ``period_s`` with the time and the newest biomarker value
and sends what the returned :class:`Decision` says. Each command is a train of
``command_duration_s`` (e.g. 0.3 s) reissued every period, so if the loop dies stimulation stops
by itself; a :class:`Decision` with ``stop=True`` asks the loop to send ``stop`` at once.

Modes (Little et al. 2013 and Velisar et al. 2019 for the dual threshold; Rosa et al. 2015 for
proportional control):

* ``"dual_threshold"``: above ``threshold_on`` the amplitude ramps up (``ramp_up_ma_per_s``)
  towards ``amplitude_max_ma``; below ``threshold_off`` it ramps down (``ramp_down_ma_per_s``)
  towards ``amplitude_min_ma``; in between it holds (hysteresis: a biomarker wandering between
  the thresholds never toggles stimulation).
* ``"proportional"``: target ``gain_ma_per_decade × (biomarker − threshold_on)`` clipped to
  [amplitude_min, amplitude_max], approached at most at the ramp rates.

Thresholds are absolute (log10 µV²/Hz for :class:`~loops.session.biomarker.BandPowerBiomarker`)
or set by :meth:`AdaptiveController.calibrate` from the rest biomarker distribution: as quantiles
of it (the classic aDBS setting: stimulate when beta is above its usual level), or as offsets from
its median (a target for the suppressed state, e.g. -1: keep beta power at a tenth of rest).
After a stimulation onset (off -> on) or offset (on -> off) the biomarker is ignored for
``onset_blank_s`` / ``offset_blank_s`` (the amplitude keeps its course: holds, or keeps ramping
towards where it was going), so a stimulation artifact or the transient of the loop's response
does not drive the next decision.

Safety: every amplitude the controller emits is on the device's amplitude grid, within
[amplitude_min, amplitude_max], and its stimulus passed ``space.check`` (the one safety check of
:mod:`bfm_stim.space`); ``amplitude_max_ma`` above the largest safe amplitude at the configured
contact and pulse width is lowered to it at construction (logged).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.files import read_toml
from bfm_stim.space import Stimulus, StimulusSpace
from loops.session.biomarker import ExpSmoother

__all__ = ["ControllerConfig", "Decision", "AdaptiveController", "OpenLoop", "MODES"]

log = get_logger("session.controller")

MODES = ("dual_threshold", "proportional")
_EPS = 1e-9


def _finite(name: str, v: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            allowed: str | None = None) -> None:
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        if allowed is None:
            rng = [f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else ""]
            allowed = "a finite number " + " and ".join(r for r in rng if r)
        raise ValidationError(name, v, allowed.strip())


@dataclass(frozen=True)
class ControllerConfig:
    """Settings of the continuous-mode controller (TOML table ``[continuous]``). Units: s, mA, Hz, µs.

    Attributes:
        mode: ``"dual_threshold"`` or ``"proportional"`` (module docstring).
        period_s: Control period, s (the session calls :meth:`AdaptiveController.step` this often).
        amplitude_min_ma: Lowest amplitude while the controller is ramped down, mA (0: off).
        amplitude_max_ma: Highest amplitude, mA; also the open-loop comparison's amplitude.
        ramp_up_ma_per_s: Largest increase per second, mA/s. A few hundredths (0.02–0.1) is a
            research device's slow ramp; ``amplitude_max / 0.25`` is a fast responsive ramp that
            reaches full scale in 250 ms.
        ramp_down_ma_per_s: Largest decrease per second, mA/s.
        threshold_on: Absolute upper threshold (biomarker units), or None to use the quantile.
        threshold_off: Absolute lower threshold, or None to use the quantile.
        threshold_quantile_on: Quantile of the rest biomarker distribution for ``threshold_on``
            (used when ``threshold_on`` is None; needs :meth:`AdaptiveController.calibrate`).
        threshold_quantile_off: Same for ``threshold_off`` (<= ``threshold_quantile_on``).
        threshold_offset_on: ``threshold_on`` as the rest median plus this offset (biomarker
            units; -1 is a tenth of the median band power): a target for the suppressed state.
            Takes precedence over the quantile; an absolute threshold over both.
        threshold_offset_off: Same for ``threshold_off`` (<= ``threshold_offset_on``).
        gain_ma_per_decade: Proportional mode's gain, mA per unit of biomarker (a decade of band
            power for the log10 band-power biomarker).
        smoothing_s: Exponential smoothing time constant of the biomarker inside the controller, s.
        onset_blank_s: Biomarker ignored this long after stimulation switches on, s.
        offset_blank_s: Biomarker ignored this long after stimulation switches off, s.
        contact: Stimulation contact (None: the caller fills it, e.g. from the trials' best).
        frequency_hz: Pulse rate, Hz.
        pulse_width_us: Phase width, µs.
        command_duration_s: Duration of each command's train, s (>= period_s); reissued every
            period, so stimulation ends by itself at most this long after the controller stops.
    """

    mode: str = "dual_threshold"
    period_s: float = 0.1
    amplitude_min_ma: float = 0.0
    amplitude_max_ma: float = 3.0
    ramp_up_ma_per_s: float = 12.0
    ramp_down_ma_per_s: float = 12.0
    threshold_on: float | None = None
    threshold_off: float | None = None
    threshold_quantile_on: float | None = 0.75
    threshold_quantile_off: float | None = 0.5
    threshold_offset_on: float | None = None
    threshold_offset_off: float | None = None
    gain_ma_per_decade: float = 5.0
    smoothing_s: float = 0.0
    onset_blank_s: float = 0.0
    offset_blank_s: float = 0.0
    contact: str | None = None
    frequency_hz: float = 130.0
    pulse_width_us: float = 60.0
    command_duration_s: float = 0.3

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError("mode", self.mode, f"one of {MODES}")
        _finite("period_s", self.period_s, 0.001, 10.0)
        _finite("amplitude_min_ma", self.amplitude_min_ma, 0.0, 100.0)
        _finite("amplitude_max_ma", self.amplitude_max_ma, 0.0, 100.0, lo_open=True)
        if self.amplitude_min_ma > self.amplitude_max_ma:
            raise ValidationError("amplitude_min_ma", self.amplitude_min_ma,
                                  f"<= amplitude_max_ma = {self.amplitude_max_ma:g} mA")
        for name in ("ramp_up_ma_per_s", "ramp_down_ma_per_s"):
            _finite(name, getattr(self, name), 0.0, 1e4, lo_open=True,
                    allowed="a ramp rate in (0, 10000] mA/s (e.g. 0.05 slow, amplitude_max/0.25 fast)")
        for name in ("threshold_on", "threshold_off", "threshold_offset_on", "threshold_offset_off"):
            v = getattr(self, name)
            if v is not None:
                _finite(name, v, allowed="a finite threshold (biomarker units) or omitted to use the quantile")
        for name in ("threshold_quantile_on", "threshold_quantile_off"):
            v = getattr(self, name)
            if v is not None:
                _finite(name, v, 0.0, 1.0, allowed="a quantile in [0, 1] or omitted")
        if self.threshold_on is None and self.threshold_quantile_on is None and self.threshold_offset_on is None:
            raise ValidationError("threshold_on", None, "a number, threshold_offset_on, or threshold_quantile_on in [0, 1]")
        if (self.mode == "dual_threshold" and self.threshold_off is None and self.threshold_quantile_off is None
                and self.threshold_offset_off is None):
            raise ValidationError("threshold_off", None,
                                  "a number, threshold_offset_off, or threshold_quantile_off in [0, 1]")
        oon, ooff = self.threshold_offset_on, self.threshold_offset_off
        if self.mode == "dual_threshold" and oon is not None and ooff is not None and ooff > oon:
            raise ValidationError("threshold_offset_off", ooff, f"<= threshold_offset_on = {oon:g}")
        if self.threshold_on is not None and self.threshold_off is not None and self.threshold_off > self.threshold_on:
            raise ValidationError("threshold_off", self.threshold_off, f"<= threshold_on = {self.threshold_on:g}")
        qon, qoff = self.threshold_quantile_on, self.threshold_quantile_off
        if (self.mode == "dual_threshold" and self.threshold_on is None and self.threshold_off is None
                and qon is not None and qoff is not None and qoff > qon):
            raise ValidationError("threshold_quantile_off", qoff, f"<= threshold_quantile_on = {qon:g}")
        _finite("gain_ma_per_decade", self.gain_ma_per_decade, 0.0, 1e4, lo_open=True)
        _finite("smoothing_s", self.smoothing_s, 0.0, 60.0)
        _finite("onset_blank_s", self.onset_blank_s, 0.0, 60.0)
        _finite("offset_blank_s", self.offset_blank_s, 0.0, 60.0)
        if self.contact is not None and (not isinstance(self.contact, str) or not self.contact):
            raise ValidationError("contact", self.contact, "a contact name or omitted")
        _finite("frequency_hz", self.frequency_hz, 0.0, 1000.0, lo_open=True)
        _finite("pulse_width_us", self.pulse_width_us, 0.0, 1000.0, lo_open=True)
        _finite("command_duration_s", self.command_duration_s, self.period_s, 10.0,
                allowed=f"a train duration in [period_s = {self.period_s:g}, 10] s")

    # --- TOML ------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ControllerConfig":
        """Build from a mapping (a TOML table); unknown keys raise ConfigError naming them."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"[continuous] controller settings must be a table; got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"[continuous] unknown key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**dict(d))

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "continuous") -> "ControllerConfig":
        """Read ``[continuous]`` (or its ``controller`` sub-table, as in the bundled ``session`` config)."""
        p = Path(path)
        data = read_toml(p, what="session config")
        if table not in data:
            raise ConfigError(f"{p}: no [{table}] table")
        t = data[table]
        return cls.from_dict(t["controller"] if isinstance(t.get("controller"), Mapping) else t)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready mapping (None fields left out, as TOML has no null)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def replace(self, **changes: Any) -> "ControllerConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def train_charge_uc(self, amplitude_ma: float, seconds: float) -> float:
        """Charge delivered by ``seconds`` of stimulation at ``amplitude_ma``, µC (both phases)."""
        return amplitude_ma * self.pulse_width_us * 1e-3 * 2.0 * self.frequency_hz * seconds


@dataclass(frozen=True)
class Decision:
    """What the controller decided at one step.

    Attributes:
        t: Time of the step, s (the caller's clock).
        amplitude_ma: Amplitude now in force, mA (0: off).
        stimulus: The train to send now (``command_duration_s`` long), or None for no stimulation.
        stop: True on the step stimulation switches off: send ``stop`` now rather than letting the
            last train run out.
        state: ``"off"``, ``"ramp_up"``, ``"ramp_down"``, ``"hold"``, ``"blank"`` (biomarker
            ignored), ``"invalid"`` (non-finite biomarker: ramping down) or ``"on"`` (open loop).
        biomarker: The value given, biomarker units.
        biomarker_used: The smoothed value the rule saw (None while blanked or invalid).
        threshold_on: Upper threshold in force (None for open loop).
        threshold_off: Lower threshold in force.
    """

    t: float
    amplitude_ma: float
    stimulus: Stimulus | None
    stop: bool
    state: str
    biomarker: float | None
    biomarker_used: float | None
    threshold_on: float | None
    threshold_off: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the session's ``continuous.jsonl`` rows)."""
        f = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {"t": self.t, "amplitude_ma": self.amplitude_ma, "stop": self.stop, "state": self.state,
                "stimulus": None if self.stimulus is None else self.stimulus.to_dict(),
                "biomarker": f(self.biomarker), "biomarker_used": f(self.biomarker_used),
                "threshold_on": f(self.threshold_on), "threshold_off": f(self.threshold_off)}


class _Base:
    """Amplitude grid, safety and stimulus building shared by both controllers."""

    def __init__(self, cfg: ControllerConfig, space: StimulusSpace, *, contact: str | None = None) -> None:
        if not isinstance(cfg, ControllerConfig):
            raise ValidationError("cfg", type(cfg).__name__, "a ControllerConfig")
        if not isinstance(space, StimulusSpace) or space.kind != "electrical":
            raise ValidationError("space", getattr(space, "kind", type(space).__name__), "an electrical StimulusSpace")
        contact = contact or cfg.contact
        names = list(space.param("contact").choices)
        if contact not in names:
            raise ValidationError("contact", contact, f"one of the space's contacts {names}")
        self.cfg, self.space, self.contact = cfg, space, contact
        amp = space.param("amplitude_ma")
        self._step = amp.step or 0.0
        dur = space.param("duration_s")
        self.command_duration_s = min(max(cfg.command_duration_s, dur.low), dur.high)
        if self.command_duration_s != cfg.command_duration_s:
            log.warning("command_duration_s %.3g s is outside the device's train durations [%g, %g] s; using %.3g s",
                        cfg.command_duration_s, dur.low, dur.high, self.command_duration_s)
        top = self._stim(min(cfg.amplitude_max_ma, amp.high))
        safe = space.project_safe(top).amplitude_ma
        self.amplitude_max_ma = self._grid_down(min(cfg.amplitude_max_ma, amp.high, safe))
        if self.amplitude_max_ma < cfg.amplitude_max_ma - _EPS:
            log.warning("amplitude_max_ma %.3g mA lowered to %.3g mA (space bound %.3g mA, largest safe %.3g mA on %s "
                        "at %g µs)", cfg.amplitude_max_ma, self.amplitude_max_ma, amp.high, safe, contact,
                        cfg.pulse_width_us)
        self.amplitude_min_ma = min(self._grid_up(cfg.amplitude_min_ma), self.amplitude_max_ma)

    def _grid_down(self, a: float) -> float:
        if not self._step:
            return max(a, 0.0)
        low = self.space.param("amplitude_ma").low
        return max(round(low + math.floor((a - low) / self._step + 1e-9) * self._step, 9), 0.0)

    def _grid_up(self, a: float) -> float:
        if not self._step:
            return max(a, 0.0)
        low = self.space.param("amplitude_ma").low
        return max(round(low + math.ceil((a - low) / self._step - 1e-9) * self._step, 9), 0.0)

    def _stim(self, amplitude_ma: float) -> Stimulus:
        return Stimulus.electrical(contact=self.contact, amplitude_ma=amplitude_ma, frequency_hz=self.cfg.frequency_hz,
                                   pulse_width_us=self.cfg.pulse_width_us, duration_s=self.command_duration_s)

    def stimulus_at(self, amplitude_ma: float) -> Stimulus | None:
        """The checked train at ``amplitude_ma`` (None at 0 mA); raises if it is unsafe."""
        if amplitude_ma <= 0.0:
            return None
        if amplitude_ma > self.amplitude_max_ma + _EPS:
            raise ValidationError("amplitude_ma", amplitude_ma, f"<= amplitude_max_ma = {self.amplitude_max_ma:g}")
        return self.space.check(self._stim(amplitude_ma))


class AdaptiveController(_Base):
    """Biomarker -> amplitude, with ramp limits, hysteresis and blanking (module docstring).

    Args:
        cfg: The settings.
        space: The device's stimulus space (bounds, amplitude grid, safety limits).
        contact: Overrides ``cfg.contact``.
    """

    def __init__(self, cfg: ControllerConfig, space: StimulusSpace, *, contact: str | None = None) -> None:
        super().__init__(cfg, space, contact=contact)
        self.threshold_on: float | None = cfg.threshold_on
        self.threshold_off: float | None = cfg.threshold_off if cfg.mode == "dual_threshold" else None
        self.smoother = ExpSmoother(cfg.smoothing_s, cfg.period_s)
        self.reset()

    @property
    def calibrated(self) -> bool:
        """Whether every threshold the mode needs is set."""
        return self.threshold_on is not None and (self.cfg.mode != "dual_threshold" or self.threshold_off is not None)

    def calibrate(self, rest_biomarkers: np.ndarray) -> "AdaptiveController":
        """Set the relative thresholds (offset from the median, or quantile) from rest biomarker values.

        Absolute thresholds in the config are kept. Returns self.

        Args:
            rest_biomarkers: (n,) biomarker values at rest (non-finite ones are dropped; n >= 5).
        """
        x = np.asarray(rest_biomarkers, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if x.size < 5:
            raise ValidationError("rest_biomarkers", f"{x.size} finite values", ">= 5 finite biomarker values at rest")
        cfg = self.cfg
        med = float(np.median(x))
        if cfg.threshold_on is None:
            self.threshold_on = med + cfg.threshold_offset_on if cfg.threshold_offset_on is not None \
                else float(np.quantile(x, cfg.threshold_quantile_on))
        if cfg.mode == "dual_threshold" and cfg.threshold_off is None:
            self.threshold_off = med + cfg.threshold_offset_off if cfg.threshold_offset_off is not None \
                else float(np.quantile(x, cfg.threshold_quantile_off))
            if self.threshold_on is not None and self.threshold_off > self.threshold_on:
                self.threshold_off = self.threshold_on
        log.debug("controller calibrated on %d rest values: threshold_on %.4g, threshold_off %s", x.size,
                 self.threshold_on, "-" if self.threshold_off is None else f"{self.threshold_off:.4g}")
        return self

    def reset(self) -> "AdaptiveController":
        """Back to off (amplitude 0, no blanking, smoothing forgotten); thresholds are kept."""
        self.amplitude_ma = 0.0
        self._level = 0.0         # ramped amplitude before rounding down to the device grid, mA
        self._blank_until = -math.inf
        self._direction = 0       # course held while blanked: +1 up, -1 down, 0 hold
        self.smoother.reset()
        return self

    def _target(self, b: float, current: float) -> tuple[float, str]:
        cfg = self.cfg
        if cfg.mode == "proportional":
            tgt = min(max(cfg.gain_ma_per_decade * (b - self.threshold_on), self.amplitude_min_ma), self.amplitude_max_ma)
            return tgt, "ramp_up" if tgt > current + _EPS else ("ramp_down" if tgt < current - _EPS else "hold")
        if b > self.threshold_on:
            return self.amplitude_max_ma, "ramp_up"
        if b < self.threshold_off:
            return self.amplitude_min_ma, "ramp_down"
        return current, "hold"

    def step(self, t: float, biomarker: float) -> Decision:
        """One control step at time ``t`` (s) with the newest biomarker value.

        The ramped level moves by at most ``ramp × period_s`` per step (the elapsed time since the
        previous step is not used, so a late call never produces a larger jump); the emitted
        amplitude is that level rounded down to the device's amplitude grid, so it never exceeds
        the level. A ramp finer than the grid (0.05 mA/s on a 0.05 mA grid is 0.005 mA per 100 ms
        step) moves the emitted amplitude by one grid step every ``grid / (ramp × period)`` steps:
        the average rate is the ramp.
        """
        if not self.calibrated:
            raise ValidationError("thresholds", None, "set: give absolute thresholds or call calibrate(rest) first")
        cfg = self.cfg
        b_raw = float(biomarker)
        prev = self.amplitude_ma
        used: float | None = None
        if t < self._blank_until:
            state = "blank"
            tgt = {1: self.amplitude_max_ma, -1: self.amplitude_min_ma}.get(self._direction, self._level)
        elif not math.isfinite(b_raw):
            state, tgt = "invalid", self.amplitude_min_ma
        else:
            used = self.smoother(b_raw)
            tgt, state = self._target(used, self._level)
        up, down = cfg.ramp_up_ma_per_s * cfg.period_s, cfg.ramp_down_ma_per_s * cfg.period_s
        level = self._level
        level = min(tgt, level + up) if tgt > level else (max(tgt, level - down) if tgt < level else level)
        level = min(max(level, 0.0), self.amplitude_max_ma)
        if state not in ("blank", "invalid"):
            self._direction = 1 if level > self._level else (-1 if level < self._level else 0)
        self._level = level
        new = min(self._grid_down(level), self.amplitude_max_ma)
        if prev <= 0.0 < new and cfg.onset_blank_s > 0:
            self._blank_until = t + cfg.onset_blank_s
        elif new <= 0.0 < prev and cfg.offset_blank_s > 0:
            self._blank_until = t + cfg.offset_blank_s
        if new <= 0.0 and state in ("hold", "ramp_down"):
            state = "off"
        self.amplitude_ma = new
        return Decision(t=float(t), amplitude_ma=new, stimulus=self.stimulus_at(new), stop=prev > 0.0 >= new,
                        state=state, biomarker=b_raw, biomarker_used=used, threshold_on=self.threshold_on,
                        threshold_off=self.threshold_off)


class OpenLoop(_Base):
    """Continuous open-loop stimulation at one amplitude, with the controller's step interface.

    Args:
        cfg: The settings (contact, frequency, pulse width, command duration).
        space: The device's stimulus space.
        amplitude_ma: The amplitude, mA (default ``cfg.amplitude_max_ma``, capped to the safe limit).
        contact: Overrides ``cfg.contact``.
    """

    def __init__(self, cfg: ControllerConfig, space: StimulusSpace, *, amplitude_ma: float | None = None,
                 contact: str | None = None) -> None:
        super().__init__(cfg, space, contact=contact)
        a = self.amplitude_max_ma if amplitude_ma is None else float(amplitude_ma)
        _finite("amplitude_ma", a, 0.0, self.amplitude_max_ma,
                allowed=f"an amplitude in [0, {self.amplitude_max_ma:g}] mA")
        self.amplitude_ma = self._grid_down(a)
        self.threshold_on = self.threshold_off = None

    def calibrate(self, rest_biomarkers: np.ndarray) -> "OpenLoop":
        """Nothing to calibrate; returns self."""
        return self

    def reset(self) -> "OpenLoop":
        return self

    def step(self, t: float, biomarker: float | None = None) -> Decision:
        """The same train every period, whatever the biomarker."""
        b = None if biomarker is None else float(biomarker)
        return Decision(t=float(t), amplitude_ma=self.amplitude_ma, stimulus=self.stimulus_at(self.amplitude_ma),
                        stop=False, state="on" if self.amplitude_ma > 0 else "off", biomarker=b, biomarker_used=None,
                        threshold_on=None, threshold_off=None)
