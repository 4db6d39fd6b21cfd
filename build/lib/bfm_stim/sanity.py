"""Sanity checks of a recording before the model sees it.

Real recordings arrive with unit errors, dead or saturated channels, movement and trigger channels
typed as EEG, mains hum and gaps. :func:`check_recording` looks for each and returns a
:class:`SanityReport` of :class:`Finding` s, each naming the channel, the value it measured, the
plausible range and what to do. Errors stop a command (:meth:`SanityReport.raise_if_errors`);
warnings and notes are logged and travel in the command's output JSON.

Checks (``Finding.code``):

- ``scale`` (error): the median amplitude (robust std after a 0.5 Hz high-pass) of the neural
  channels is above 10 mV, or (warning) below 0.05 µV: a unit error; the advice gives the factor
  for ``--scale`` (:func:`apply_scale`). ``amplitude`` (warning): one channel above 10 mV while the
  others are plausible (a bad electrode).
- ``flat`` (warning): a channel that does not change; it is left out (:func:`neural_channels`).
- ``clipped`` (warning): many samples pinned at the channel's extreme values (amplifier range).
- ``non_neural`` (info, or warning when the name contradicts a neural type): movement or
  accelerometer, force or grip, EMG, EOG, ECG, trigger/status/stim and misc channels, by type or
  name; left out of the model's input.
- ``no_neural`` (error): nothing left to give the model.
- ``line_noise`` (warning): a 50 or 60 Hz peak well above its spectral neighbourhood (which one is
  reported).
- ``too_short`` (error): less stimulation-off data than the requested use needs.
- ``nan_gaps`` (error): NaN or infinite samples (count and longest gap per channel); only data
  arrays can hold them (:func:`check_signals`), a :class:`~bfm_stim.recording.Recording` cannot.
- ``no_positions`` (info): neural channels without electrode positions (see
  :mod:`bfm_stim.io.geometry` for what the model does then). ``position_units`` (warning):
  positions that look like mm stored as m.

Example:
    >>> rec = Recording.read("patient.vhdr")                 # doctest: +SKIP
    >>> report = check_recording(rec, min_duration_s=10.0)   # doctest: +SKIP
    >>> print(report.summary())                              # doctest: +SKIP
    >>> report.raise_if_errors()                             # doctest: +SKIP
    >>> model_input = neural_channels(rec, report=report)    # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import RecordingError, ValidationError
from bfm_stim.recording import Recording

__all__ = ["Finding", "SanityReport", "check_recording", "check_signals", "nan_gaps", "non_neural_reason",
           "neural_channels", "apply_scale", "NEURAL_TYPES", "MAX_STD_UV", "MIN_STD_UV", "SEVERITIES"]

log = get_logger("sanity")

#: Channel types the model reads (``lfp`` is read as ``dbs``).
NEURAL_TYPES = frozenset({"eeg", "seeg", "ecog", "dbs", "lfp"})
#: Largest plausible amplitude (robust std) of a neural channel, µV (10 mV).
MAX_STD_UV = 10_000.0
#: Smallest plausible median amplitude of the neural channels, µV.
MIN_STD_UV = 0.05
#: Line-noise peak over its neighbourhood that is reported, dB.
LINE_NOISE_DB = 10.0
SEVERITIES = ("error", "warning", "info")
_PLAUSIBLE_STD = f"a robust std of {MIN_STD_UV:g} µV to {MAX_STD_UV / 1000:g} mV"
_ANALYSIS_S = 300.0  # at most this many seconds (in spread windows) go into the spectral and amplitude checks

# Name patterns of channels that are not neural; matched against the letter runs of the name
# ("ACC_X" -> "acc", "x"; "EMG1" -> "emg"), so "ECoG" is not "ECG" and "STN" is not "stim".
_NAME_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("movement/accelerometer", re.compile(r"^(acc|accel\w*|gyro\w*|mov\w*|motion|imu|tremor|mag)$")),
    ("force/grip", re.compile(r"^(force|grip\w*|grf|dynamometer|pinch)$")),
    ("EMG", re.compile(r"emg")),
    ("EOG", re.compile(r"^[vh]?eog$")),
    ("ECG", re.compile(r"^(ecg|ekg)$")),
    ("trigger/stim/status", re.compile(r"trig|^(status|sti|stim|marker|markers|ttl|din|dig|event|events|sync)$")),
    ("misc", re.compile(r"^(misc|aux|resp|temp|gsr|eda|spo|photo|pd|audio|sound|mic|button)$")),
)
_TYPE_KINDS = {"eog": "EOG", "ecg": "ECG", "emg": "EMG", "stim": "trigger/stim/status", "misc": "misc",
               "resp": "misc", "bio": "misc", "syst": "misc", "gsr": "misc", "temperature": "misc",
               "eyegaze": "misc", "pupil": "misc", "chpi": "misc", "exci": "misc", "ias": "misc"}


@dataclass(frozen=True)
class Finding:
    """One thing a check found.

    Attributes:
        code: What was checked (``"scale"``, ``"flat"``, ``"clipped"``, ``"non_neural"``, ...).
        severity: ``"error"`` (stops a command), ``"warning"`` or ``"info"``.
        channel: The channel concerned, or ``None`` for the whole recording.
        value: What was measured (a number in the unit the message states, or a short text).
        plausible: The plausible range or expectation, in words with units.
        advice: What to do about it.
        message: The whole finding in one sentence (built from the fields when empty).
    """

    code: str
    severity: str
    channel: str | None
    value: Any
    plausible: str
    advice: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValidationError("Finding.severity", self.severity, f"one of {SEVERITIES}")
        if not self.message:
            where = self.channel if self.channel is not None else "recording"
            object.__setattr__(self, "message", f"{where}: {self.code} = {self.value!r} (plausible: {self.plausible}); "
                                                f"{self.advice}")

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclass(frozen=True)
class SanityReport:
    """The findings of :func:`check_recording` for one recording.

    Attributes:
        findings: Every finding, errors first.
        source: The file (or stream) checked.
        n_channels: Channels in the recording.
        duration_s: Its length, s.
    """

    findings: tuple[Finding, ...] = ()
    source: str = ""
    n_channels: int = 0
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        object.__setattr__(self, "findings", tuple(sorted(self.findings, key=lambda f: order[f.severity])))

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings that stop a command."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def infos(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "info")

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    @property
    def suggested_scale(self) -> float | None:
        """The factor a ``scale`` finding suggests (``--scale``), or ``None``."""
        for f in self.findings:
            if f.code == "scale" and isinstance(f.value, dict) and f.value.get("suggested_scale"):
                return float(f.value["suggested_scale"])
        return None

    @property
    def excluded(self) -> tuple[str, ...]:
        """Channels :func:`neural_channels` leaves out because of a finding (non-neural, flat)."""
        return tuple(dict.fromkeys(f.channel for f in self.findings
                                   if f.channel is not None and f.code in ("non_neural", "flat")))

    def with_findings(self, extra: Iterable[Finding]) -> SanityReport:
        """A copy with more findings (e.g. from :mod:`bfm_stim.io.geometry`)."""
        return SanityReport(self.findings + tuple(extra), self.source, self.n_channels, self.duration_s)

    def raise_if_errors(self) -> SanityReport:
        """Raise :class:`~bfm_stim.exceptions.RecordingError` listing every error; else return ``self``."""
        if self.errors:
            head = f"{self.source}: " if self.source else ""
            items = " | ".join(f.message for f in self.errors)  # one line: the CLI prints an error's first line
            raise RecordingError(f"{head}{len(self.errors)} problem(s) in the recording: {items}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: source, counts and every finding as a dict."""
        return {"source": self.source, "n_channels": self.n_channels, "duration_s": self.duration_s,
                "n_errors": len(self.errors), "n_warnings": len(self.warnings),
                "findings": [_jsonable(asdict(f)) for f in self.findings]}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    def summary(self) -> str:
        """A few lines for people: counts, then one line per finding."""
        head = (f"{self.source or 'recording'}: {self.n_channels} channels, {self.duration_s:.1f} s: "
                f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), {len(self.infos)} note(s)")
        return "\n".join([head] + [f"  {f}" for f in self.findings])

    def log(self, logger: Any = None) -> None:
        """Log warnings as warnings and notes as info (errors are raised, not logged)."""
        lg = logger or log
        for f in self.warnings:
            lg.warning("%s", f.message)
        for f in self.infos:
            lg.info("%s", f.message)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ------------------------------------------------------------------------------------------------
