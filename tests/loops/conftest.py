"""Shared fixtures for the application-layer tests."""

from __future__ import annotations

import logging

import pytest
import torch


@pytest.fixture
def restore_package_logger():
    """``loops.cli.main`` sets the package logger's level and handler: give the next test the logger as it was."""
    lg = logging.getLogger("bfm_stim")
    level, handlers = lg.level, list(lg.handlers)
    yield
    lg.setLevel(level)
    lg.handlers[:] = handlers


class Bowl:
    """A closed-form cost model around a stimulus's features; ``sign=-1`` ranks stimuli against the truth."""

    names = ("contact_z", "amplitude", "log_frequency", "pulse_width")

    def __init__(self, space, stim, sign: float = 1.0) -> None:
        from bfm_stim.stim_features import FEATURE_NAMES

        self.f = space.to_features([stim], dtype=torch.float64)[0]
        self.idx = [FEATURE_NAMES.index(n) for n in self.names]
        self.sign = sign

    def predict(self, F):
        d = F[:, self.idx] - self.f[self.idx].to(F)
        return self.sign * (1 - torch.exp(-4 * (d ** 2).sum(-1))), 0.1 + 0 * F[:, 0]


@pytest.fixture(scope="session")
def bump():
    """A closed-form patient (:class:`bfm_stim.optim.test_problems.ContactBump`) and cost models of it:
    ``(problem, right, wrong)``; ``wrong`` predicts the optimum as the worst stimulus."""
    from bfm_stim.optim.test_problems import ContactBump

    p = ContactBump()
    return p, Bowl(p.space, p.optimum), Bowl(p.space, p.optimum, sign=-1.0)
