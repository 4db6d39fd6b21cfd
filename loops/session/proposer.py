"""The optimizer on its own worker thread, so neither a slow ``ask`` nor a ``tell`` waiting behind one
holds up the trial loop.

Every optimizer operation (ask, tell, cancel) runs on one worker, in the order the loop submitted
it, and logs its record when it runs, so ``trials.jsonl`` lists the operations in exactly the
order the optimizer saw them and :func:`loops.session.store.replay` rebuilds the same optimizer
from the log. A measured outcome is also logged at once, before it is queued (``measured``): a
crash while the worker is still busy loses nothing, and ``--resume`` tells it.

The ``outcome`` record also carries the surrogate methods' trust in their model after that trial
(:func:`loops.model_trust.trial_fields`: ``trust``, ``model_weight``, ``led_by``, ``trust_reason``, and
``trust_message`` while the trials contradict the model); ``on_told(trial, fields)`` hands them to the view.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from bfm_stim._logging import get_logger
from bfm_stim.optim import Outcome
from bfm_stim.space import Stimulus
from loops.model_trust import trial_fields

__all__ = ["Proposer"]

log = get_logger("loops.session.proposer")


class Proposer:
    """Submit asks, tells and cancels; collect proposals by trial number.

    Args:
        opt: The optimizer.
        store: The session store (log and optimizer state).
        probes: Trials numbered ``<= probes`` are marked as probes (the optimizer's initial design).
        next_trial: Number of the first trial this run will ask for.
        on_told: Called on the worker as ``on_told(trial, trust_fields)`` after each tell is logged.
    """

    def __init__(self, opt: Any, store: Any, *, probes: int = 0, next_trial: int = 1,
                 on_told: Callable[[int, dict[str, Any]], None] | None = None) -> None:
        self.opt, self.store, self.probes, self.on_told = opt, store, probes, on_told
        self._q: queue.Queue = queue.Queue()
        self._cv = threading.Condition()
        self._ready: dict[int, tuple[Stimulus, float]] = {}
        self._asking: set[int] = set()
        self._error: BaseException | None = None
        self._next = next_trial
        self.ask_times: list[float] = []
        self._worker = threading.Thread(target=self._loop, name="optimizer", daemon=True)
        self._worker.start()

    # --- the worker ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            op, args = self._q.get()
            try:
                if op == "quit":
                    return
                getattr(self, f"_do_{op}")(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised in the loop's thread by result()
                log.exception("optimizer %s failed", op)
                with self._cv:
                    self._error = e
                    self._cv.notify_all()
            finally:
                self._q.task_done()

    def _do_ask(self, trial: int) -> None:
        t0 = time.perf_counter()
        stim = self.opt.ask(1)[0]
        dt = time.perf_counter() - t0
        self.store.append("asked", trial=trial, stimulus=stim.to_dict(), ask_s=dt, probe=trial <= self.probes)
        self.store.save_optimizer(self.opt)
        self.ask_times.append(dt)
        with self._cv:
            self._asking.discard(trial)
            self._ready[trial] = (stim, dt)
            self._cv.notify_all()

    def _do_tell(self, trial: int, stim: Stimulus, outcome: Outcome, fields: dict) -> None:
        self.opt.tell([stim], [outcome])
        try:
            trust = trial_fields(self.opt, stim)
        except Exception as e:  # noqa: BLE001 - the outcome record (an optimizer op) is written whatever happens
            log.warning("trial %d: the model's trust could not be computed (%s: %s)", trial, type(e).__name__, e)
            trust = {}
        self.store.append("outcome", trial=trial, cost=outcome.cost, side_effect=outcome.side_effect, **fields,
                          **trust)
        self.store.save_optimizer(self.opt)
        if self.on_told is not None:
            self.on_told(trial, trust)

    def _do_cancel(self, trial: int, stim: Stimulus, kind: str, reason: str, fields: dict) -> None:
        self.opt.cancel(stim)
        self.store.append(kind, trial=trial, reason=reason, **fields)
        self.store.save_optimizer(self.opt)

    # --- the loop's side ------------------------------------------------------------------------------
    def set_ready(self, trial: int, stim: Stimulus, ask_s: float) -> None:
        """A proposal already logged (``asked``) but never sent: the next trial sends it (resume)."""
        with self._cv:
            self._ready[trial] = (stim, ask_s)
        self._next = min(self._next, trial)

    def next_trial(self) -> int:
        """The number of the next trial to run."""
        return self._next

    def start(self, trial: int) -> None:
        """Queue the ask for ``trial`` (no-op when it is queued, running or ready)."""
        with self._cv:
            if trial in self._ready or trial in self._asking:
                return
            self._asking.add(trial)
        self._q.put(("ask", (trial,)))

    def result(self, trial: int, *, poll: Any = None) -> tuple[int, Stimulus, float]:
        """The proposal for ``trial`` (queued now if it was not); ``poll()`` is called while waiting."""
        self.start(trial)
        while True:
            with self._cv:
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                if trial in self._ready:
                    stim, dt = self._ready.pop(trial)
                    self._next = trial + 1
                    return trial, stim, dt
                self._cv.wait(0.002)
            if poll is not None:
                poll()

    def tell(self, trial: int, stim: Stimulus, cost: float, side_effect: float | None, **fields: Any) -> Outcome:
        """Log the measured outcome now (``measured``, fsynced) and queue the tell; returns the outcome."""
        outcome = Outcome(cost, side_effect, {"trial": trial})
        self.store.append("measured", trial=trial, cost=outcome.cost, side_effect=side_effect, **fields)
        self._q.put(("tell", (trial, stim, outcome, fields)))
        return outcome

    def cancel(self, trial: int, stim: Stimulus, kind: str, reason: str, **fields: Any) -> None:
        """Queue dropping a trial that produced no outcome (``kind``: ``interrupted`` or ``rejected``)."""
        self._q.put(("cancel", (trial, stim, kind, reason, fields)))

    def wait_idle(self) -> None:
        """Return once every queued operation has run (and been logged)."""
        self._q.join()
        with self._cv:
            if self._error is not None:
                err, self._error = self._error, None
                raise err

    def close(self) -> None:
        self._q.put(("quit", ()))
        self._worker.join(timeout=60)