# channel classification
# ------------------------------------------------------------------------------------------------
def non_neural_reason(name: str, ch_type: str) -> str | None:
    """Why a channel is not neural (``"ECG"``, ``"movement/accelerometer"``, ...), or ``None``.

    By type first (anything but eeg/seeg/ecog/dbs/lfp), then by name, so an ``"ACC_X"`` channel
    that a reader typed ``"eeg"`` is still recognized.
    """
    t = ch_type.lower()
    if t not in NEURAL_TYPES:
        return _TYPE_KINDS.get(t, f"type '{ch_type}'")
    for token in re.findall(r"[a-z]+", name.lower()):
        for kind, pat in _NAME_KINDS:
            if pat.search(token):
                return kind
    return None


def neural_channels(rec: Recording, *, report: SanityReport | None = None, exclude: Sequence[str] = ()) -> Recording:
    """The channels the model should read: neural by type and name, not bad, not flat.

    Leaves out channels that :func:`non_neural_reason` names, ``rec.meta["bads"]``, ``exclude``
    and the flat channels of ``report``. ``lfp`` channels become ``dbs``.

    Raises:
        RecordingError: No channel is left (says which types were found).
    """
    drop = set(exclude) | set(rec.meta.get("bads", ()) or ()) | set(report.excluded if report else ())
    keep = [n for n, t in zip(rec.ch_names, rec.ch_types) if n not in drop and non_neural_reason(n, t) is None]
    if not keep:
        found = sorted(set(rec.ch_types))
        raise RecordingError(
            f"{rec.meta.get('source', 'recording')}: no neural channel to read (types found: {found}; "
            f"{len(drop & set(rec.ch_names))} left out as bad, flat or excluded); give the channel types in a "
            "channels file (--channels-file FILE: name,type with type eeg|ecog|seeg|dbs)")
    out = rec.pick(keep)
    if "lfp" in out.ch_types:
        out = out._replace(ch_types=["dbs" if t == "lfp" else t for t in out.ch_types])
    return out


