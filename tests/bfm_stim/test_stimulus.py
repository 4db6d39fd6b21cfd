"""The records: Stimulus, Contact and Parameter validate themselves."""

from __future__ import annotations

import pytest

from bfm_stim.exceptions import ValidationError
from bfm_stim.stimulus import Contact, Parameter, Stimulus


@pytest.mark.parametrize(
    "field,value",
    [("amplitude_ma", float("nan")), ("frequency_hz", float("inf")), ("pulse_width_us", -1.0), ("amplitude_ma", "2")],
)
def test_bad_values_name_the_field(field, value):
    d = Stimulus.electrical(contact="c0", amplitude_ma=1, frequency_hz=130, pulse_width_us=60).to_dict()
    d[field] = value
    with pytest.raises(ValidationError) as e:
        Stimulus.from_dict(d)
    assert e.value.field == field


def test_snap_never_leaves_bounds():
    p = Parameter("pulse_width_us", "µs", 10.744443563, 400.0, step=1.0)
    for v in (10.744443563, 10.7444435631, 399.99999, 400.0, 1e6, -5):
        assert p.low <= p.snap(v) <= p.high


def test_records_are_the_ones_bfm_stim_space_exports():
    from bfm_stim import space

    assert (space.Stimulus, space.Contact, space.Parameter) == (Stimulus, Contact, Parameter)


def test_contact_validates_position_and_area():
    assert Contact("c0", (0, 0, 1)).position_mm == (0.0, 0.0, 1.0)
    with pytest.raises(ValidationError, match="position_mm"):
        Contact("c0", (0.0, float("nan"), 0.0))
    with pytest.raises(ValidationError, match="area_cm2"):
        Contact("c0", (0.0, 0.0, 0.0), area_cm2=0.0)
