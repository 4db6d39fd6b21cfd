"""The optimizer behind a lock, asking in the background so a slow ``ask`` adds no dead time.

Every optimizer operation (ask, tell, cancel) and its log record happen together under one lock,
so ``trials.jsonl`` lists them in exactly the order the optimizer saw them, and
:func:`loops.session.store.replay` rebuilds the same optimizer from the log.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bfm_stim._logging import get_logger
from bfm_stim.optim import Outcome
from bfm_stim.space import Stimulus

__all__ = ["Proposer"]

log = get_logger("loops.session.proposer")


class Proposer:
    """Asks the optimizer for trial ``k`` in a background thread; tells and cancels in order.

    Args:
        opt: The optimizer.
        store: The session store (log and optimizer state).
        probes: Trials numbered ``<= probes`` are marked as probes (the optimizer's initial design).
    """

    def __init__(self, opt: Any, store: Any, *, probes: int = 0) -> None:
        self.opt, self.store, self.probes = opt, store, probes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready: tuple[int, Stimulus, float] | None = None
        self._error: BaseException | None = None
        self.ask_times: list[float] = []

    def set_ready(self, trial: int, stim: Stimulus, ask_s: float) -> None:
        """A proposal already logged (``asked``) but never sent: the next trial sends it (resume)."""
        self._ready = (trial, stim, ask_s)

    @property
    def busy(self) -> bool:
        return self._thread is not None or self._ready is not None

    def start(self, trial: int) -> None:
        """Begin asking for ``trial`` in the background (no-op when one is running or ready)."""
        if self.busy:
            return
        self._error = None
        self._thread = threading.Thread(target=self._ask, args=(trial,), name=f"ask[{trial}]", daemon=True)
        self._thread.start()

    def _ask(self, trial: int) -> None:
        try:
            with self._lock:
                t0 = time.perf_counter()
                stim = self.opt.ask(1)[0]
                dt = time.perf_counter() - t0
                self.store.append("asked", trial=trial, stimulus=stim.to_dict(), ask_s=dt, probe=trial <= self.probes)
                self.store.save_optimizer(self.opt)
            self.ask_times.append(dt)
            self._ready = (trial, stim, dt)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread by result()
            self._error = e

    def result(self, trial: int, *, poll: Any = None) -> tuple[int, Stimulus, float]:
        """The proposal (starting the ask if needed); ``poll()`` is called while waiting (pump the stream)."""
        self.start(trial)
        while self._ready is None:
            if self._error is not None:
                err, self._error, self._thread = self._error, None, None
                raise err
            if poll is not None:
                poll()
            time.sleep(0.002)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        out, self._ready = self._ready, None
        return out

    def wait_idle(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def tell(self, trial: int, stim: Stimulus, cost: float, side_effect: float | None, **fields: Any) -> Outcome:
        """Tell the optimizer one completed trial and log it (``outcome``); returns the outcome."""
        outcome = Outcome(cost, side_effect, {"trial": trial})
        with self._lock:
            self.opt.tell([stim], [outcome])
            self.store.append("outcome", trial=trial, cost=outcome.cost, side_effect=side_effect, **fields)
            self.store.save_optimizer(self.opt)
        return outcome

    def cancel(self, trial: int, stim: Stimulus, kind: str, reason: str, **fields: Any) -> None:
        """Drop a trial that produced no outcome (``kind``: ``interrupted`` or ``rejected``) and log it."""
        with self._lock:
            self.opt.cancel(stim)
            self.store.append(kind, trial=trial, reason=reason, **fields)
            self.store.save_optimizer(self.opt)

    def median_ask_s(self) -> float:
        recent = sorted(self.ask_times[-5:])
        return recent[len(recent) // 2] if recent else 0.0
