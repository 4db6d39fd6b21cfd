"""Building blocks of the generated benchmark pages: the ``bench/*.json`` loader and Markdown formatting.

Every number a page shows goes through one of the formatters here (:func:`num`, :func:`pct`,
:func:`signed`, :func:`ms` …) straight from a JSON value, so no figure is ever typed into a page by
hand. :class:`Bench` reads the files; a missing one is not an error but a section that says it has
not been run (:func:`not_run`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from bfm_stim.exceptions import ConfigError

__all__ = ["REPO", "BENCH_DIR", "CHECKPOINT", "DASH", "Bench", "MissingBench", "Section", "TargetRow", "num",
           "trials", "pct", "signed", "ms", "times", "minutes", "compact", "median_of", "iqr", "table", "met_word",
           "targets_table", "target_rows", "op", "op_pct", "not_run", "rerun", "checkpoint_digest", "shipped_digest"]

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"
CHECKPOINT = REPO / "bfm_stim" / "checkpoints" / "default" / "model.pt"
DASH = "—"


class MissingBench(Exception):
    """A section's ``bench/NAME.json`` is not there (the benchmark has not been run)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Bench:
    """The benchmark results of one folder, read lazily and cached.

    Args:
        root: Folder holding ``NAME.json`` files (default ``bench/`` of the repository); its
            ``diagnostics/`` subfolder holds one-off diagnostics, read with :meth:`diag`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else BENCH_DIR
        self._cache: dict[str, Any] = {}

    def path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def __getitem__(self, name: str) -> Any:
        """The parsed ``NAME.json``; raises :class:`MissingBench` when absent, ConfigError when unreadable."""
        if name not in self._cache:
            p = self.path(name)
            if not p.is_file():
                raise MissingBench(name)
            try:
                self._cache[name] = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise ConfigError(f"{p}: not valid JSON ({e}); rerun its benchmark or restore it from git") from None
        return self._cache[name]

    def diag(self, name: str) -> Any | None:
        """``diagnostics/NAME.json`` or None when absent (diagnostics are optional)."""
        p = self.root / "diagnostics" / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None


@dataclass(frozen=True)
class Section:
    """One part of the results page.

    Attributes:
        anchor: The heading's Markdown anchor (``#anchor``), stable across regenerations.
        title: The heading.
        sources: The ``bench/`` files it reads (stems); the first one missing makes it a "not run" section.
        commands: How to rerun it (shell lines), shown under the heading.
        body: Renders the section's text from the results.
    """

    anchor: str
    title: str
    sources: tuple[str, ...]
    commands: tuple[str, ...]
    body: Callable[[Bench], str]


@dataclass(frozen=True)
class TargetRow:
    """One row of a targets table: what is measured, its value, the target and whether it is met."""

    figure: str
    measured: str
    target: str
    met: bool | None = None
    bench: str = field(default="", compare=False)


# --------------------------------------------------------------------------------------------- numbers
def num(x: Any, nd: int = 2) -> str:
    """A number with ``nd`` decimals (an integer-valued float without them when ``nd`` is 0)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or (nd == 0):
        out = f"{round(float(x)):,}".replace(",", " ") if abs(float(x)) >= 10_000 else f"{round(float(x))}"
    else:
        out = f"{float(x):.{nd}f}"
    return out.replace("-", "−")


def trials(x: Any) -> str:
    """A median count of trials: whole numbers without decimals, halves with one."""
    if x is None:
        return DASH
    return f"{float(x):g}"


def signed(x: Any, nd: int = 3) -> str:
    """A change with its sign (``+0.046``, ``−0.024``; a true minus sign)."""
    if x is None:
        return DASH
    s = f"{float(x):+.{nd}f}"
    return s.replace("-", "−")


def pct(x: Any, nd: int = 0) -> str:
    """A fraction as a percentage (``0.89`` → ``89 %``)."""
    if x is None:
        return DASH
    return f"{100 * float(x):.{nd}f} %"


def ms(x: Any, nd: int = 2) -> str:
    return DASH if x is None else f"{float(x):.{nd}f} ms"


def times(x: Any) -> str:
    """A real-time factor (``1263×``)."""
    return DASH if x is None else f"{float(x):.0f}×"


def minutes(seconds: Any) -> str:
    """A duration in minutes (seconds below two minutes)."""
    if seconds is None:
        return DASH
    s = float(seconds)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def compact(x: Any) -> str:
    """Any JSON value in one table cell: numbers to 3 significant digits, mappings as ``key value · …``."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:.3g}" if isinstance(x, float) else str(x)
    if isinstance(x, Mapping):
        return " · ".join(f"{k} {compact(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return ", ".join(compact(v) for v in x)
    return DASH if x is None else str(x)


def median_of(d: Mapping[str, Any] | None) -> Any:
    """``d["median"]`` of a ``{"median", "iqr", "n"}`` summary (None passes through)."""
    return None if d is None else d.get("median")


def iqr(d: Mapping[str, Any] | None, nd: int = 2, fmt: Callable[[Any, int], str] = num) -> str:
    """``[q25, q75]`` of a summary with an ``iqr`` list or ``q25``/``q75`` keys."""
    if not d:
        return DASH
    q = d.get("iqr") or ([d["q25"], d["q75"]] if "q25" in d else None)
    return DASH if not q else f"[{fmt(q[0], nd)}, {fmt(q[1], nd)}]"


# --------------------------------------------------------------------------------------------- Markdown
def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A GitHub Markdown table; ``align`` is one letter per column (``l``/``r``), default left then right."""
    rows = [list(r) for r in rows]
    align = align or ("l" + "r" * (len(header) - 1))
    rule = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def met_word(met: bool | None) -> str:
    return DASH if met is None else ("met" if met else "**missed**")


