"""The live terminal view of a session (``rich``): trial, stimulus, cost, best so far, the model's trust,
stream health, ETA.

Without a terminal (CI, a pipe, ``--no-live``) it logs one line per trial instead (and one on the
model's trust per trial, for the surrogate methods).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bfm_stim._logging import get_logger
from loops.model_trust import trust_text

__all__ = ["LiveView"]

log = get_logger("loops.session")


def _stim_text(s: Any) -> str:
    if s is None:
        return "-"
    if s.kind == "electrical":
        return f"{s.contact} {s.amplitude_ma:.2f} mA {s.frequency_hz:.0f} Hz {s.pulse_width_us:.0f} µs {s.duration_s:g} s"
    if s.kind == "sensory":
        return f"{s.modality} {s.frequency_hz:.1f} Hz level {s.level:.2f} {s.duration_s:g} s"
    return "off"


class LiveView:
    """Holds the session's displayed state; :meth:`refresh` redraws at most 8 times a second.

    Args:
        enabled: Draw with ``rich`` (default: when stdout is a terminal).
        budget: Trials planned.
        title: Header line (device, target, optimizer).
    """

    def __init__(self, *, enabled: bool | None = None, budget: int = 0, title: str = "") -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.state: dict[str, Any] = {"status": "starting", "trial": 0, "completed": 0, "budget": budget,
                                      "cost": None, "best": None, "best_stim": None, "stimulus": None,
                                      "fault": "", "faults": 0, "interrupted": 0, "rejected": 0, "dead_s": None,
                                      "rate": None, "age_s": None, "mode": "trials", "biomarker": None,
                                      "amplitude_ma": None, "stage": "", "progress": None, "trust": None,
                                      "model_weight": None, "led_by": None, "trust_reason": None,
                                      "trust_message": None}
        self.title = title
        self.t0 = time.monotonic()
        self._live: Any = None
        self._last = 0.0
        self._trial_times: list[float] = []

    def __enter__(self) -> "LiveView":
        if self.enabled:
            from rich.live import Live

            self._live = Live(self._render(), refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def update(self, **state: Any) -> None:
        self.state.update(state)

    def trial_done(self, k: int, stim: Any, cost: float, best: float | None, best_stim: Any) -> None:
        st = self.state
        self._trial_times.append(time.monotonic())
        st.update(completed=st["completed"] + 1, cost=cost, best=best, best_stim=best_stim)
        if not self.enabled:
            log.info("trial %d: %s -> cost %.4g (best %.4g)", k, _stim_text(stim), cost,
                     best if best is not None else float("nan"))

    def trust_done(self, k: int, fields: dict[str, Any]) -> None:
        """The model's trust after trial ``k`` (:func:`loops.model_trust.trial_fields`); the message stays shown
        while the trials contradict the model."""
        self.state.update({key: fields.get(key) for key in ("trust", "model_weight", "led_by", "trust_reason",
                                                            "trust_message")})
        if not self.enabled and fields.get("trust") is not None:
            log.info("trial %d: model trust %s: %s", k, trust_text(fields["trust"], fields.get("model_weight"),
                                                                   fields.get("led_by")), fields.get("trust_reason"))

    def eta_s(self) -> float | None:
        st = self.state
        if len(self._trial_times) < 2 or not st["budget"]:
            return None
        per = (self._trial_times[-1] - self._trial_times[0]) / (len(self._trial_times) - 1)
        return max(0, st["budget"] - st["completed"]) * per

    def refresh(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if force or now - self._last > 0.125:
            self._last = now
            self._live.update(self._render())

    def _render(self) -> Any:
        from rich.markup import escape
        from rich.panel import Panel
        from rich.table import Table

        st = self.state
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold cyan", justify="right")
        t.add_column()
        elapsed = time.monotonic() - self.t0
        eta = self.eta_s()
        t.add_row("status", f"{st['status']}" + (f" ({st['stage']} {st['progress']:.0%})"
                                                  if st["progress"] is not None and st["stage"] else ""))
        if st["mode"] == "trials":
            t.add_row("trial", f"{st['trial']}  completed {st['completed']}/{st['budget']}  interrupted "
                               f"{st['interrupted']}  rejected {st['rejected']}")
            t.add_row("stimulus", _stim_text(st["stimulus"]))
            t.add_row("cost", "-" if st["cost"] is None else f"{st['cost']:.4g}")
            t.add_row("best so far", "-" if st["best"] is None else f"{st['best']:.4g}  {_stim_text(st['best_stim'])}")
            if st["trust"] is not None:
                t.add_row("model trust", f"{trust_text(st['trust'], st['model_weight'], st['led_by'])}  "
                                         f"{escape(st['trust_reason'] or '')}")
            if st["trust_message"]:
                t.add_row("", f"[yellow]{escape(st['trust_message'])}[/yellow]")
            if st["dead_s"] is not None:
                t.add_row("dead time", f"{1000 * st['dead_s']:.1f} ms before the last command")
        else:
            t.add_row("mode", str(st["mode"]))
            t.add_row("biomarker", "-" if st["biomarker"] is None else f"{st['biomarker']:.3f}")
            t.add_row("amplitude", "-" if st["amplitude_ma"] is None else f"{st['amplitude_ma']:.2f} mA")
        health = "ok" if not st["fault"] else f"[red]{st['fault']}[/red]"
        t.add_row("stream", f"{health}  faults {st['faults']}")
        t.add_row("time", f"{elapsed:5.0f} s elapsed" + (f", ETA {eta:4.0f} s" if eta is not None else ""))
        return Panel(t, title=self.title or "bfm-stim session", border_style="blue")
