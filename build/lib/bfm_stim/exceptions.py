"""One exception hierarchy for bfm-stim.

Every error raised on purpose by the package derives from :class:`BfmStimError`, so callers can
catch the whole family at once. Messages name the field, the value that was given and what is
allowed, so a person knows what to change.
"""

from __future__ import annotations

__all__ = [
    "BfmStimError",
    "ConfigError",
    "ValidationError",
    "SafetyLimitError",
    "RecordingError",
    "StreamError",
    "StreamMismatchError",
    "CommandRejected",
    "ModelError",
    "CheckpointError",
    "OptimizerError",
    "SimulatorError",
]


class BfmStimError(Exception):
    """Base class of every error bfm-stim raises on purpose."""


class ConfigError(BfmStimError, ValueError):
    """A configuration (TOML file, CLI option, dataclass field) is malformed or inconsistent."""


class ValidationError(BfmStimError, ValueError):
    """A value is of the wrong type, not finite, or outside its allowed range.

    Attributes:
        field: Name of the offending field.
        value: The value that was given.
        allowed: Human-readable description of what is allowed.
    """

    def __init__(self, field: str, value: object, allowed: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.hint = hint
        msg = f"{field}={value!r} is not allowed; expected {allowed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __reduce__(self) -> tuple:  # rebuilt from its fields in a parent process (pools pickle errors)
        return type(self), (self.field, self.value, self.allowed, self.hint)


class SafetyLimitError(BfmStimError, ValueError):
    """A stimulus violates a safety limit.

    Attributes:
        limit: Name of the violated limit (e.g. ``"shannon"``, ``"charge_density"``).
        value: The stimulus' value for that limit, in ``unit``.
        allowed: The largest allowed value, in ``unit``.
        unit: Unit of ``value`` and ``allowed``.
    """

    def __init__(self, limit: str, value: float, allowed: float, unit: str, detail: str = "") -> None:
        self.limit = limit
        self.value = float(value)
        self.allowed = float(allowed)
        self.unit = unit
        self.detail = detail
        over = self.value - self.allowed
        pct = 100.0 * over / abs(self.allowed) if self.allowed else float("inf")
        msg = (
            f"unsafe stimulus: {limit} = {self.value:.4g} {unit} exceeds the limit "
            f"{self.allowed:.4g} {unit} by {over:.4g} {unit} ({pct:.1f}% over)"
        )
        if detail:
            msg += f"; {detail}"
        super().__init__(msg)

    def __reduce__(self) -> tuple:
        return type(self), (self.limit, self.value, self.allowed, self.unit, self.detail)


class RecordingError(BfmStimError):
    """A recording cannot be read, is corrupt, or is inconsistent."""


class StreamError(BfmStimError):
    """An LSL stream cannot be found, was lost, or misbehaves."""


class StreamMismatchError(StreamError):
    """A stream appeared with the wrong channel count, rate or format."""


class CommandRejected(BfmStimError):
    """A stimulation command was refused (parse, authentication, replay, staleness, safety).

    Attributes:
        reason: Short machine-readable reason code (e.g. ``"bad_hmac"``, ``"replay"``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"command rejected ({reason}): {detail}" if detail else f"command rejected ({reason})")

    def __reduce__(self) -> tuple:
        return type(self), (self.reason, self.detail)


class ModelError(BfmStimError):
    """The foundation model was used wrongly (shapes, receptive field, configuration)."""


class CheckpointError(ModelError):
    """A checkpoint is missing, corrupt, or does not match the code that loads it."""


class OptimizerError(BfmStimError):
    """An optimizer was misused (e.g. ``tell`` with outcomes that do not match ``ask``)."""


class SimulatorError(BfmStimError):
    """A synthetic patient was misconfigured or misused."""
