"""What the application says about a surrogate method's trust in its model, per trial and in summary.

The surrogate methods (``guided``, ``gradient``, ``egreedy``) measure after every trial whether the
foundation model's predicted costs explain the measured ones (:mod:`bfm_stim.optim.trust`). This module
turns that state into what ``optimize`` and the closed-loop session write and show:

* :func:`trial_fields` — the fields of one trial's record: ``trust`` (after that trial's evidence),
  ``model_weight``, ``led_by`` (who led the proposal: ``"model"``, ``"bo"``, ``"explore"`` (egreedy's
  random picks), ``"design"`` (the initial design), ``None`` when the optimizer does not say) and
  ``trust_reason``; all ``None`` for optimizers without a model (``bo``, ``random`` ...);
* :func:`current_message` and :class:`TrustNotice` — the one-line message
  (:func:`~bfm_stim.optim.trust.trust_message`) while the trials contradict the model, and the first
  time they do (said once);
* :func:`model_manifest` — whether the method had a model, which checkpoint, whether trust is on;
* :func:`trust_summary` — the final trust, its reason and message, from the trial records;
* :func:`trust_text` — the short text of a trust for tables and the live view (``"–"`` without one);
* :func:`draw_trust` — trust and model weight over trials on a matplotlib axis (the session report's
  figure and ``optimize``'s plot).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bfm_stim.optim.trust import trust_message

__all__ = ["TRIAL_FIELDS", "trial_fields", "proposal_tag", "TrustNotice", "current_message", "model_manifest",
           "trust_summary", "trust_text", "draw_trust"]

#: The per-trial keys :func:`trial_fields` writes (every trial record has them, ``None`` without a model).
TRIAL_FIELDS = ("trust", "model_weight", "led_by", "trust_reason")
NONE = "–"
LED_BY = {"model": ("#9467bd", "trial proposed by the model"), "bo": ("#ff7f0e", "trial proposed by BO"),
          "explore": ("#bcbd22", "random exploration"), "design": ("#7f7f7f", "initial design")}


def proposal_tag(opt: Any, stimulus: Any) -> Mapping[str, Any] | None:
    """The tag the optimizer gave its proposal of ``stimulus`` (told or pending; ``None`` if unknown)."""
    tag_of = getattr(opt, "tag_of", None)
    tag = tag_of(stimulus) if callable(tag_of) else None
    return tag if isinstance(tag, Mapping) else None


def _led_by(tag: Mapping[str, Any] | None) -> str | None:
    if not tag:
        return None
    if tag.get("led_by") is not None:
        return str(tag["led_by"])
    if tag.get("explore"):
        return "explore"  # egreedy's random exploration
    return "design" if "design" in tag else None  # the initial design (probe trials)


def trial_fields(opt: Any, stimulus: Any = None) -> dict[str, Any]:
    """``trust``, ``model_weight``, ``led_by``, ``trust_reason`` after the trials told to ``opt`` so far.

    Args:
        opt: The optimizer (any; only the surrogate methods have a trust).
        stimulus: The trial's stimulus, whose proposal tag gives ``led_by`` (``None``: not looked up).

    Returns:
        The :data:`TRIAL_FIELDS`, plus ``trust_message`` (:func:`current_message`) while the trials
        contradict the model.
    """
    ts = getattr(opt, "trust_state", None)
    led = _led_by(proposal_tag(opt, stimulus)) if stimulus is not None and hasattr(opt, "has_model") else None
    if ts is None:
        return {"trust": None, "model_weight": None, "led_by": led, "trust_reason": None}
    out = {"trust": ts.trust, "model_weight": ts.weight, "led_by": led, "trust_reason": ts.reason}
    msg = current_message(opt)
    if msg is not None:
        out["trust_message"] = msg
    return out


class TrustNotice:
    """The user's one line when the trials first contradict the model (then silence)."""

    def __init__(self) -> None:
        self.first_trial: int | None = None

    def check(self, opt: Any, trial: int) -> str | None:
        """The message, the first time ``opt``'s model is contradicted (at ``trial``); else ``None``."""
        msg = current_message(opt)
        if msg is None or self.first_trial is not None:
            return None
        self.first_trial = trial
        return msg


