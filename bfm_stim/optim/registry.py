"""Registered optimizers by name: :func:`register`, :func:`make`, :func:`load`.

Example:
    >>> from bfm_stim.optim import make
    >>> opt = make("bo", space, n_init=6, seed=1)   # doctest: +SKIP
    >>> stims = opt.ask(2)                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from bfm_stim.exceptions import ConfigError, OptimizerError
from bfm_stim.optim.base import STATE_FORMAT, Optimizer, OptimizerSettings
from bfm_stim.space import StimulusSpace

__all__ = ["registry", "register", "make", "load", "from_state_dict", "settings_from_dict"]

registry: dict[str, type[Optimizer]] = {}

T = TypeVar("T", bound=type[Optimizer])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register an :class:`Optimizer` subclass under ``name``."""
    def deco(cls: T) -> T:
        if name in registry and registry[name] is not cls:
            raise ConfigError(f"optimizer name {name!r} is already registered to {registry[name].__name__}")
        cls.name = name
        registry[name] = cls
        return cls
    return deco


def _cls(name: str) -> type[Optimizer]:
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; registered: {sorted(registry)}") from None


def settings_from_dict(name: str, d: Mapping[str, Any]) -> OptimizerSettings:
    """The settings object of optimizer ``name`` from a mapping (e.g. a TOML table)."""
    return _cls(name).Settings.from_dict(d)


def make(name: str, space: StimulusSpace, *, settings: OptimizerSettings | Mapping[str, Any] | None = None,
         **kwargs: Any) -> Optimizer:
    """Build a registered optimizer.

    Args:
        name: Registered name (see ``registry``).
        space: The stimulus space to search.
        settings: A settings object or mapping; keyword arguments that name settings fields
            override it.
        **kwargs: Settings fields (``seed=``, ``n_init=`` ...) and constructor hooks
            (``initial_design=``, and ``prior_mean=`` for ``bo``).

    Raises:
        ConfigError: Unknown name, or a keyword that is neither a setting nor a hook.
    """
    cls = _cls(name)
    fields = {f.name for f in dataclasses.fields(cls.Settings)}
    base = settings.to_dict() if isinstance(settings, OptimizerSettings) else dict(settings or {})
    base.update({k: v for k, v in kwargs.items() if k in fields})
    hooks = {k: v for k, v in kwargs.items() if k not in fields}
    allowed_hooks = _hook_names(cls)
    bad = set(hooks) - allowed_hooks
    if bad:
        raise ConfigError(f"make({name!r}): unknown argument(s) {sorted(bad)}; settings: {sorted(fields)}, "
                          f"hooks: {sorted(allowed_hooks)}")
    return cls(space, cls.Settings.from_dict(base), **hooks)


def _hook_names(cls: type[Optimizer]) -> set[str]:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY}


def from_state_dict(state: Mapping[str, Any], space: StimulusSpace | None = None, **hooks: Any) -> Optimizer:
    """Rebuild an optimizer from :meth:`Optimizer.state_dict` output.

    Args:
        state: The saved state.
        space: The space (default: the one stored in the state).
        **hooks: Constructor hooks that are not serialized (e.g. ``prior_mean=``).
    """
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise OptimizerError(f"not an optimizer state (expected format {STATE_FORMAT!r})")
    cls = _cls(state["name"])
    space = StimulusSpace.from_dict(state["space"]) if space is None else space
    opt = cls(space, cls.Settings.from_dict(state["settings"]), **hooks)
    opt.load_state_dict(state)
    return opt


def load(path: str | Path, space: StimulusSpace | None = None, **hooks: Any) -> Optimizer:
    """Load an optimizer saved with :meth:`Optimizer.save`; it resumes where it stopped."""
    path = Path(path)
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise OptimizerError(f"optimizer state file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise OptimizerError(f"{path}: not valid JSON ({e})") from None
    return from_state_dict(state, space, **hooks)