def apply_scale(rec: Recording, factor: float, *, channels: Sequence[str] | None = None) -> Recording:
    """Multiply voltage channels (unit µV; default all of them) by ``factor``, e.g. ``1e-6`` for
    a file whose volts were read as µV. Stim and non-voltage channels are left alone.

    Raises:
        ValidationError: ``factor`` is not a finite number > 0, or a channel is unknown.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor > 0):
        raise ValidationError("scale", factor, "a finite factor > 0 (e.g. 1e-6 for volts read as µV)")
    names = list(rec.ch_names) if channels is None else list(channels)
    unknown = [n for n in names if n not in rec.ch_names]
    if unknown:
        raise ValidationError("channels", unknown, f"channels of the recording {list(rec.ch_names)}")
    data = rec.data.copy()
    done = []
    for i, (n, u, t) in enumerate(zip(rec.ch_names, rec.units, rec.ch_types)):
        if n in names and t != "stim" and u in ("µV", "uV", "μV"):
            data[i] = data[i] * np.float32(factor)
            done.append(n)
    meta = dict(rec.meta)
    meta["scale"] = float(factor) * float(meta.get("scale", 1.0))
    log.info("scaled %d voltage channels by %g", len(done), factor)
    return rec._replace(data=data, meta=meta)


# ------------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------------
def check_recording(rec: Recording, *, min_duration_s: float | None = None) -> SanityReport:
    """Run every check on ``rec``; see the module docstring.

    Args:
        rec: The recording, as read.
        min_duration_s: Stimulation-off data the intended use needs (before the first stimulation
            event), s; ``None`` skips the check.

    Returns:
        The report; nothing is raised here (call :meth:`SanityReport.raise_if_errors`).
    """
    first_stim = min((e.onset_s for e in rec.events if e.is_stimulation), default=rec.duration_s)
    return check_signals(rec.data, rec.fs, rec.ch_names, rec.ch_types, positions=rec.positions,
                         min_duration_s=min_duration_s, stim_off_s=first_stim,
                         source=str(rec.meta.get("source", "")), bads=rec.meta.get("bads", ()))


def check_signals(data: np.ndarray, fs: float, ch_names: Sequence[str], ch_types: Sequence[str] | None = None, *,
                  positions: np.ndarray | None = None, min_duration_s: float | None = None,
                  stim_off_s: float | None = None, source: str = "", bads: Iterable[str] = ()) -> SanityReport:
    """The checks of :func:`check_recording` on plain arrays, which may hold NaN gaps.

    Args:
        data: Samples ``(n_channels, n_samples)``, voltage channels in µV.
        fs: Sampling rate, Hz.
        ch_names: One name per row.
        ch_types: One type per row (default all ``"eeg"``).
        positions: ``(n_channels, 3)`` m, NaN where unknown; ``None``: unknown.
        min_duration_s: Stimulation-off data needed, s.
        stim_off_s: Stimulation-off data available, s (default the whole duration).
        source: Name of the file, for the report.
        bads: Channels already marked bad (not checked).
    """
    x = np.asarray(data)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim != 2 or len(ch_names) != x.shape[0]:
        raise ValidationError("data.shape", x.shape, f"(n_channels={len(ch_names)}, n_samples)")
    names = list(ch_names)
    types = list(ch_types) if ch_types is not None else ["eeg"] * len(names)
    duration = x.shape[1] / fs
    findings: list[Finding] = []
    findings += nan_gaps(x, fs, names)
    bad = set(bads)
    neural = []
    for i, (n, t) in enumerate(zip(names, types)):
        reason = non_neural_reason(n, t)
        if n in bad:
            findings.append(Finding("non_neural", "info", n, "bad", "a good channel",
                                    "marked bad in the file or channels file; left out"))
        elif reason is None:
            neural.append(i)
        elif t.lower() in NEURAL_TYPES:
            findings.append(Finding(
                "non_neural", "warning", n, reason, "a neural channel (eeg, ecog, seeg, dbs)",
                f"left out of the model's input; if it is neural, give its type in a channels file",
                f"{n}: typed '{t}' but its name says {reason}; left out of the model's input (if it is neural, "
                "give its type in a channels file: --channels-file FILE with name,type)"))
        else:
            findings.append(Finding("non_neural", "info", n, reason, "a neural channel (eeg, ecog, seeg, dbs)",
                                    "left out of the model's input",
                                    f"{n}: {reason} channel (type '{t}'), left out of the model's input"))
    if not neural:
        findings.append(Finding(
            "no_neural", "error", None, sorted(set(types)), "at least one eeg, ecog, seeg or dbs channel",
            "give the channel types in a channels file",
            f"no neural channel (types found: {sorted(set(types))}); give the types in a channels file "
            "(--channels-file FILE: name,type with type eeg|ecog|seeg|dbs) or a BIDS channels.tsv beside the file"))
    else:
        findings += _flat_and_clipped(x, neural, fs, names)
        flat = {f.channel for f in findings if f.code == "flat"}
        live = [i for i in neural if names[i] not in flat]
        if live:  # the amplitude and spectral checks look at up to _ANALYSIS_S seconds, NaN gaps bridged
            segs = [_fill_nan(x[live, w].astype(np.float64)) for w in _windows(x.shape[1], fs)]
            live_names = [names[i] for i in live]
            findings += _amplitude(segs, fs, live_names, [types[i] for i in live])
            findings += _line_noise(segs, fs, live_names)
        else:
            findings.append(Finding("no_neural", "error", None, "all flat", "at least one neural channel with signal",
                                    "check the file and its channel types",
                                    f"every neural channel is flat ({len(neural)} channels)"))
        if positions is not None:
            findings += _positions(np.asarray(positions, dtype=np.float64)[neural], [names[i] for i in neural])
        else:
            findings += _positions(np.full((len(neural), 3), np.nan), [names[i] for i in neural])
    if min_duration_s is not None:
        avail = duration if stim_off_s is None else min(stim_off_s, duration)
        if avail < min_duration_s:
            what = "stimulation-off data before the first stimulus" if stim_off_s is not None and stim_off_s < duration \
                else "data"
            findings.append(Finding(
                "too_short", "error", None, round(avail, 3), f">= {min_duration_s:g} s",
                "record longer, or use a mode that needs less data",
                f"{avail:.1f} s of {what}; this use needs at least {min_duration_s:.1f} s (record a longer "
                "stimulation-off stretch, or use a mode that needs less)"))
    return SanityReport(tuple(findings), source, len(names), duration)


def nan_gaps(data: np.ndarray, fs: float, ch_names: Sequence[str]) -> list[Finding]:
    """One error per channel with NaN or infinite samples: how many gaps, the longest (s), how many samples."""
    x = np.asarray(data)
    out = []
    bad = ~np.isfinite(x)
    for i in np.flatnonzero(bad.any(axis=1)):
        starts, lengths = _runs(bad[i])
        longest = int(lengths.max())
        out.append(Finding(
            "nan_gaps", "error", ch_names[i], {"n_gaps": len(starts), "longest_s": longest / fs,
                                               "n_samples": int(bad[i].sum())},
            "no NaN or infinite samples",
            "interpolate the gaps or crop to a gap-free span, then save the file again",
            f"{ch_names[i]}: {len(starts)} gap(s) of NaN/inf samples ({int(bad[i].sum())} samples, longest "
            f"{longest / fs:.3g} s at {starts[np.argmax(lengths)] / fs:.3g} s); interpolate short gaps or crop "
            "to a gap-free span and save the file again"))
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return starts, stops - starts


def _fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaNs per channel (zeros for an all-NaN channel); for spectra only."""
    out = x.copy()
    idx = np.arange(x.shape[1])
    for i in range(x.shape[0]):
        ok = np.isfinite(out[i])
        if not ok.all():
            out[i] = np.interp(idx, idx[ok], out[i, ok]) if ok.any() else 0.0
    return out


