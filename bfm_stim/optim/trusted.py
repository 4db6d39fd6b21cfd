"""What the surrogate optimizers share: a model they may or may not have, and a trust in it.

:class:`TrustedModel` is mixed into ``guided``, ``gradient`` and ``egreedy``. It keeps

* whether a cost model was given at all (``has_model``): without one the optimizer says so once
  (a warning) and reports ``trust = None`` instead of silently running on a flat prior under the
  same name;
* the model's predicted cost at every told stimulus (the model is fixed, so each is computed once);
* the :class:`~bfm_stim.optim.trust.TrustState` after the trials so far
  (:func:`~bfm_stim.optim.trust.assess_trust`);
* a fallback :class:`~bfm_stim.optim.bo.BayesOpt` on the same observations, which proposes and
  recommends when the trials have turned against the model (``gradient``, ``egreedy``; ``guided``
  is BO already and fades its prior mean instead);
* the *contrast* trials of ``gradient`` and ``egreedy`` (:data:`CONTRAST_AT`): two early trials at
  space-filling (Sobol) points instead of model picks. A model's own picks are stimuli it predicts
  to be about equally good; measured alone they cannot tell a model that ranks from one that does
  not (the costs differ by noise only), so the trust test would drift on noise in both directions.
  One point away from the model's choice gives the test its leverage: a right model predicted it
  worse and it is; a wrong model did not. ``guided`` interleaves Sobol points already.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from bfm_stim._logging import get_logger
from bfm_stim.optim.bo import BayesOpt, BOSettings
from bfm_stim.optim.surrogate_cost import predict_mean
from bfm_stim.optim.trust import TrustState, assess_trust, trust_message

__all__ = ["TrustedModel", "FALLBACK_BO", "CONTRAST_AT"]

log = get_logger("optim")

#: The model's last this many own picks are checked against the trials (:meth:`TrustedModel.picks_deliver`).
PICK_WINDOW = 3
#: While its picks do not deliver, the model gets one probe pick after this many BO-led trials.
PROBE_EVERY = 5
#: Settings of the fallback BO (``bo``'s defaults, leaner acquisition as the benchmark runs ``bo``).
FALLBACK_BO = dict(num_restarts=2, raw_samples=64, mc_samples=32, maxiter=30)
#: Trial positions (0-based) that ``gradient`` and ``egreedy`` give to contrast (Sobol) points while
#: ``trust`` is on: the 2nd and 4th trials. Trial 1 is always the model's best pick.
CONTRAST_AT = (1, 3)


class TrustedModel:
    """Mixin: model bookkeeping and online trust for a surrogate optimizer (see module docs).

    The host class has ``cost_model``, ``space``, ``settings`` (with ``trust``, ``trust_prior``,
    ``trust_slope_sd``, ``seed``, ``side_effect_threshold``), ``_obs`` and ``_pending``; it calls
    :meth:`_init_model` before ``Optimizer.__init__`` and :meth:`_reset_trust` from ``_setup``.
    """

    cost_model: Any
    has_model: bool
    _obs: list[Any]
    _pending: list[Any]

    def _init_model(self, cost_model: Any) -> None:
        from bfm_stim.optim.surrogate_cost import ConstantCost

        self.has_model = cost_model is not None
        self.cost_model = ConstantCost() if cost_model is None else cost_model
        if not self.has_model:
            log.warning("%s: no cost model was given, so there is no surrogate: it runs on a flat prior "
                        "(outcome correction / BO alone) and reports trust = none. Pass cost_model= "
                        "(e.g. bfm_stim.optim.cost_model_from_rest) to use the foundation model.",
                        getattr(self, "name", type(self).__name__))

    def _reset_trust(self) -> None:
        self._pred: list[float] = []
        self._fallback: BayesOpt | None = None
        self._trust_cache: tuple[int, TrustState | None] | None = None
        self._warned_n = -1
        self._warned_picks = False

    # --- predictions and trust ----------------------------------------------------------------
    def model_predictions(self) -> np.ndarray:
        """(n_told,) the (uncorrected) model's predicted cost at each told stimulus."""
        n = len(self._obs)
        if len(self._pred) != n:  # all of them in one batch: a restored optimizer computes the same numbers
            stims = [s for s, _, _ in self._obs]
            with torch.no_grad():
                m = predict_mean(self.cost_model, self.space.to_features(stims, dtype=torch.float64)) if stims else None
            self._pred = [] if m is None else [float(v) for v in m.detach().reshape(-1)]
        return np.asarray(self._pred, dtype=float)

    @property
    def trust_state(self) -> TrustState | None:
        """The trust after the trials told so far (``None`` without a cost model)."""
        n = len(self._obs)
        if self._trust_cache is not None and self._trust_cache[0] == n:
            return self._trust_cache[1]
        state = None
        if self.has_model:
            st = self.settings
            y = np.asarray([o.cost for _, o, _ in self._obs], dtype=float)
            state = assess_trust(self.model_predictions(), y, prior=st.trust_prior, slope_sd=st.trust_slope_sd,
                                 enabled=st.trust)
            msg = trust_message(state, enabled=st.trust)
            if msg and self._warned_n < 0:  # said once, when the evidence first turns
                self._warned_n = n
                log.warning("%s: %s", getattr(self, "name", type(self).__name__), msg)
        self._trust_cache = (n, state)
        return state

    @property
    def trust(self) -> float | None:
        """``P(the model ranks this patient's stimuli | trials)`` (``None`` without a model)."""
        s = self.trust_state
        return None if s is None else s.trust

    @property
    def model_weight(self) -> float:
        """The model's share in the proposals, in [0, 1] (1 without trust; 0 without a model)."""
        s = self.trust_state
        return 0.0 if s is None else s.weight

    @property
    def model_leads(self) -> bool:
        """Whether the model leads the next proposal (without a model the host's own rule runs).

        It leads while the trials do not contradict it (:attr:`TrustState.leads`) *and* its own picks
        deliver (:meth:`picks_deliver`); once they have not, BO leads and the model is given one probe
        pick after every :data:`PROBE_EVERY` BO-led trials, and leads again if that pick delivers.
        """
        s = self.trust_state
        if s is None:
            return True
        if not self.settings.trust:
            return s.leads
        if not s.leads:
            return False
        if self.picks_deliver():
            return True
        if not self._warned_picks:
            self._warned_picks = True
            log.warning("%s: the model's last %d picks did no better than the trials' worse two thirds: BO leads "
                        "(the model gets a probe pick every %d trials); its optimum is not this patient's",
                        getattr(self, "name", type(self).__name__), PICK_WINDOW, PROBE_EVERY)
        return self._since_model_pick() >= PROBE_EVERY  # a probe

    def _model_picked(self) -> list[int]:
        """Indices of the told trials that were the model's own picks (not fills, explorations, Sobol or BO)."""
        out = []
        for i, (_, _, t) in enumerate(self._obs):
            if isinstance(t, dict) and t.get("led_by") == "model" and "pred" in t and not t.get("explore"):
                out.append(i)
        return out

    def _since_model_pick(self) -> int:
        idx = self._model_picked()
        return len(self._obs) - 1 - idx[-1] if idx else len(self._obs)

    def picks_deliver(self) -> bool:
        """Whether the model's own picks deliver: one of its last :data:`PICK_WINDOW` picks measured among
        the best third of all trials so far (true until it has made that many picks and 6 trials exist).

        The regression behind the trust judges the model's ranking over every trial; a model can get a
        trend right (more charge, less beta) and its optimum wrong, and then the optimizers that go to
        its optimum (``gradient``, ``egreedy``) keep delivering bad stimuli. A clinician stops following
        a recommendation that has not worked three times in a row; so does this rule.
        """
        idx = self._model_picked()
        if len(idx) < PICK_WINDOW or len(self._obs) < 6:
            return True
        costs = np.asarray([o.cost for _, o, _ in self._obs], dtype=float)
        return bool(costs[idx[-PICK_WINDOW:]].min() <= np.quantile(costs, 1.0 / 3.0))

    def _trust_tag(self) -> dict[str, Any]:
        s = self.trust_state
        tag: dict[str, Any] = {"trust": None if s is None else s.trust, "weight": None if s is None else s.weight}
        if s is not None and self.settings.trust and s.leads and not self.picks_deliver():
            tag["picks_deliver"] = False
        return tag

    # --- contrast trials ------------------------------------------------------------------------
    def _contrast_slots(self, n: int) -> list[bool]:
        """For the next ``n`` proposals: whether each is a contrast trial (:data:`CONTRAST_AT`)."""
        if not (self.has_model and self.settings.trust):
            return [False] * n
        start = len(self._obs) + len(self._pending)
        return [start + k in CONTRAST_AT for k in range(n)]

    def _contrast_point(self, position: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """The contrast trial at ``position`` (in :data:`CONTRAST_AT`): a Sobol point in the safe set
        (unit-cube row ``(dim,)``) and its tag. Position-indexed and seeded, so it needs no state."""
        j = CONTRAST_AT.index(position)
        eng = torch.quasirandom.SobolEngine(max(self.space.dim, 1), scramble=True, seed=self.settings.seed + 7919)
        eng.fast_forward(j)
        u = self.safe_map(eng.draw(1, dtype=torch.float64)[:, : self.space.dim])[0]
        return u, {"contrast": True, "led_by": "design", **self._trust_tag()}

    # --- the fallback BO ----------------------------------------------------------------------
    def _bo(self) -> BayesOpt:
        """The fallback BO, sharing this optimizer's observations and pending proposals."""
        if self._fallback is None:
            st = self.settings
            self._fallback = _FallbackBO(self.space, BOSettings(seed=st.seed,
                                                                side_effect_threshold=st.side_effect_threshold,
                                                                **FALLBACK_BO))
        bo = self._fallback
        bo._obs = self._obs  # the same list: no copy to keep in sync
        bo._pending = self._pending
        return bo

    def _bo_propose(self, n: int) -> tuple[torch.Tensor, list[Any]]:
        U, tags = self._bo()._propose(n)
        return U, [{**(t if isinstance(t, dict) else {}), "led_by": "bo", **self._trust_tag()} for t in tags]

    def _trust_impl_state(self) -> dict[str, Any]:
        return {} if self._fallback is None else {"fallback_bo": self._fallback._impl_state()}

    def _load_trust_impl_state(self, state: Mapping[str, Any]) -> None:
        if "fallback_bo" in state:
            self._bo()._load_impl_state(state["fallback_bo"])


def _space_filling(tag: Any) -> bool:
    """Whether a proposal's tag marks a space-filling trial: a Sobol point (the fallback's design, guided's
    design), a contrast trial or an ε-exploration (uniform)."""
    return isinstance(tag, dict) and bool(tag.get("sobol") or tag.get("contrast") or tag.get("explore"))


class _FallbackBO(BayesOpt):
    """The fallback :class:`BayesOpt` of a surrogate optimizer: plain constraint-aware BO, including its
    space-filling start. The trials it inherits are mostly the model's picks, clustered where the model
    put the optimum; fitted on those alone the GP never looks elsewhere (seen: ``gradient`` on the example
    user patient stuck at regret 0.5–1 while ``bo`` reached 0.03). So its Sobol design runs until
    ``n_init`` of the trials are space-filling (:func:`_space_filling`: contrast trials and explorations
    count), whatever the number of model picks before it."""

    def _n_init(self) -> int:
        picks = sum(not _space_filling(t) for _, _, t in self._obs) + sum(not _space_filling(t)
                                                                          for _, t in self._pending)
        return self.settings.n_init + picks
