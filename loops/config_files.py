"""The TOML configs installed with the package, and how a command finds one by path or by name.

Every command that reads a config takes either a path or the bare name of a bundled config:
``bfm-stim session --config session``, ``bfm-stim benchmark --config benchmark-quick``,
``bfm-stim optimize --surrogate-only --space space-dbs``. :func:`config_path` decides, in this order:

1. an existing file at the given path (relative paths from the current directory, as for any file
   argument) is used as it is;
2. otherwise a bare name (no folder), with or without ``.toml``, that names a bundled config is the
   bundled file in ``loops/configs/``;
3. any other bare name is a :class:`~bfm_stim.exceptions.ConfigError` listing the bundled names; a
   path with a folder is returned as it is, and its reader says it is missing, as for any file.

Defaults never depend on the current directory: they are bundled files (:func:`bundled_config`).
``bfm-stim configs`` lists the bundled configs with the first line of their leading comment, and
``bfm-stim configs NAME --out FILE`` copies one to edit.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bfm_stim.exceptions import ConfigError

__all__ = ["CONFIG_DIR", "bundled_configs", "bundled_config", "config_path", "is_bundled", "description",
           "copy_config"]

#: Where the bundled configs are installed (package data of ``loops``).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def bundled_configs() -> dict[str, Path]:
    """Bundled configs by name (the file name without ``.toml``), sorted by name."""
    return dict(sorted((p.stem, p) for p in CONFIG_DIR.glob("*.toml")))


def _names() -> str:
    return ", ".join(bundled_configs()) or "(none installed)"


def bundled_config(name: str) -> Path:
    """The bundled config ``name`` (with or without ``.toml``).

    Raises:
        ConfigError: No bundled config has that name (the message lists the ones there are).
    """
    stem = name.removesuffix(".toml")
    found = bundled_configs().get(stem)
    if found is None:
        raise ConfigError(f"no bundled config {name!r}; bundled: {_names()} (`bfm-stim configs` lists them)")
    return found


def config_path(arg: str | Path, *, what: str = "config", base: str | Path | None = None) -> Path:
    """The config file ``arg`` names: an existing file, else the bundled config of that bare name.

    Args:
        arg: A path, or the name of a bundled config (``"session"``, ``"space-dbs.toml"``).
        what: What the file is, for the error message (``"session config"``, ``"[device] space"``).
        base: Folder a relative ``arg`` is taken from (a config naming another config: its own
            folder); ``None``: the current directory, as for a path given on the command line.

    Returns:
        The file to read. A path with a folder part that does not exist comes back as it is (the
        reader reports it missing in its own words).

    Raises:
        ConfigError: ``arg`` is a bare name that is neither an existing file nor a bundled config; the
            message lists the bundled names.
    """
    text = str(arg)
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    if path.is_file():
        return path
    if not text or Path(text).name != text or text in (".", ".."):
        return path
    found = bundled_configs().get(text.removesuffix(".toml"))
    if found is not None:
        return found
    where = f" ({path})" if path != Path(text).expanduser() else ""
    raise ConfigError(f"{what} {text!r}: no such file{where}, and not the name of a bundled config; "
                      f"bundled: {_names()} (`bfm-stim configs` lists them)")


def is_bundled(path: str | Path) -> bool:
    """True when ``path`` is one of the bundled config files."""
    p = Path(path).resolve()
    return p.parent == CONFIG_DIR and p.suffix == ".toml" and p.is_file()


def description(path: str | Path) -> str:
    """The first line of the file's leading comment, without ``#`` (``""`` when it has none)."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        return line.lstrip("#").strip() if line.startswith("#") else ""
    return ""


def copy_config(name: str, out: str | Path, *, overwrite: bool = False) -> Path:
    """Copy the bundled config ``name`` to ``out`` (a file, or a folder to copy it into) to edit it.

    Raises:
        ConfigError: Unknown name, or ``out`` exists and ``overwrite`` is false.
    """
    src = bundled_config(name)
    dst = Path(out).expanduser()
    if dst.is_dir() or str(out).endswith(("/", os.sep)):
        dst = dst / src.name
    if dst.exists() and not overwrite:
        raise ConfigError(f"{dst} exists; choose another --out or pass --force to replace it")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