def _windows(n: int, fs: float) -> list[slice]:
    """Up to ``_ANALYSIS_S`` seconds of the recording in ten windows spread over it (all of it when short)."""
    total = int(_ANALYSIS_S * fs)
    if n <= total:
        return [slice(0, n)]
    w = total // 10
    return [slice(int(s), int(s) + w) for s in np.linspace(0, n - w, 10)]


def _finite_row(x: np.ndarray, i: int) -> np.ndarray:
    xi = x[i]
    ok = np.isfinite(xi)
    return xi if ok.all() else xi[ok]


def _flat_and_clipped(x: np.ndarray, rows: list[int], fs: float, names: list[str]) -> list[Finding]:
    """Flat and clipped channels among ``rows`` of ``x`` (finite samples only; one row at a time)."""
    out = []
    finite = {i: _finite_row(x, i) for i in rows}
    stds = {i: float(np.std(v, dtype=np.float64)) if v.size else 0.0 for i, v in finite.items()}
    live = [v for v in stds.values() if v > 0]
    ref = float(np.median(live)) if live else 0.0
    for i in rows:
        n, xi = names[i], finite[i]
        if xi.size < 2:
            continue
        rng = float(xi.max() - xi.min())
        moving = float(np.mean(np.diff(xi) != 0))
        if rng == 0.0 or moving < 0.01 or (ref > 0 and stds[i] < 1e-4 * ref):
            out.append(Finding(
                "flat", "warning", n, stds[i], "a changing signal (std > 0 µV)",
                "left out of the model's input; check the electrode or mark it bad",
                f"{n}: flat (std {stds[i]:.3g} µV, {100 * moving:.1f} % of samples change); left out of "
                "the model's input (check the electrode or mark it bad in a channels file)"))
            continue
        tol = 1e-6 * rng
        pinned = (xi >= xi.max() - tol) | (xi <= xi.min() + tol)
        frac = float(pinned.mean())
        longest = int(_runs(pinned)[1].max())
        if (frac >= 0.005 and longest >= 3) or longest >= max(10, int(0.05 * fs)):
            out.append(Finding(
                "clipped", "warning", n, round(100 * frac, 3), "< 0.5 % of samples at the extreme values",
                "exclude the channel or the saturated stretches; lower the amplifier gain next time",
                f"{n}: {100 * frac:.2g} % of samples at its extreme values ({xi.min():.6g} / {xi.max():.6g} µV, "
                f"runs up to {longest / fs:.3g} s): saturated or clipped; exclude the channel (status bad in a "
                "channels file) or crop the saturated stretches"))
    return out


