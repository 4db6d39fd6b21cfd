"""The one door to pylsl: applies the machine-only liblsl configuration before any LSL call.

Every module of bfm-stim that needs LSL imports ``pylsl`` from here (``from bfm_stim.lsl.config
import pylsl``), never directly, so the loopback configuration is always in force first:

1. ``LSLAPICFG`` is pointed at the configuration file (so child processes inherit it, and a
   liblsl without ``lsl_set_config_content`` still reads it),
2. ``pylsl`` is imported (its import only queries the library version, which does not load the
   configuration),
3. ``pylsl.set_config_content`` hands liblsl the configuration text, which takes precedence over
   every configuration file.

liblsl loads its configuration once, lazily, at the first stream-related call; after that it
cannot change. The default scope is ``"machine"``: ``ResolveScope = machine``, ``KnownPeers =
{127.0.0.1}``, IPv6 off, multicast and listen addresses on 127.0.0.1 (``lsl_api.cfg`` next to this
file), so no discovery or data packet leaves the machine. A lab network is an explicit opt-in:
call :func:`configure` with ``scope="lab"`` before any stream is created (the CLI does so for
``--lsl-scope lab``), or start the process with ``BFM_STIM_LSL_SCOPE=lab``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError

__all__ = ["pylsl", "configure", "scope", "seal", "CONFIG_PATH", "SCOPES", "SCOPE_ENV", "local_clock"]

log = get_logger("lsl")

CONFIG_PATH = Path(__file__).with_name("lsl_api.cfg")
"""The machine-only liblsl configuration file shipped with the package."""
SCOPES = ("machine", "lab")
SCOPE_ENV = "BFM_STIM_LSL_SCOPE"
"""Environment variable that opts a process (and its children) into ``scope="lab"``."""

# Lab scope: liblsl's own defaults, discovery on the site (lab network), IPv4 and IPv6.
_LAB_CONTENT = "; bfm-stim lab scope (explicit opt-in)\n[multicast]\nResolveScope = site\n"

_state: dict[str, object] = {"scope": None, "sealed": False, "path": None}


def _content_for(scope_: str, config_file: str | os.PathLike[str] | None) -> tuple[str, Path]:
    if scope_ not in SCOPES:
        raise ConfigError(f"LSL scope={scope_!r} is not allowed; expected one of {SCOPES}")
    if scope_ == "machine":
        if config_file is not None:
            raise ConfigError("config_file is only accepted with scope='lab'; the machine scope is fixed")
        return CONFIG_PATH.read_text(encoding="utf-8"), CONFIG_PATH
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"LSL config_file={str(path)!r} does not exist")
        return path.read_text(encoding="utf-8"), path
    path = Path(tempfile.gettempdir()) / f"bfm-stim-lsl-lab-{os.getuid() if hasattr(os, 'getuid') else 0}.cfg"
    path.write_text(_LAB_CONTENT, encoding="utf-8")
    return _LAB_CONTENT, path


def _apply(scope_: str, config_file: str | os.PathLike[str] | None = None) -> None:
    content, path = _content_for(scope_, config_file)
    os.environ["LSLAPICFG"] = str(path)  # children inherit; fallback for old liblsl
    if scope_ == "lab":
        os.environ[SCOPE_ENV] = "lab"
    else:
        os.environ.pop(SCOPE_ENV, None)
    if "pylsl" in sys.modules and _state["scope"] is None:
        log.warning(
            "pylsl was imported before bfm_stim.lsl.config; if an LSL stream was already created "
            "the machine-only configuration cannot take effect in this process"
        )
    import pylsl as _pylsl

    if hasattr(_pylsl, "set_config_content"):
        try:
            _pylsl.set_config_content(content)
        except NotImplementedError:  # liblsl < 1.17.7: the LSLAPICFG file is read instead
            log.info("liblsl has no lsl_set_config_content; relying on LSLAPICFG=%s", path)
    _state["scope"] = scope_
    _state["path"] = path
    log.debug("LSL configured: scope=%s config=%s", scope_, path)


def configure(scope: str = "machine", *, config_file: str | os.PathLike[str] | None = None) -> str:
    """Choose the LSL scope for this process; call before any stream is created.

    Args:
        scope: ``"machine"`` (default, loopback only) or ``"lab"`` (resolve and stream on the
            lab network: an explicit opt-in).
        config_file: With ``scope="lab"``, a liblsl configuration file to use (e.g. one with the
            lab's ``KnownPeers``); default is liblsl's defaults with ``ResolveScope = site``.

    Returns:
        The scope in force.

    Raises:
        ConfigError: Unknown scope, or a different scope requested after bfm-stim already created
            an LSL stream in this process (liblsl's configuration can no longer change).
    """
    if scope not in SCOPES:
        raise ConfigError(f"LSL scope={scope!r} is not allowed; expected one of {SCOPES}")
    if _state["sealed"] and scope != _state["scope"]:
        raise ConfigError(
            f"LSL is already in use with scope={_state['scope']!r}; call "
            f"bfm_stim.lsl.config.configure(scope={scope!r}) before any stream is created "
            "(first thing in main), or start the process with "
            f"{SCOPE_ENV}={scope}"
        )
    _apply(scope, config_file)
    return scope


def scope() -> str:
    """The LSL scope in force in this process (``"machine"`` or ``"lab"``)."""
    return str(_state["scope"])


def seal() -> None:
    """Record that LSL is in use (a stream or resolver was created): the scope is now fixed."""
    _state["sealed"] = True


def local_clock() -> float:
    """LSL's local clock, s (the clock every timestamp and ``apply_at`` is expressed in)."""
    return pylsl.local_clock()


_env_scope = os.environ.get(SCOPE_ENV, "machine").strip().lower() or "machine"
if _env_scope not in SCOPES:
    raise ConfigError(f"{SCOPE_ENV}={_env_scope!r} is not allowed; expected one of {SCOPES}")
_apply(_env_scope)

import pylsl  # noqa: E402  (configuration applied above)
