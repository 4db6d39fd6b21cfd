"""Stimuli as model features: one formula, the same from records and from the unit cube."""

from __future__ import annotations

import pytest
import torch

from bfm_stim.exceptions import ValidationError
from bfm_stim.space import Contact, Stimulus, StimulusSpace
from bfm_stim.stim_features import FEATURE_NAMES, N_FEATURES, features_from_unit, features_of

CONTACTS = [Contact(f"c{i}", (1.0, -2.0, 2.0 * i), area) for i, area in enumerate((0.06, 0.06, 0.02, 0.12))]


def _space(**kw):
    return StimulusSpace.electrical(CONTACTS, **kw)


def test_features_are_differentiable_and_match():
    space = _space()
    X = torch.rand(16, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    F = space.features_from_unit(X)
    assert F.shape == (16, N_FEATURES) == (16, len(FEATURE_NAMES))
    F.pow(2).sum().backward()
    cont = [i for i, p in enumerate(space.free_parameters) if p.kind != "categorical"]
    assert torch.isfinite(X.grad).all() and (X.grad[:, cont].abs() > 0).all()
    stims = space.from_unit(X.detach())
    F2 = space.to_features(stims, dtype=torch.float64)
    # from_unit snaps to device resolution, so features agree to that resolution
    torch.testing.assert_close(F2, F.detach(), atol=0.04, rtol=0.0)  # 1 Hz steps move the rate phase by < 0.032
    off = space.to_features([Stimulus.off()])
    assert (off == 0).all()


def test_space_methods_delegate_to_the_module():
    space = _space(duration_s=(0.5, 2.0))
    X = torch.rand(8, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    direct = features_from_unit(X, kind=space.kind, parameters=space.parameters, contacts=space.contact_map)
    torch.testing.assert_close(space.features_from_unit(X), direct, rtol=0.0, atol=0.0)
    stims = space.from_unit(X)
    torch.testing.assert_close(space.to_features(stims), features_of(stims, space.contact_map), rtol=0.0, atol=0.0)


def test_feature_values_follow_the_documented_scaling():
    s = Stimulus.electrical(contact="c2", amplitude_ma=2.5, frequency_hz=130.0, pulse_width_us=100.0)
    f = dict(zip(FEATURE_NAMES, features_of([s], {c.name: c for c in CONTACTS}, dtype=torch.float64)[0].tolist()))
    assert f["on"] == 1.0 and f["electrical"] == 1.0 and f["visual"] == 0.0
    assert f["contact_z"] == pytest.approx(0.4)               # 4 mm / 10
    assert f["amplitude"] == pytest.approx(0.5)               # 2.5 mA / 5
    assert f["pulse_width"] == pytest.approx(0.2)             # 100 µs / 500
    assert f["charge"] == pytest.approx(0.25)                 # 2.5 mA x 100 µs = 0.25 µC
    v = Stimulus.sensory(modality="visual_flicker", frequency_hz=40.0, level=0.7)
    g = dict(zip(FEATURE_NAMES, features_of([v], {}, dtype=torch.float64)[0].tolist()))
    assert g["visual"] == 1.0 and g["auditory"] == 0.0 and g["level"] == pytest.approx(0.7)
    assert g["amplitude"] == g["charge"] == g["contact_x"] == 0.0


def test_sensory_unit_cube_features_match_the_stimuli():
    space = StimulusSpace.sensory()
    X = torch.rand(12, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    F = space.features_from_unit(X)
    assert F.shape == (12, N_FEATURES)
    torch.testing.assert_close(features_of(space.from_unit(X), {}, dtype=torch.float64), F, atol=0.04, rtol=0.0)


def test_unknown_contact_is_named():
    s = Stimulus.electrical(contact="c9", amplitude_ma=1.0, frequency_hz=130.0, pulse_width_us=60.0)
    with pytest.raises(ValidationError) as e:
        features_of([s], {c.name: c for c in CONTACTS})
    assert e.value.field == "contact" and "c9" in str(e.value)
