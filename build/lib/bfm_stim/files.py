"""Reading the files a person names: TOML configs, NumPy arrays, any input file.

Every failure (missing, a folder, unreadable, malformed) raises :class:`~bfm_stim.exceptions.ConfigError`
with one line that names the file, what is wrong and what to do, so the command line can print it
without a traceback. This is the only place that imports ``tomllib`` (``tomli`` before Python 3.11).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from bfm_stim.exceptions import ConfigError

__all__ = ["check_readable", "read_toml", "load_npy"]

_NPY_HINT = "give a .npy file written by numpy.save"
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def _os_reason(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "not found"
    if isinstance(err, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(err, PermissionError):
        return "cannot be read (permission denied)"
    return f"cannot be read ({err.strerror or err})"


def check_readable(path: str | Path, *, what: str = "file", hint: str = "") -> Path:
    """Return ``path`` if it is a readable file; else raise ConfigError naming it.

    Args:
        path: The file a person named.
        what: What the file is, for the message (e.g. ``"checkpoint"``).
        hint: What to do instead, appended to the message.
    """
    p = Path(path)
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise ConfigError(_message(what, p, _os_reason(e), hint)) from None
    return p


def _message(what: str, p: Path, reason: str, hint: str) -> str:
    return f"{what} {reason}: {p}" + (f"; {hint}" if hint else "")


def read_toml(path: str | Path, *, what: str = "config file", hint: str = "") -> dict[str, Any]:
    """Parse a TOML file.

    Args:
        path: The TOML file.
        what: What the file is, for the message (e.g. ``"optimizer settings file"``).
        hint: What to do when it is missing (default: give an existing path).

    Returns:
        The parsed tables.

    Raises:
        ConfigError: The file is missing or unreadable, not UTF-8, or not valid TOML; a syntax
            error names the line and column.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(_message(what, p, _os_reason(e), hint or "give the path of an existing TOML file")) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: {what} is not UTF-8 text (byte {e.start}); save it as UTF-8 TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(getattr(e, "msg", "") or e)
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        m = _AT.search(msg)
        if m:
            msg, line, col = msg[: m.start()], int(m.group(1)), int(m.group(2))
        where = f" at line {line}, column {col}" if line is not None else ""
        end = _AT_END.search(msg)
        if end:
            msg, where = msg[: end.start()], f" at its end (line {text.count(chr(10)) + 1})"
        raise ConfigError(f"{p}: not valid TOML{where} ({msg}); fix the {what} there") from None


def load_npy(path: str | Path, *, what: str = "array file", hint: str = "") -> Any:
    """Load a ``.npy`` array (no pickled objects).

    Raises:
        ConfigError: The file is missing, unreadable or not a NumPy ``.npy`` array.
    """
    import numpy as np

    p = Path(path)
    try:
        return np.load(p, allow_pickle=False)
    except OSError as e:
        if e.errno is not None:
            raise ConfigError(_message(what, p, _os_reason(e), hint or _NPY_HINT)) from None
        why = f"is not a readable .npy array ({e})"
    except (ValueError, EOFError) as e:  # truncated, object arrays, not .npy at all
        why = "holds no numeric .npy array" if "pickle" in str(e) else f"is not a readable .npy array ({e})"
    raise ConfigError(f"{p}: {what} {why}; {hint or _NPY_HINT}")
