"""The ask/tell interface every optimizer implements, and the one place safety is enforced.

An :class:`Optimizer` proposes stimuli with :meth:`Optimizer.ask` and learns from measured
:class:`Outcome` s with :meth:`Optimizer.tell`. Subclasses only implement :meth:`Optimizer._propose`
(points of the space's unit cube) and, if they learn, :meth:`Optimizer._observe`; the base class
decodes the points, projects them onto the safe set and runs :meth:`StimulusSpace.check` on every
stimulus before it leaves, so no optimizer can emit an unsafe stimulus.

State (observations, pending proposals, the initial design, subclass state such as RNG states or
GP hyperparameters) round-trips through JSON: :meth:`Optimizer.state_dict` /
:meth:`Optimizer.load_state_dict`, :meth:`Optimizer.save` / :func:`bfm_stim.optim.load`. A restored
optimizer proposes exactly what the original would have.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import torch

from bfm_stim._logging import get_logger
from bfm_stim.exceptions import ConfigError, OptimizerError, SafetyLimitError, ValidationError
from bfm_stim import safety as _safety
from bfm_stim.optim.safe_set import SafeBoxMap
from bfm_stim.space import Stimulus, StimulusSpace

__all__ = ["Outcome", "OptimizerSettings", "Optimizer", "STATE_FORMAT", "PROPOSE_THREADS", "propose_threads",
           "registry", "optimizer_class", "from_state_dict", "load"]

log = get_logger("optim")
STATE_FORMAT = "bfm_stim.optim/1"
#: Optimizer classes by registered name. The ``@register(name)`` decorator of
#: :mod:`bfm_stim.optim.registry` fills it; it is read here to restore a saved optimizer of any kind.
registry: dict[str, type[Optimizer]] = {}
# Torch intra-op threads while an optimizer proposes (None: leave torch's setting). Proposals are
# made of many small tensor ops (GP posteriors on tens of points, surrogate rollouts of a few
# candidates) that a second thread cannot speed up, and on a busy machine a multi-thread pool makes
# every op wait for a descheduled thread: measured ~8 ms per op with 2 threads on 2 loaded cores
# against ~10 us with 1, i.e. a 10-30x slower ask.
PROPOSE_THREADS: int | None = 1


@contextlib.contextmanager
def propose_threads(n: int | None = None):
    """Cap torch's intra-op threads at ``n`` (default :data:`PROPOSE_THREADS`) inside the block, then restore."""
    n = PROPOSE_THREADS if n is None else n
    old = torch.get_num_threads()
    if n is None or old <= n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class Outcome:
    """What one trial measured.

    Args:
        cost: The objective, lower is better (finite).
        side_effect: A measured side effect: ``True``/``False``, a severity ``>= 0`` (0 = none),
            or ``None`` when it was not assessed.
        metadata: JSON-serializable extras (trial id, timestamps, raw biomarkers ...).
    """

    cost: float
    side_effect: bool | float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.cost
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            raise ValidationError("Outcome.cost", c, "a finite number (lower is better)")
        object.__setattr__(self, "cost", float(c))
        se = self.side_effect
        if se is not None and not isinstance(se, bool):
            if not isinstance(se, (int, float)) or not math.isfinite(se) or se < 0:
                raise ValidationError("Outcome.side_effect", se, "None, true/false or a finite severity >= 0")
            object.__setattr__(self, "side_effect", float(se))
        if not isinstance(self.metadata, Mapping):
            raise ValidationError("Outcome.metadata", self.metadata, "a mapping")
        md = dict(self.metadata)
        try:
            json.dumps(md)
        except (TypeError, ValueError) as e:
            raise ValidationError("Outcome.metadata", md, "JSON-serializable values", str(e)) from None
        object.__setattr__(self, "metadata", md)

    @property
    def severity(self) -> float | None:
        """Side-effect severity as a number (``True`` -> 1.0, ``False`` -> 0.0), ``None`` if unassessed."""
        if self.side_effect is None:
            return None
        return float(self.side_effect)

    @property
    def has_side_effect(self) -> bool:
        """True when a side effect was measured (severity > 0)."""
        return bool(self.severity)

    def to_dict(self) -> dict[str, Any]:
        return {"cost": self.cost, "side_effect": self.side_effect, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Outcome":
        if not isinstance(d, Mapping) or "cost" not in d:
            raise ValidationError("outcome", d, "a mapping with 'cost' (and optional side_effect, metadata)")
        return cls(d["cost"], d.get("side_effect"), d.get("metadata") or {})


@dataclass(frozen=True)
class OptimizerSettings:
    """Settings shared by every optimizer; subclasses add fields (keyword-only, with defaults).

    Args:
        seed: Seed of every random choice the optimizer makes (int >= 0).
        side_effect_threshold: A trial had a side effect when its measured severity is >= this
            (``True`` = 1.0); lower severities are sub-threshold readings, not side effects. Such a
            trial is never the optimizer's best or recommendation (constraint-aware BO also models it).
    """

    seed: int = 0
    side_effect_threshold: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValidationError("seed", self.seed, "an integer >= 0")
        t = self.side_effect_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise ValidationError("side_effect_threshold", t, "a finite severity > 0")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OptimizerSettings":
        """Build from a mapping (a TOML table); unknown keys raise ``ConfigError`` naming the allowed ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(known)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)

    @classmethod
    def from_toml(cls, path: str | Path, table: str | None = None) -> "OptimizerSettings":
        """Read settings from a TOML file; ``table`` is a dotted path such as ``"optimizer.bo"``."""
        from bfm_stim.files import read_toml

        path = Path(path)
        data: Any = read_toml(path, what="optimizer settings file")
        for key in (table.split(".") if table else []):
            if not isinstance(data, Mapping) or key not in data:
                raise ConfigError(f"{path}: no table [{table}]")
            data = data[key]
        return cls.from_dict(data)


def _check_positive_int(name: str, v: Any, minimum: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValidationError(name, v, f"an integer >= {minimum}")


class Optimizer(abc.ABC):
    """Base of every optimizer: ask/tell, safety enforcement, JSON state.

    Args:
        space: The space to search; its safety limits are enforced on every proposal.
        settings: The optimizer's settings (its ``Settings`` class); defaults when ``None``.
        initial_design: Stimuli to propose first, in order (projected onto the safe set), before
            the optimizer's own proposals (e.g. a clinician's protocols or a surrogate's picks).
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type[OptimizerSettings]] = OptimizerSettings

    def __init__(self, space: StimulusSpace, settings: OptimizerSettings | None = None, *,
                 initial_design: Sequence[Stimulus] | None = None) -> None:
        if not isinstance(space, StimulusSpace):
            raise ValidationError("space", type(space).__name__, "a bfm_stim.space.StimulusSpace")
        settings = self.Settings() if settings is None else settings
        if not isinstance(settings, self.Settings):
            raise ConfigError(f"{type(self).__name__} needs {self.Settings.__name__}, got {type(settings).__name__}")
        self._space = space
        self._settings = settings
        self.safe_map = SafeBoxMap(space)
        self._obs: list[tuple[Stimulus, Outcome, Any]] = []
        self._pending: list[tuple[Stimulus, Any]] = []
        design = [] if initial_design is None else list(initial_design)
        for i, s in enumerate(design):
            if not isinstance(s, Stimulus) or s.kind != space.kind:
                raise ValidationError(f"initial_design[{i}]", s, f"a Stimulus of kind '{space.kind}'")
        self._design = design
        self._design_next = 0
        self.n_asked = 0
        self.n_projected = 0
        self._setup()

    # --- hooks for subclasses -----------------------------------------------------------------
    def _setup(self) -> None:
        """Initialise subclass state (called at the end of ``__init__``)."""

    @abc.abstractmethod
    def _propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        """Return ``n`` points of the unit cube ``(n, space.dim)`` and one JSON-able tag per point."""

    def _observe(self, stimuli: list[Stimulus], outcomes: list[Outcome], tags: list[Any]) -> None:
        """Learn from new observations; ``tags`` are the tags of the matching proposals (or None)."""

    def _impl_state(self) -> dict[str, Any]:
        """Subclass state as a JSON-serializable dict."""
        return {}

    def _load_impl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_impl_state` returned."""

    # --- public API ---------------------------------------------------------------------------
    @property
    def space(self) -> StimulusSpace:
        return self._space

    @property
    def settings(self) -> OptimizerSettings:
        return self._settings

    @property
    def observations(self) -> tuple[tuple[Stimulus, Outcome], ...]:
        """Every told (stimulus, outcome), in order."""
        return tuple((s, o) for s, o, _ in self._obs)

    @property
    def pending(self) -> tuple[Stimulus, ...]:
        """Stimuli asked for but not told yet."""
        return tuple(s for s, _ in self._pending)

    def tag_of(self, stimulus: Stimulus) -> Any:
        """The tag this optimizer gave its (latest) proposal of ``stimulus``, told or pending (``None`` if unknown):
        e.g. ``{"led_by": "model", "trust": ...}`` for the surrogate methods, ``{"design": 0}`` for the design."""
        for s, _, tag in reversed(self._obs):
            if s == stimulus:
                return tag
        for s, tag in reversed(self._pending):
            if s == stimulus:
                return tag
        return None

    @property
    def trust_state(self) -> Any:
        """The optimizer's measured trust in its model (:class:`~bfm_stim.optim.trust.TrustState`); ``None``
        for optimizers without a model (the surrogate methods override it)."""
        return None

    def is_side_effect(self, outcome: Outcome) -> bool:
        """Whether ``outcome`` counts as a side effect (severity >= ``settings.side_effect_threshold``)."""
        sev = outcome.severity
        return sev is not None and sev >= self.settings.side_effect_threshold

    @property
    def best(self) -> tuple[Stimulus, Outcome] | None:
        """Lowest-cost observation without a side effect (:meth:`is_side_effect`; ``None`` before any)."""
        ok = [(s, o) for s, o, _ in self._obs if not self.is_side_effect(o)]
        return min(ok, key=lambda so: so[1].cost) if ok else None

    def recommend(self) -> Stimulus | None:
        """The stimulus this optimizer would deploy now (``None`` before any trial without a side effect).

        By default the measured stimulus of lowest cost without a side effect (:attr:`best`); optimizers
        with a model of the cost override it with the lowest *predicted* cost among those measured
        stimuli, which discounts a single lucky noisy trial."""
        b = self.best
        return None if b is None else b[0]

    def _recommend_lowest(self, predicted_cost: Callable[[list[Stimulus]], torch.Tensor]) -> Stimulus | None:
        """The measured stimulus without a side effect of lowest ``predicted_cost`` (stimuli -> (n,))."""
        ok = [s for s, o, _ in self._obs if not self.is_side_effect(o)]
        if not ok:
            return None
        with torch.no_grad():
            c = predicted_cost(ok)
        return ok[int(torch.argmin(c))]

    def ask(self, n: int = 1) -> list[Stimulus]:
        """Propose ``n`` stimuli; every one has passed ``space.check``.

        Args:
            n: Number of stimuli (batch size, >= 1).

        Returns:
            ``n`` safe stimuli; they stay pending until told.
        """
        _check_positive_int("n", n)
        out: list[tuple[Stimulus, Any]] = []
        while len(out) < n and self._design_next < len(self._design):
            out.append((self._design[self._design_next], {"design": self._design_next}))
            self._design_next += 1
        if len(out) < n:
            m = n - len(out)
            with propose_threads():
                U, tags = self._propose(m)
            if U.shape != (m, self._space.dim) or len(tags) != m:
                raise OptimizerError(f"{type(self).__name__}._propose({m}) returned {tuple(U.shape)=} "
                                     f"and {len(tags)} tags; expected ({m}, {self._space.dim})")
            U = torch.nan_to_num(U.detach().to(torch.float64), nan=0.0).clamp(0.0, 1.0)
            out += list(zip(self._space.from_unit(U), tags))
        safe = [(self._make_safe(s), t) for s, t in out]
        self._pending += safe
        self.n_asked += n
        return [s for s, _ in safe]

    def tell(self, stimuli: Stimulus | Sequence[Stimulus], outcomes: Outcome | float | Sequence[Outcome | float]) -> None:
        """Record measured outcomes of stimuli (usually the ones :meth:`ask` returned).

        Args:
            stimuli: The stimuli delivered (each must pass ``space.check``).
            outcomes: One :class:`Outcome` (or a plain cost) per stimulus.

        Raises:
            OptimizerError: The numbers of stimuli and outcomes differ.
            ValidationError: A cost is not finite, or a stimulus is not of this space's kind.
            SafetyLimitError: A stimulus is unsafe in this space.
        """
        stims = [stimuli] if isinstance(stimuli, Stimulus) else list(stimuli)
        outs = [outcomes] if isinstance(outcomes, (Outcome, int, float)) else list(outcomes)
        if len(stims) != len(outs):
            raise OptimizerError(f"tell() got {len(stims)} stimuli and {len(outs)} outcomes; "
                                 "pass exactly one outcome per stimulus")
        if not stims:
            raise OptimizerError("tell() got no stimuli; pass at least one (stimulus, outcome) pair")
        parsed: list[Outcome] = []
        for i, (s, o) in enumerate(zip(stims, outs)):
            if not isinstance(s, Stimulus) or s.kind != self._space.kind:
                raise ValidationError(f"stimuli[{i}]", s, f"a Stimulus of kind '{self._space.kind}' (this space)")
            self._space.check(s)
            if isinstance(o, Outcome):
                parsed.append(o)
            elif isinstance(o, (int, float)) and not isinstance(o, bool):
                if not math.isfinite(o):
                    raise ValidationError(f"outcomes[{i}].cost", o, "a finite number (lower is better)")
                parsed.append(Outcome(float(o)))
            else:
                raise ValidationError(f"outcomes[{i}]", o, "an Outcome or a finite cost")
        tags = []
        for s in stims:
            tag = None
            for j, (p, t) in enumerate(self._pending):
                if p == s:
                    tag = t
                    del self._pending[j]
                    break
            tags.append(tag)
        self._obs += list(zip(stims, parsed, tags))
        self._observe(stims, parsed, tags)

    def cancel(self, stimulus: Stimulus) -> bool:
        """Drop a pending proposal that will never be measured (a trial interrupted or refused by the device).

        The optimizer never learns a cost for it; later proposals no longer treat it as pending.
        Returns whether ``stimulus`` was pending.
        """
        for j, (p, _) in enumerate(self._pending):
            if p == stimulus:
                del self._pending[j]
                return True
        return False

    # --- safety ---------------------------------------------------------------------------------
    def _make_safe(self, s: Stimulus) -> Stimulus:
        """Project onto the safe set and check; the single exit gate of every proposal."""
        space = self._space
        snapped = self._clamp(space.snap(s))
        safe: Stimulus | None = None
        try:
            safe = space.project_safe(snapped)
        except (SafetyLimitError, ValidationError):
            # space.project_safe re-snaps, which can land a hair outside a bound; retry unsnapped.
            try:
                safe = space.check(self._clamp(_safety.project_safe(snapped, space.contact_map, space.limits)))
            except (SafetyLimitError, ValidationError):
                # No safe point at these settings (e.g. the amplitude floor is above the limit):
                # the zero-amplitude / zero-level version carries no charge.
                safe = snapped.with_(amplitude_ma=0.0) if s.kind == "electrical" else snapped.with_(level=0.0)
        if safe != snapped:
            self.n_projected += 1
        return space.check(safe)

    def _clamp(self, s: Stimulus) -> Stimulus:
        """Clamp continuous fields into the space's bounds (undoes rounding just outside them)."""
        changes = {}
        for p in self._space.parameters:
            if p.kind != "categorical":
                v = getattr(s, p.name)
                if not (p.name == "amplitude_ma" and v == 0.0) and not p.contains(v):
                    changes[p.name] = min(max(v, p.low), p.high)
        return s.with_(**changes) if changes else s

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as a JSON-serializable dict."""
        return {
            "format": STATE_FORMAT,
            "name": self.name,
            "settings": self._settings.to_dict(),
            "space": self._space.to_dict(),
            "observations": [{"stimulus": s.to_dict(), "outcome": o.to_dict(), "tag": t} for s, o, t in self._obs],
            "pending": [{"stimulus": s.to_dict(), "tag": t} for s, t in self._pending],
            "initial_design": [s.to_dict() for s in self._design],
            "design_next": self._design_next,
            "n_asked": self.n_asked,
            "n_projected": self.n_projected,
            "impl": self._impl_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output into this optimizer (same name, settings and space).

        Raises:
            OptimizerError: The state is from another optimizer, other settings or another space.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise OptimizerError(f"not an optimizer state (expected format {STATE_FORMAT!r})")
        if state.get("name") != self.name:
            raise OptimizerError(f"state is from optimizer {state.get('name')!r}, this is {self.name!r}")
        if state["settings"] != self._settings.to_dict():
            raise OptimizerError(f"state was saved with settings {state['settings']}, "
                                 f"this optimizer has {self._settings.to_dict()}")
        if _canon(state["space"]) != _canon(self._space.to_dict()):
            raise OptimizerError("state was saved for a different stimulus space")
        self._obs = [(Stimulus.from_dict(d["stimulus"]), Outcome.from_dict(d["outcome"]), d.get("tag"))
                     for d in state["observations"]]
        self._pending = [(Stimulus.from_dict(d["stimulus"]), d.get("tag")) for d in state["pending"]]
        self._design = [Stimulus.from_dict(d) for d in state["initial_design"]]
        self._design_next = int(state["design_next"])
        self.n_asked = int(state["n_asked"])
        self.n_projected = int(state["n_projected"])
        self._setup()
        self._load_impl_state(state["impl"])

    def save(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` as JSON (atomically: write then rename); returns the path."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.state_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, space: StimulusSpace | None = None, **hooks: Any) -> "Optimizer":
        """Load a saved optimizer (any registered kind; see :func:`bfm_stim.optim.load`)."""
        opt = load(path, space, **hooks)
        if not isinstance(opt, cls):
            raise OptimizerError(f"{path} holds a {type(opt).__name__}, not a {cls.__name__}")
        return opt

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self._space.dim}, told={len(self._obs)}, pending={len(self._pending)})"