def _robust_std(segs: list[np.ndarray], fs: float) -> np.ndarray:
    """Per-channel 1.4826 × MAD after a 0.5 Hz high-pass (drift and DC offsets removed), µV."""
    from bfm_stim import preprocessing as pp

    parts = []
    for seg in segs:
        if seg.shape[1] >= max(16, int(4 * fs)) and fs > 1.0:
            seg = pp.filter_data(seg, fs, 0.5, None, order=2)
        else:
            seg = seg - seg.mean(axis=1, keepdims=True)
        parts.append(seg)
    y = np.concatenate(parts, axis=1)
    return 1.4826 * np.median(np.abs(y - np.median(y, axis=1, keepdims=True)), axis=1)


def _suggest_scale(median_uv: float) -> float:
    factors = (1e-3, 1e-6, 1e-9, 1e-12) if median_uv > MAX_STD_UV else (1e3, 1e6, 1e9)
    for f in factors:
        if 0.5 <= median_uv * f <= 1000.0:
            return f
    return 10.0 ** (-round(math.log10(median_uv / 30.0)))


def _amplitude(segs: list[np.ndarray], fs: float, names: list[str], types: list[str]) -> list[Finding]:
    std = _robust_std(segs, fs)
    med = float(np.median(std))
    kinds = "/".join(sorted({t.upper() for t in types}))
    if med > MAX_STD_UV or 0 < med < MIN_STD_UV:
        f = _suggest_scale(med)
        lo, hi = float(std.min()), float(std.max())
        sev = "error" if med > MAX_STD_UV else "warning"
        return [Finding(
            "scale", sev, None, {"median_std_uv": med, "min_std_uv": lo, "max_std_uv": hi, "suggested_scale": f},
            f"{_PLAUSIBLE_STD} for {kinds}",
            f"re-read with --scale {f:g}",
            f"implausible amplitude scale: the {len(names)} {kinds} channels have a robust std of "
            f"{_fmt_uv(lo)} to {_fmt_uv(hi)} (median {_fmt_uv(med)}); plausible is {_PLAUSIBLE_STD}. Most likely a "
            f"unit error: read it with --scale {f:g} (median {_fmt_uv(med * f)} after scaling), or fix the unit "
            "in the file's header")]
    out = []
    for n, s in zip(names, std):
        if s > MAX_STD_UV:
            out.append(Finding(
                "amplitude", "warning", n, float(s), _PLAUSIBLE_STD,
                "a bad or disconnected electrode? mark it bad in a channels file",
                f"{n}: robust std {_fmt_uv(float(s))}, above the plausible {_fmt_uv(MAX_STD_UV)} while the median "
                f"channel has {_fmt_uv(med)}: a bad or disconnected electrode? mark it bad (status bad in a channels "
                "file) or drop it"))
    return out