def targets_table(rows: Sequence[TargetRow]) -> str:
    """The targets of a benchmark: figure, measured, target, met or missed."""
    if not rows:
        return "_This benchmark has no pass/fail targets; its figures are measurements._"
    return table(["figure", "measured", "target", "met?"],
                 [(r.figure, r.measured, r.target, met_word(r.met)) for r in rows], align="lrrr")


Label = tuple[str, Callable[[Any], str] | None, Callable[[Any], str] | None]


def op(text: Any) -> str:
    """A stored target as it reads: ``>= 0.8`` → ``≥ 0.8``, ``>= 3x fewer`` → ``≥ 3× fewer``."""
    if not isinstance(text, str):
        return compact(text)
    t = text.replace(">=", "≥").replace("<=", "≤").replace("==", "=")
    return re.sub(r"(\d)x\b", r"\1×", t)


def op_pct(text: Any) -> str:
    """A stored fractional target as a percentage: ``<= 0.05`` → ``≤ 5 %``."""
    m = re.fullmatch(r"\s*([<>=]=?)\s*([\d.]+)\s*", str(text))
    return op(f"{m.group(1)} {pct(float(m.group(2)))}") if m else op(text)


def target_rows(targets: Mapping[str, Any], labels: Mapping[str, Label], *, bench: str = "") -> list[TargetRow]:
    """Rows of a ``targets`` block (``{key: {"measured", "target", "met"}}``), labelled where ``labels``
    knows the key (figure text, measured formatter, target formatter), else shown as stored; labelled keys
    first, in the labels' order. Keys whose value holds further ``{measured, target, met}`` entries (one
    per family, say) give one row each."""
    out: list[TargetRow] = []
    order = [k for k in labels if k in targets] + [k for k in targets if k not in labels]
    for key, v in ((k, targets[k]) for k in order):
        if not isinstance(v, Mapping):
            continue
        if "measured" not in v and all(isinstance(s, Mapping) and "measured" in s for s in v.values()):
            for sub, sv in v.items():
                lab = labels.get(key, (key.replace("_", " "), None, None))
                out.append(_row(f"{lab[0]} ({sub})", sv, lab, bench))
            continue
        if "measured" in v:
            out.append(_row(labels.get(key, (key.replace("_", " "), None, None))[0], v,
                            labels.get(key, (key, None, None)), bench))
    return out


def _row(figure: str, v: Mapping[str, Any], lab: Label, bench: str) -> TargetRow:
    _, fm, ft = lab
    measured = fm(v["measured"]) if fm else compact(v["measured"])
    target = ft(v["target"]) if ft else op(v["target"])
    met = v.get("met")
    return TargetRow(figure, measured, target, None if met is None else bool(met), bench)


def not_run(section: Section, missing: str) -> str:
    """The body of a section whose results file is missing."""
    return (f"_Not run yet: `bench/{missing}.json` is missing. Run the command above to measure it, then "
            "`python -m loops.bench.docs` to regenerate this page._")


def rerun(commands: Sequence[str]) -> str:
    return "```\n" + "\n".join(commands) + "\n```" if commands else ""


# --------------------------------------------------------------------------------------------- checkpoints
_DIGEST = re.compile(r"(?:checkpoint|digest)\s+([0-9a-f]{16})")


def checkpoint_digest(d: Any) -> str | None:
    """The foundation-model checkpoint a result was measured with, where its JSON records it: a
    ``checkpoint_digest`` / ``checkpoint.digest`` field, a 16-hex ``checkpoint`` field, or the digest
    named in its ``objective`` or ``note`` text."""
    if not isinstance(d, Mapping):
        return None
    if isinstance(d.get("checkpoint_digest"), str):
        return d["checkpoint_digest"]
    ck = d.get("checkpoint")
    if isinstance(ck, Mapping) and isinstance(ck.get("digest"), str):
        return ck["digest"]
    if isinstance(ck, str) and re.fullmatch(r"[0-9a-f]{16}", ck):
        return ck
    for key in ("objective", "note"):
        m = _DIGEST.search(str(d.get(key, "")))
        if m:
            return m.group(1)
    inner = d.get("benchmark")
    return checkpoint_digest(inner) if isinstance(inner, Mapping) else None


def shipped_digest(path: Path = CHECKPOINT) -> str | None:
    """First 16 hex digits of the shipped checkpoint's SHA-256 (as the benchmarks record it), or None."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None
