"""The stimulation command protocol: signed JSON commands, the device-side gate, acknowledgements.

A command is one JSON object (one string sample on the command stream)::

    {"v": 1, "session": "a1b2...", "seq": 17, "action": "stimulate",
     "stimulus": {...Stimulus.to_dict()...}, "apply_at": 12345.678, "mac": "<64 hex>"}

``mac`` is HMAC-SHA256 with the session key over the *canonical JSON* of every other field
(keys sorted, no whitespace, UTF-8, no NaN/Infinity). ``apply_at`` is in the LSL clock
(``local_clock()``, s). ``action`` is ``"stimulate"`` or ``"stop"``.

The device applies a command only if it parses, authenticates (constant-time compare), is not
a replay (``seq`` strictly increasing per session), is not stale (``apply_at`` not older than
``max_age_s``, not more than ``max_lead_s`` ahead) and passes ``space.check`` (the one safety
choke point). Everything else is acknowledged as rejected with a reason code.

**A stop always wins**: a stop must parse and authenticate (an unauthenticated message can
never change what the device does, so no process on the network can interfere with a session),
but it is never blocked by the replay, staleness or safety checks, and it is applied at once,
whatever its ``apply_at``. Replaying a stop can only stop stimulation, the safe state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import CommandRejected, ConfigError, SafetyLimitError, ValidationError
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = [
    "PROTOCOL_VERSION", "REASONS", "Command", "Ack", "canonical_json", "compute_mac", "keygen",
    "load_key", "CommandSigner", "DeviceCommandGate", "new_session_id",
]

log = get_logger("lsl.protocol")

PROTOCOL_VERSION = 1
ACTIONS = ("stimulate", "stop")
REASONS = {
    "malformed": "not a JSON object of at most max_message_bytes, or duplicate keys / NaN",
    "bad_mac": "missing or wrong HMAC-SHA256",
    "bad_field": "a field is missing, unknown, of the wrong type or out of range",
    "bad_version": "protocol version other than 1",
    "replay": "seq not strictly greater than the last accepted seq of this session",
    "stale": "apply_at older than max_age_s",
    "future": "apply_at more than max_lead_s ahead",
    "invalid_stimulus": "the stimulus does not parse (Stimulus.from_dict raised ValidationError)",
    "unsafe": "space.check refused the stimulus (SafetyLimitError or out of the space)",
    "superseded": "a scheduled command was cancelled by a stop before its apply time",
    "internal": "the device failed while checking the command (bug); not applied",
}
_SESSION_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FIELDS = {"v", "session", "seq", "action", "stimulus", "apply_at", "mac"}
_MAX_SEQ = 2**53  # exact in JSON numbers everywhere


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, no whitespace, NaN/Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def compute_mac(fields: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) over the canonical JSON of ``fields`` without ``mac``."""
    body = {k: v for k, v in fields.items() if k != "mac"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def new_session_id() -> str:
    """A random 16-hex-digit session id."""
    return secrets.token_hex(8)


def keygen(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a new random 256-bit session key (hex) to ``path`` with permissions 0600.

    Raises:
        ConfigError: ``path`` exists and ``overwrite`` is false.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"key file {str(p)!r} exists; pass overwrite=True (--force) to replace it") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(secrets.token_hex(32) + "\n")
    return p


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a key written by :func:`keygen`.

    Raises:
        ConfigError: missing file, readable by group/others, or not at least 16 bytes of hex.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"key file {str(p)!r} does not exist; create one with `bfm-stim keygen {p}`")
    mode = stat.S_IMODE(p.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"key file {str(p)!r} has permissions {oct(mode)}; expected 0o600 (chmod 600)")
    text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"key file {str(p)!r} is not hex; create one with `bfm-stim keygen`") from None
    if len(key) < 16:
        raise ConfigError(f"key file {str(p)!r} holds {len(key)} bytes; expected at least 16")
    return key


@dataclass(frozen=True)
class Command:
    """A verified command (what the gate hands to the device).

    Args:
        session: Session id.
        seq: Sequence number (strictly increasing per session).
        action: ``"stimulate"`` or ``"stop"``.
        stimulus: The stimulus (``None`` for a stop).
        apply_at: When to apply it, LSL clock, s.
    """

    session: str
    seq: int
    action: str
    stimulus: Stimulus | None
    apply_at: float