def current_message(opt: Any) -> str | None:
    """:func:`~bfm_stim.optim.trust.trust_message` of ``opt`` now (``None`` unless the model is contradicted)."""
    ts = getattr(opt, "trust_state", None)
    return trust_message(ts, enabled=bool(getattr(opt.settings, "trust", True))) if ts is not None else None


def model_manifest(opt: Any, checkpoint: Any = None) -> dict[str, Any]:
    """Whether ``opt`` is a surrogate method, had a model, which ``checkpoint`` (digest or path) and whether
    its trust is on (``trust_enabled``)."""
    uses = hasattr(opt, "has_model")
    has = bool(uses and opt.has_model)
    out: dict[str, Any] = {"surrogate_method": uses, "model": has, "checkpoint": checkpoint if has else None}
    if uses:
        out["trust_enabled"] = bool(getattr(opt.settings, "trust", False))
        if not has:
            out["note"] = "no cost model: the surrogate method ran on a flat prior (no surrogate); trust is none"
    return out


def trust_summary(records: Sequence[Mapping[str, Any]], *, trial_key: str = "trial") -> dict[str, Any] | None:
    """The trust at the end of a run from its trial records (each with :data:`TRIAL_FIELDS`).

    Returns:
        ``{"trust", "model_weight", "led_by", "reason", "message", "n_trials", "first_contradicted_trial",
        "first_message", "model_led_trials"}`` (``message``: the one-line message while the model is
        contradicted at the end, else ``None``; ``first_message``: the one said when the trials first
        contradicted it), or ``None`` when no record has a trust (no model, or no trial yet).
    """
    withs = [r for r in records if r.get("trust") is not None]
    if not withs:
        return None
    last = withs[-1]
    first = next((r for r in withs if r.get("trust_message")), None)
    return {"trust": last["trust"], "model_weight": last.get("model_weight"), "led_by": last.get("led_by"),
            "reason": last.get("trust_reason"), "message": last.get("trust_message"), "n_trials": len(withs),
            "first_contradicted_trial": None if first is None else first.get(trial_key),
            "first_message": None if first is None else first["trust_message"],
            "model_led_trials": sum(r.get("led_by") == "model" for r in withs)}


def trust_text(trust: Any, weight: Any = None, led_by: Any = None) -> str:
    """``"0.82 (weight 1.00, model led)"``; ``"–"`` without a trust."""
    if not isinstance(trust, (int, float)) or isinstance(trust, bool):
        return NONE
    extra = [f"weight {weight:.2f}" if isinstance(weight, (int, float)) else "",
             f"{led_by} led" if led_by else ""]
    extra = [e for e in extra if e]
    return f"{trust:.2f}" + (f" ({', '.join(extra)})" if extra else "")


def draw_trust(ax: Any, records: Sequence[Mapping[str, Any]], *, trial_key: str = "trial") -> bool:
    """Trust and model weight after each trial on ``ax`` (0–1), markers coloured by who led the proposal,
    the weight below which the model stops leading, and the trial where the model was first contradicted.

    Returns:
        Whether anything was drawn (``False``: no record has a trust).
    """
    from bfm_stim.optim.trust import LEAD_WEIGHT

    pts = [r for r in records if isinstance(r.get("trust"), (int, float))]
    if not pts:
        return False
    k = [r[trial_key] for r in pts]
    ax.plot(k, [r["trust"] for r in pts], "-", color="#4d4d4d", lw=1.5, label="trust P(model ranks)")
    ax.plot(k, [r.get("model_weight") for r in pts], "--", color="#17becf", lw=1.2, label="model weight")
    for led, (col, label) in LED_BY.items():
        sel = [r for r in pts if r.get("led_by") == led]
        if sel:
            ax.plot([r[trial_key] for r in sel], [r["trust"] for r in sel], "o", color=col, ms=5, ls="none",
                    label=label)
    ax.axhline(LEAD_WEIGHT, color="0.6", lw=0.8, ls=":", label=f"weight {LEAD_WEIGHT:g}: model stops leading")
    first = next((r[trial_key] for r in pts if r.get("trust_message")), None)
    if first is not None:
        ax.axvline(first, color="#d62728", lw=1.0, label=f"contradicted (trial {first})")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("trial")
    ax.set_ylabel("trust in the model")
    return True
