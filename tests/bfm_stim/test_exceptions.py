"""Errors keep their fields and message across processes (worker pools pickle what a job raises)."""

from __future__ import annotations

import pickle

import pytest

from bfm_stim.exceptions import CommandRejected, SafetyLimitError, ValidationError

ERRORS = [
    ValidationError("--reuse", "old.json", "a sweep of the same patients", "n_test is 4 there, 16 here"),
    ValidationError("amplitude_ma", float("nan"), "a finite value in [0, 3] mA"),
    SafetyLimitError("charge_density", 31.0, 30.0, "µC/cm²", "contact 2"),
    CommandRejected("replay", "sequence 7 already seen"),
]


@pytest.mark.parametrize("err", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling_with_their_fields(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err)
    assert {k: str(v) for k, v in vars(back).items()} == {k: str(v) for k, v in vars(err).items()}