@dataclass(frozen=True)
class Ack:
    """An acknowledgement sent by the device (one JSON string sample on the ack stream).

    ``status`` is ``"applied"`` (with ``applied_at``, the LSL time of the first sample under the
    new stimulus) or ``"rejected"`` (with ``reason`` from :data:`REASONS` and ``detail``). A device
    that can assess side effects (a patient's report, an EMG threshold) may add ``side_effect``, a
    severity in [0, 1] for the applied train (0: none); the session hands it to the optimizer.
    """

    status: str
    session: str | None = None
    seq: int | None = None
    action: str | None = None
    reason: str | None = None
    detail: str = ""
    applied_at: float | None = None
    received_at: float | None = None
    side_effect: float | None = None

    def to_json(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if v is not None and v != ""}
        return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "Ack":
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("status") not in ("applied", "rejected"):
            raise ValidationError("ack", text[:200], "a JSON object with status 'applied' or 'rejected'")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class CommandSigner:
    """Controller side: builds signed commands with increasing sequence numbers.

    Args:
        key: Session key (from :func:`load_key`).
        session: Session id; a random one by default.
        first_seq: First sequence number (resume a session after the last acknowledged one).
    """

    def __init__(self, key: bytes, *, session: str | None = None, first_seq: int = 1) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValidationError("key", "<key>", "at least 16 bytes")
        self.key = bytes(key)
        self.session = session or new_session_id()
        if not _SESSION_RE.match(self.session):
            raise ValidationError("session", self.session, "1-64 characters of [A-Za-z0-9_.-]")
        self._next = int(first_seq)

    @property
    def next_seq(self) -> int:
        """The sequence number of the next command built."""
        return self._next

    def _build(self, action: str, stimulus: dict | None, apply_at: float) -> tuple[int, str]:
        seq = self._next
        self._next += 1
        d: dict[str, Any] = {"v": PROTOCOL_VERSION, "session": self.session, "seq": seq, "action": action,
                             "stimulus": stimulus, "apply_at": float(apply_at)}
        d["mac"] = compute_mac(d, self.key)
        return seq, canonical_json(d).decode()

    def stimulate(self, stim: Stimulus, apply_at: float) -> tuple[int, str]:
        """A signed stimulate command; returns ``(seq, json_text)``. ``apply_at`` in LSL s."""
        return self._build("stimulate", stim.to_dict(), apply_at)

    def stop(self, apply_at: float) -> tuple[int, str]:
        """A signed stop command (applied at once by the device); returns ``(seq, json_text)``."""
        return self._build("stop", None, apply_at)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate keys")
    return d