def _fmt_uv(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.3g} V"
    if v >= 1e3:
        return f"{v / 1e3:.3g} mV"
    return f"{v:.3g} µV"


def _line_noise(segs: list[np.ndarray], fs: float, names: list[str]) -> list[Finding]:
    from scipy.signal import welch

    nyq = fs / 2.0
    cands = [f0 for f0 in (50.0, 60.0) if f0 + 4.0 < nyq]
    if not cands:
        return []
    nper = int(min(min(seg.shape[1] for seg in segs), 2 * fs))
    if nper < int(fs / 2):  # under 0.5 s: no resolution to speak of
        return []
    psd = []
    for seg in segs:
        f, p = welch(seg, fs=fs, nperseg=nper, axis=-1)
        psd.append(p)
    p = np.mean(psd, axis=0)
    ratios = {}
    for f0 in cands:
        peak = p[:, (f >= f0 - 1.0) & (f <= f0 + 1.0)].max(axis=1)
        side = (np.abs(f - f0) >= 2.0) & (np.abs(f - f0) <= 6.0)
        base = np.median(p[:, side], axis=1)
        ratios[f0] = 10 * np.log10(np.maximum(peak, 1e-30) / np.maximum(base, 1e-30))
    f0 = max(ratios, key=lambda k: float(np.median(ratios[k])))
    db = ratios[f0]
    med = float(np.median(db))
    if med < LINE_NOISE_DB:
        return []
    other = [k for k in ratios if k != f0]
    worst = int(np.argmax(db))
    hit = int((db >= LINE_NOISE_DB).sum())
    harmonics = [h for h in (f0, 2 * f0, 3 * f0) if h < nyq]
    note = f" ({other[0]:g} Hz: {float(np.median(ratios[other[0]])):.0f} dB)" if other else ""
    return [Finding(
        "line_noise", "warning", None, {"line_hz": f0, "median_db": med, "worst_channel": names[worst],
                                        "worst_db": float(db[worst]), "n_channels": hit},
        f"a {f0:g} Hz peak < {LINE_NOISE_DB:g} dB above its neighbourhood (±2-6 Hz)",
        f"notch it: Recording.notch({harmonics})",
        f"{f0:g} Hz line noise{note}: the peak stands {med:.0f} dB above its neighbourhood (median of the "
        f"neural channels; {hit} of {len(names)} channels above {LINE_NOISE_DB:g} dB, worst {names[worst]} "
        f"{float(db[worst]):.0f} dB); notch it before use (Recording.notch({harmonics})) or check the grounding")]


