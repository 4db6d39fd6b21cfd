"""StimulusSpace and the safety choke point."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bfm_stim.exceptions import ConfigError, SafetyLimitError, ValidationError
from bfm_stim.safety import SafetyLimits, check_stimulus, max_safe_amplitude
from bfm_stim.space import Contact, Stimulus, StimulusSpace

CONTACTS = [Contact(f"c{i}", (1.0, -2.0, 2.0 * i), area) for i, area in enumerate((0.06, 0.06, 0.02, 0.12))]


def _space(**kw):
    return StimulusSpace.electrical(CONTACTS, **kw)


electrical = st.builds(
    Stimulus.electrical,
    contact=st.sampled_from([c.name for c in CONTACTS]),
    amplitude_ma=st.floats(0, 20, allow_nan=False),
    frequency_hz=st.floats(0, 1000, allow_nan=False),
    pulse_width_us=st.floats(0, 2000, allow_nan=False),
    duration_s=st.floats(0, 2, allow_nan=False),
    biphasic=st.booleans(),
)
limits = st.builds(
    SafetyLimits,
    shannon_k=st.floats(0.5, 2.5),
    max_charge_density_uc_cm2=st.floats(1, 60),
    max_charge_uc=st.floats(0.1, 5),
    max_amplitude_ma=st.floats(0.5, 12),
)


def _truly_safe(s: Stimulus, lim: SafetyLimits) -> bool:
    """Independent restatement of the limits, written from the equations."""
    if not s.biphasic and s.charge_uc > 0:
        return False
    if s.amplitude_ma > lim.max_amplitude_ma or s.frequency_hz > lim.max_frequency_hz:
        return False
    if s.pulse_width_us > lim.max_pulse_width_us or s.duration_s > lim.max_duration_s:
        return False
    q = s.amplitude_ma * s.pulse_width_us * 1e-3
    if q == 0:
        return s.biphasic
    area = {c.name: c.area_cm2 for c in CONTACTS}[s.contact]
    d = q / area
    return q <= lim.max_charge_uc and d <= lim.max_charge_density_uc_cm2 and math.log10(d) <= lim.shannon_k - math.log10(q)


@settings(max_examples=400, deadline=None)
@given(electrical, limits)
def test_nothing_unsafe_passes(stim, lim):
    contacts = {c.name: c for c in CONTACTS}
    try:
        check_stimulus(stim, contacts, lim)
        passed = True
    except SafetyLimitError:
        passed = False
    assert passed == _truly_safe(stim, lim)


@settings(max_examples=200, deadline=None)
@given(electrical, limits)
def test_projection_is_safe_and_keeps_safe_points(stim, lim):
    space = _space(limits=lim, amplitude_ma=(0, 20), frequency_hz=(1, 1000), pulse_width_us=(10, 2000), duration_s=(0, 2))
    p = space.project_safe(stim)
    assert space.is_safe(p)
    assert p.contact == stim.contact
    snapped = space.snap(stim)
    if space.is_safe(snapped):
        assert p == snapped


def test_shannon_message_names_limit_value_and_excess():
    space = _space(limits=SafetyLimits(shannon_k=1.0, max_charge_density_uc_cm2=100, max_charge_uc=10))
    s = Stimulus.electrical(contact="c2", amplitude_ma=3.0, frequency_hz=130, pulse_width_us=200)
    with pytest.raises(SafetyLimitError) as e:
        space.check(s)
    q = 0.6
    expected = math.log10(q / 0.02) + math.log10(q)
    assert e.value.limit == "shannon"
    assert e.value.value == pytest.approx(expected)
    assert e.value.allowed == 1.0
    assert "over" in str(e.value) and "c2" in str(e.value)


def test_default_density_cap_is_30():
    space = _space(amplitude_ma=(0, 10))
    a = max_safe_amplitude(300.0, 0.06, space.limits)
    assert a * 300e-3 / 0.06 == pytest.approx(30.0)  # the density cap binds before Shannon here
    space.check(Stimulus.electrical(contact="c0", amplitude_ma=a * 0.999, frequency_hz=130, pulse_width_us=300))
    with pytest.raises(SafetyLimitError, match="charge_density"):
        space.check(Stimulus.electrical(contact="c0", amplitude_ma=a * 1.01, frequency_hz=130, pulse_width_us=300))


def test_monophasic_refused():
    with pytest.raises(SafetyLimitError, match="charge_balance"):
        _space().check(Stimulus.electrical(contact="c0", amplitude_ma=1, frequency_hz=130, pulse_width_us=60, biphasic=False))


def test_unknown_contact_and_fields():
    space = _space()
    with pytest.raises(ValidationError, match="contact"):
        space.check(Stimulus.electrical(contact="c9", amplitude_ma=1, frequency_hz=130, pulse_width_us=60))
    with pytest.raises(ValidationError, match="volts"):
        Stimulus.from_dict({"kind": "electrical", "contact": "c0", "volts": 3})


def test_out_of_space_bounds_refused():
    space = _space(frequency_hz=(2, 200))
    with pytest.raises(ValidationError) as e:
        space.check(Stimulus.electrical(contact="c0", amplitude_ma=1, frequency_hz=220, pulse_width_us=60))
    assert e.value.field == "frequency_hz" and "200" in e.value.allowed


def _grid_stimuli(space):
    return st.lists(st.floats(0, 1), min_size=space.dim, max_size=space.dim).map(lambda u: space.from_unit([u])[0])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_unit_cube_and_json_round_trips_are_exact(data):
    space = data.draw(st.sampled_from([_space(), _space(duration_s=(0.5, 3)), StimulusSpace.sensory()]))
    s = data.draw(_grid_stimuli(space))
    assert space.from_unit(space.to_unit(s))[0] == s
    assert Stimulus.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    u = space.to_unit(s)
    assert ((u >= 0) & (u <= 1)).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=5, max_size=5))
def test_space_dict_round_trip(u):
    space = _space(amplitude_ma=(0, 3), duration_s=(0.5, 2))
    again = StimulusSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space
    assert again.from_unit([u]) == space.from_unit([u])


def test_toml(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text(
        """