class DeviceCommandGate:
    """Device side: decides whether a received command may be applied.

    Args:
        key: Session key shared with the controller.
        space: The device's stimulus space; ``space.check`` is the safety check.
        clock: Current LSL time, s (``local_clock``).
        max_age_s: Oldest acceptable ``apply_at`` relative to now, s.
        max_lead_s: Furthest acceptable ``apply_at`` ahead of now, s.
        max_message_bytes: Longer messages are refused unparsed.
        max_sessions: Sessions remembered for replay checks (oldest forgotten first; a
            forgotten session's old commands are still refused as stale).
    """

    def __init__(self, key: bytes, space: StimulusSpace, *, clock: Callable[[], float] | None = None,
                 max_age_s: float = 0.5, max_lead_s: float = 10.0, max_message_bytes: int = 4096,
                 max_sessions: int = 64) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValidationError("key", "<key>", "at least 16 bytes")
        if not isinstance(space, StimulusSpace):
            raise ValidationError("space", type(space).__name__, "a bfm_stim.space.StimulusSpace")
        for name, v in (("max_age_s", max_age_s), ("max_lead_s", max_lead_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(name, v, "a finite duration > 0 s")
        if clock is None:
            from bfm_stim.lsl.config import local_clock as clock  # noqa: N813
        self.key, self.space, self.clock = bytes(key), space, clock
        self.max_age_s, self.max_lead_s = float(max_age_s), float(max_lead_s)
        self.max_message_bytes, self.max_sessions = int(max_message_bytes), int(max_sessions)
        self._last_seq: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def verify(self, message: str | bytes) -> Command:
        """Check one message; return the :class:`Command` or raise :class:`CommandRejected`.

        The sequence number is consumed (recorded as the session's last) only when this returns.
        """
        raw = message.encode("utf-8", "replace") if isinstance(message, str) else bytes(message)
        if len(raw) > self.max_message_bytes:
            raise CommandRejected("malformed", f"{len(raw)} bytes > max_message_bytes={self.max_message_bytes}")
        try:
            d = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_no_dupes)
        except (ValueError, RecursionError) as e:
            raise CommandRejected("malformed", f"not valid JSON: {str(e)[:120]}") from None
        if not isinstance(d, dict):
            raise CommandRejected("malformed", f"expected a JSON object, got {type(d).__name__}")
        mac = d.get("mac")
        if not isinstance(mac, str) or len(mac) != 64:
            raise CommandRejected("bad_mac", "missing mac (64 hex digits of HMAC-SHA256)")
        try:
            expected = compute_mac(d, self.key)
        except (TypeError, ValueError) as e:
            raise CommandRejected("malformed", f"cannot canonicalize: {e}") from None
        if not hmac.compare_digest(expected, mac.lower()):
            raise CommandRejected("bad_mac", "HMAC does not match the session key")
        cmd = self._fields(d)
        if cmd.action == "stop":
            self._record(cmd)
            return cmd
        last = self._last_seq.get(cmd.session)
        if last is not None and cmd.seq <= last:
            raise CommandRejected("replay", f"seq={cmd.seq} <= last accepted seq {last} of session {cmd.session}")
        now = self.clock()
        if cmd.apply_at < now - self.max_age_s:
            raise CommandRejected("stale", f"apply_at is {now - cmd.apply_at:.3f} s old; allowed {self.max_age_s} s")
        if cmd.apply_at > now + self.max_lead_s:
            raise CommandRejected("future", f"apply_at is {cmd.apply_at - now:.3f} s ahead; allowed {self.max_lead_s} s")
        try:
            self.space.check(cmd.stimulus)  # type: ignore[arg-type]  # stimulate has one
        except (SafetyLimitError, ValidationError) as e:
            raise CommandRejected("unsafe", str(e)) from None
        self._record(cmd)
        return cmd

    def _fields(self, d: dict) -> Command:
        unknown = set(d) - _FIELDS
        if unknown:
            raise CommandRejected("bad_field", f"unknown fields {sorted(unknown)}; allowed {sorted(_FIELDS)}")
        if d.get("v") != PROTOCOL_VERSION or isinstance(d.get("v"), bool):
            raise CommandRejected("bad_version", f"v={d.get('v')!r}; expected {PROTOCOL_VERSION}")
        session, seq, action, apply_at = d.get("session"), d.get("seq"), d.get("action"), d.get("apply_at")
        if not isinstance(session, str) or not _SESSION_RE.match(session):
            raise CommandRejected("bad_field", f"session={session!r}; expected 1-64 characters of [A-Za-z0-9_.-]")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < _MAX_SEQ:
            raise CommandRejected("bad_field", f"seq={seq!r}; expected an integer in [0, 2**53)")
        if action not in ACTIONS:
            raise CommandRejected("bad_field", f"action={action!r}; expected one of {ACTIONS}")
        if isinstance(apply_at, bool) or not isinstance(apply_at, (int, float)) or not math.isfinite(apply_at):
            raise CommandRejected("bad_field", f"apply_at={apply_at!r}; expected a finite LSL time in s")
        stim_d = d.get("stimulus")
        stim = None
        if action == "stimulate":
            if not isinstance(stim_d, dict):
                raise CommandRejected("bad_field", f"stimulus={stim_d!r:.80}; expected a JSON object")
            try:
                stim = Stimulus.from_dict(stim_d)
            except (ValidationError, TypeError) as e:
                raise CommandRejected("invalid_stimulus", str(e)[:300]) from None
        elif stim_d is not None:
            raise CommandRejected("bad_field", "a stop carries stimulus=null")
        return Command(session=session, seq=seq, action=action, stimulus=stim, apply_at=float(apply_at))

    def _record(self, cmd: Command) -> None:
        last = self._last_seq.pop(cmd.session, -1)
        self._last_seq[cmd.session] = max(last, cmd.seq)  # re-insert: most recent last
        while len(self._last_seq) > self.max_sessions:
            self._last_seq.pop(next(iter(self._last_seq)))

    def process(self, message: str | bytes) -> tuple[Command | None, Ack | None]:
        """Verify one message; never raises.

        Returns:
            ``(command, None)`` when accepted (the device acknowledges it once applied), or
            ``(None, ack)`` with a rejection acknowledgement to publish.
        """
        now = self.clock()
        try:
            cmd = self.verify(message)
        except CommandRejected as e:
            reason, detail = e.reason, e.detail
        except Exception as e:  # noqa: BLE001 - a device never crashes on input; refuse and report
            log.exception("gate failed on a command")
            reason, detail = "internal", f"{type(e).__name__}: {e}"[:300]
        else:
            self.counts["accepted"] = self.counts.get("accepted", 0) + 1
            return cmd, None
        self.counts[reason] = self.counts.get(reason, 0) + 1
        session, seq, action = _best_effort_ids(message)
        return None, Ack(status="rejected", session=session, seq=seq, action=action, reason=reason,
                         detail=detail, received_at=now)


def _best_effort_ids(message: str | bytes) -> tuple[str | None, int | None, str | None]:
    """Session, seq and action of a (possibly rejected) message, if they can be read."""
    try:
        d = json.loads(message if isinstance(message, str) else message.decode("utf-8", "replace"),
                       parse_constant=_reject_constant)
    except Exception:  # noqa: BLE001
        return None, None, None
    if not isinstance(d, dict):
        return None, None, None
    session = d.get("session") if isinstance(d.get("session"), str) and len(d["session"]) <= 64 else None
    seq = d.get("seq") if isinstance(d.get("seq"), int) and not isinstance(d.get("seq"), bool) else None
    if seq is not None and not -_MAX_SEQ < seq < _MAX_SEQ:
        seq = None
    action = d.get("action") if d.get("action") in ACTIONS else None
    return session, seq, action