def optimizer_class(name: str) -> type[Optimizer]:
    """The optimizer class registered under ``name``.

    Raises:
        ConfigError: Nothing is registered under ``name`` (the message lists what is).
    """
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; registered: {sorted(registry)}") from None


def from_state_dict(state: Mapping[str, Any], space: StimulusSpace | None = None, **hooks: Any) -> Optimizer:
    """Rebuild an optimizer from :meth:`Optimizer.state_dict` output.

    Args:
        state: The saved state.
        space: The space (default: the one stored in the state).
        **hooks: Constructor hooks that are not serialized (e.g. ``prior_mean=``).
    """
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise OptimizerError(f"not an optimizer state (expected format {STATE_FORMAT!r})")
    cls = optimizer_class(state["name"])
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


def _canon(d: Any) -> str:
    return json.dumps(d, sort_keys=True)


def tensor_state(t: torch.Tensor) -> dict[str, Any]:
    """A tensor as JSON (exact for float64: Python floats round-trip)."""
    return {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "data": t.flatten().tolist()}


def tensor_from_state(d: Mapping[str, Any]) -> torch.Tensor:
    return torch.tensor(d["data"], dtype=getattr(torch, d["dtype"])).reshape(d["shape"])


def stimuli_unit(space: StimulusSpace, stims: Iterable[Stimulus]) -> torch.Tensor:
    """Stimuli -> unit cube ``(n, dim)`` float64, clipped to [0, 1] (zero amplitude can sit below a bound)."""
    return space.to_unit(list(stims)).clamp(0.0, 1.0)