def _positions(pos: np.ndarray, names: list[str]) -> list[Finding]:
    if not names:
        return []
    known = np.isfinite(pos).all(axis=1)
    out = []
    if not known.all():
        missing = [n for n, k in zip(names, known) if not k]
        shown = ", ".join(missing[:8]) + (f", … ({len(missing)} in all)" if len(missing) > 8 else "")
        out.append(Finding(
            "no_positions", "info", None, len(missing), "a position (m) for every neural channel",
            "give positions: --electrodes FILE (BIDS electrodes.tsv, CSV or TOML) or --montage NAME",
            f"{len(missing)} of {len(names)} neural channels have no position ({shown}); the model embeds them "
            "all alike, without geometry (see bfm_stim.io.geometry); give positions with --electrodes FILE or "
            "--montage NAME"))
    if known.any() and float(np.abs(pos[known]).max()) > 1.0:
        out.append(Finding(
            "position_units", "warning", None, float(np.abs(pos[known]).max()), "|x|, |y|, |z| < 1 m (a head)",
            "positions are in m; a file in mm needs x_mm/y_mm/z_mm columns or units = \"mm\"",
            f"electrode positions reach {float(np.abs(pos[known]).max()):.4g} m, larger than a head: mm stored "
            "as m? give the positions in m (or columns x_mm, y_mm, z_mm)"))
    return out
