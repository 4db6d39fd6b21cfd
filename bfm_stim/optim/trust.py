"""How much a surrogate method trusts its model, measured online from the trials it has run.

The foundation model is a prior, never an authority: every real patient lies outside the
simulators it was pretrained on. After each measured trial the surrogate methods (``guided``,
``gradient``, ``egreedy``) ask one question of the trials so far: *do the model's predicted costs
for the stimuli that were delivered explain the measured costs better than no model at all?*

The answer is a Bayes factor between two regressions of the measured costs ``y`` on the model's
predicted costs ``p`` at the delivered stimuli:

* H1, *the model ranks the stimuli*: ``y_i = a + b p_i + e_i`` with a slope ``b > 0`` at the
  scale the trials show (a log-normal prior around ``sqrt(S_yy / S_pp)``, ``slope_sd`` in log
  units): the model is judged on its *ranking*, whatever the units of its predictions, because
  the ranking is what the optimizers follow (``gradient`` and ``egreedy`` go to the model's
  argmin however small the differences it predicts; ``guided`` rescales its prior mean anyway);
* H0, *the model is uninformative*: ``y_i = a + e_i``.

The intercept ``a`` (an offset between predicted and measured cost) and the noise ``sigma`` are
shared nuisance parameters with the usual reference priors (flat, ``1/sigma``), so the Bayes
factor depends on the data only through the residual sums of squares:
``BF = E_b[(S(b) / S0)^(-(n-1)/2)]`` with ``S(b) = sum((yc - b pc)^2)``, ``S0 = sum(yc^2)`` on
centred ``y`` and ``p``, the expectation over the slope prior (a 1-D quadrature). This is the
evidence comparison of a GP with the surrogate as prior mean against one without, reduced to the
part that the first few trials can resolve (the mean function), in closed form and in
microseconds. At the trials' own scale the test is a test of the correlation ``r`` of predicted and
measured costs: ``S(b0) / S0 = 2 (1 - r)``, so a model ranking against the data (``r < 0``) is
contradicted within 3-4 trials, an uninformative one (``r`` near 0) within about 6-12, and one
with ``r`` above about 0.5 gains trust. Why not a plain rank correlation: this one has a
likelihood, so it accumulates as evidence and turns into a posterior probability.

``trust = P(H1 | trials)``, from the prior probability ``prior`` (0.5: nothing is known about this
patient). The *weight* an optimizer gives the model is ``min(1, trust / prior)``: full while the
trials do not argue against the model, fading with the evidence against it, and back to full
when later trials confirm it. At ``weight < 0.5`` (the Bayes factor below 1/3, "substantial"
evidence against the model on Jeffreys' scale) the model no longer leads: the optimizer
proposes as plain constraint-aware BO (:class:`~bfm_stim.optim.bo.BayesOpt`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bfm_stim.exceptions import ValidationError

__all__ = ["TrustState", "model_log_evidence", "assess_trust", "check_trust_settings", "LEAD_WEIGHT",
           "trust_message"]

#: The model leads the proposals while its weight is at least this (Bayes factor >= 1/3 at prior 0.5).
LEAD_WEIGHT = 0.5
_GRID = 161  # quadrature points of the slope prior


def check_trust_settings(trust: Any, prior: Any, slope_sd: Any) -> None:
    """Validate the trust settings shared by the surrogate optimizers (raises ValidationError)."""
    if not isinstance(trust, bool):
        raise ValidationError("trust", trust, "true or false (false: the model is followed whatever the trials say)")
    if isinstance(prior, bool) or not isinstance(prior, (int, float)) or not 0.0 < prior < 1.0:
        raise ValidationError("trust_prior", prior, "a probability in (0, 1)")
    if isinstance(slope_sd, bool) or not isinstance(slope_sd, (int, float)) or not 0.05 <= slope_sd <= 5.0:
        raise ValidationError("trust_slope_sd", slope_sd, "a log-slope spread in [0.05, 5]")


def model_log_evidence(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray, *,
                       slope_sd: float = 0.5) -> float:
    """Natural log of the Bayes factor H1 (the model ranks) : H0 (uninformative); see the module docs.

    Args:
        predicted: (n,) the model's predicted costs at the delivered stimuli.
        measured: (n,) the measured costs of those trials (same units as the predictions).
        slope_sd: Spread of the log-normal slope prior (log units).

    Returns:
        ``log BF`` (0.0 with fewer than 3 trials or no variation at all: no evidence either way).
    """
    p = np.asarray(predicted, dtype=float).reshape(-1)
    y = np.asarray(measured, dtype=float).reshape(-1)
    if p.shape != y.shape:
        raise ValidationError("predicted", p.shape, f"one prediction per measurement {y.shape}")
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    n = len(y)
    if n < 3:
        return 0.0
    pc, yc = p - p.mean(), y - y.mean()
    spp, syy, spy = float(pc @ pc), float(yc @ yc), float(pc @ yc)
    scale = spp + syy
    if scale <= 0.0:
        return 0.0
    if spp <= 1e-12 * scale:  # the model predicts the same cost for every delivered stimulus: no claim to test
        return 0.0
    nugget = 1e-9 * scale + 1e-300  # keeps a perfect fit finite
    # slope grid over the log-normal prior around the trials' own scale, quantiles +-4 sd
    b0 = math.sqrt(max(syy, nugget) / spp)
    u = np.linspace(-4.0, 4.0, _GRID)
    b = b0 * np.exp(slope_sd * u)
    w = np.exp(-0.5 * u ** 2)
    w /= w.sum()
    s_b = syy - 2.0 * b * spy + b ** 2 * spp + nugget
    s_0 = syy + nugget
    log_ratio = -0.5 * (n - 1) * (np.log(s_b) - math.log(s_0))
    m = float(log_ratio.max())
    return m + math.log(float((w * np.exp(log_ratio - m)).sum()))


@dataclass(frozen=True)
class TrustState:
    """The trust in the model after ``n`` trials.

    Args:
        trust: ``P(the model ranks the stimuli | trials)`` in [0, 1] (``None``: no model).
        weight: ``min(1, trust / prior)``: the share of the model in the proposals (1 = full).
        leads: Whether the model leads the next proposal (``weight >= LEAD_WEIGHT``).
        n: Trials compared.
        log_bf: Natural log of the Bayes factor (model : no model).
        rank: Spearman correlation of predicted vs measured cost over the trials (``None`` below 3).
        reason: One line on what the evidence says.
    """

    trust: float | None
    weight: float
    leads: bool
    n: int
    log_bf: float
    rank: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"trust": self.trust, "weight": self.weight, "leads": self.leads, "n": self.n,
                "log_bf": self.log_bf, "rank": self.rank, "reason": self.reason}


def _spearman(p: np.ndarray, y: np.ndarray) -> float | None:
    if len(p) < 3 or np.ptp(p) == 0 or np.ptp(y) == 0:
        return None
    rp = np.argsort(np.argsort(p, kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(rp, ry)[0, 1])


def assess_trust(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray, *,
                 prior: float = 0.5, slope_sd: float = 0.5, enabled: bool = True) -> TrustState:
    """The :class:`TrustState` of a model from its predictions and the measured costs (see module docs).

    Args:
        predicted: (n,) predicted costs at the delivered stimuli.
        measured: (n,) measured costs.
        prior: Prior probability that the model ranks this patient's stimuli.
        slope_sd: Spread of the slope prior (log units).
        enabled: ``False`` computes the same evidence but keeps the weight at 1 (trust switched off).
    """
    p = np.asarray(predicted, dtype=float).reshape(-1)
    y = np.asarray(measured, dtype=float).reshape(-1)
    lbf = model_log_evidence(p, y, slope_sd=slope_sd)
    logit = math.log(prior / (1.0 - prior)) + lbf
    trust = 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0
    weight = min(1.0, trust / prior) if enabled else 1.0
    rank = _spearman(p, y)
    n = int(len(y))
    if n < 3:
        reason = f"{n} trial(s): too few to judge the model (prior trust {prior:.2f})"
    elif lbf <= math.log(1 / 3):
        reason = (f"the trials contradict the model (Bayes factor {math.exp(lbf):.2g} : 1 for it, rank agreement "
                  f"{'n/a' if rank is None else f'{rank:+.2f}'} over {n} trials)")
    elif lbf >= math.log(3):
        reason = (f"the trials confirm the model (Bayes factor {math.exp(min(lbf, 50)):.3g} : 1, rank agreement "
                  f"{'n/a' if rank is None else f'{rank:+.2f}'} over {n} trials)")
    else:
        reason = f"the trials neither confirm nor contradict the model yet ({n} trials)"
    return TrustState(trust, weight, (weight >= LEAD_WEIGHT) or not enabled, n, lbf, rank, reason)


def trust_message(state: TrustState | None, *, enabled: bool = True) -> str | None:
    """One line for the user when the model is being contradicted (``None`` otherwise)."""
    if state is None or state.trust is None or state.log_bf > math.log(1 / 3):
        return None
    tail = ("the optimizer now proposes as plain constraint-aware BO and the model's picks are no longer "
            "preferred; adapt the model to this patient (bfm-stim adapt) or use `bo`" if enabled else
            "trust is switched off, so the optimizer still follows the model: switch it on (trust = true) or use `bo`")
    return (f"The model does not know this patient: {state.reason}; {tail}.")