[space]
kind = "electrical"
contacts = [
  { name = "c0", position_mm = [0, 0, 0], area_cm2 = 0.06 },
  { name = "c1", position_mm = [0, 0, 2] },
]
[space.parameters.amplitude_ma]
low = 0.0
high = 3.5
step = 0.05
[space.safety]
shannon_k = 1.5
"""
    )
    space = StimulusSpace.from_toml(p)
    assert space.param("amplitude_ma").high == 3.5 and space.param("amplitude_ma").step == 0.05
    assert space.limits.shannon_k == 1.5 and [c.name for c in space.contacts] == ["c0", "c1"]
    p.write_text("[space]\nkind = 'electrical'\ncontacts = [{name='a', position_mm=[0,0,0]}]\n[space.parameters.volume]\nlow=0\nhigh=1\n")
    with pytest.raises(ConfigError, match="volume"):
        StimulusSpace.from_toml(p)
    with pytest.raises(ConfigError, match="not found"):
        StimulusSpace.from_toml(tmp_path / "nope.toml")


def test_sensory_space_and_photosensitive_block():
    space = StimulusSpace.sensory(limits=SafetyLimits(block_photosensitive=True))
    ok = Stimulus.sensory(modality="visual_flicker", frequency_hz=40, level=0.8)
    space.check(ok)
    with pytest.raises(SafetyLimitError, match="photosensitive"):
        space.check(ok.with_(frequency_hz=20))
    assert space.project_safe(ok.with_(frequency_hz=20)).frequency_hz != 20
    space.check(Stimulus.sensory(modality="auditory_clicks", frequency_hz=20, level=0.8))


def test_shipped_space_config_loads():
    from pathlib import Path

    space = StimulusSpace.from_toml(Path(__file__).resolve().parents[2] / "loops" / "configs" / "space-dbs.toml")
    assert space.kind == "electrical" and space.dim == 4 and len(space.contacts) == 4
    s = space.from_unit([[0.5] * space.dim])[0]
    assert space.project_safe(s) == space.project_safe(space.project_safe(s))


def test_projection_when_lowest_amplitude_is_unsafe():
    space = _space(amplitude_ma=(4.0, 5.0), pulse_width_us=(300, 450))
    s = Stimulus.electrical(contact="c2", amplitude_ma=4.5, frequency_hz=130, pulse_width_us=450)
    p = space.project_safe(s)
    assert p.amplitude_ma == 0.0 and space.is_safe(p) and p.is_off
