"""Registered optimizers by name: :func:`register`, :func:`make`, :func:`load`.

The table itself (``registry``) and restoring saved state (:func:`load`, :func:`from_state_dict`) live
in :mod:`bfm_stim.optim.base`, which this module builds on; they are importable from here too.

Example:
    >>> from bfm_stim.optim import make
    >>> opt = make("bo", space, n_init=6, seed=1)   # doctest: +SKIP
    >>> stims = opt.ask(2)                            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, TypeVar

from bfm_stim.exceptions import ConfigError
from bfm_stim.optim.base import Optimizer, OptimizerSettings, from_state_dict, load, optimizer_class, registry
from bfm_stim.space import StimulusSpace

__all__ = ["registry", "register", "make", "load", "from_state_dict", "settings_from_dict"]

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


def settings_from_dict(name: str, d: Mapping[str, Any]) -> OptimizerSettings:
    """The settings object of optimizer ``name`` from a mapping (e.g. a TOML table)."""
    return optimizer_class(name).Settings.from_dict(d)


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
    cls = optimizer_class(name)
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
