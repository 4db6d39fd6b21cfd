"""The continuous-mode controller: ramps, hysteresis, blanking, safety, proportional gain, TOML."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bfm_stim.exceptions import ConfigError, ValidationError
from bfm_stim.safety import SafetyLimits
from bfm_stim.space import Contact, StimulusSpace
from loops.session.controller import AdaptiveController, ControllerConfig, Decision, OpenLoop

REPO_CONFIG = Path(__file__).resolve().parents[3] / "loops" / "configs" / "continuous.toml"


@pytest.fixture
def space():
    contacts = [Contact(f"c{i}", (0.0, 0.0, 2.0 * i), 0.06) for i in range(4)]
    return StimulusSpace.electrical(contacts, duration_s=(0.05, 2.0), steps={"amplitude_ma": 0.05})


def _cfg(**kw) -> ControllerConfig:
    base = dict(contact="c1", threshold_on=1.0, threshold_off=0.0, threshold_quantile_on=None,
                threshold_quantile_off=None, amplitude_max_ma=3.0, ramp_up_ma_per_s=2.0, ramp_down_ma_per_s=4.0)
    return ControllerConfig(**(base | kw))


def _run(ctl, values, period=0.1) -> list[Decision]:
    return [ctl.step(i * period, v) for i, v in enumerate(values)]


def test_ramp_limits_hold_up_and_down(space):
    cfg = _cfg(ramp_up_ma_per_s=2.0, ramp_down_ma_per_s=4.0)
    ctl = AdaptiveController(cfg, space)
    ds = _run(ctl, [5.0] * 30 + [-5.0] * 30)
    amps = np.array([0.0] + [d.amplitude_ma for d in ds])
    diff = np.diff(amps)
    assert diff.max() <= 2.0 * 0.1 + 1e-9 and diff.min() >= -4.0 * 0.1 - 1e-9
    assert amps.max() == pytest.approx(3.0) and amps[-1] == 0.0
    assert [d.state for d in ds[:2]] == ["ramp_up", "ramp_up"]


def test_slow_research_ramp_is_expressible(space):
    ctl = AdaptiveController(_cfg(ramp_up_ma_per_s=0.05, ramp_down_ma_per_s=0.05), space)
    ds = _run(ctl, [5.0] * 100)  # 10 s at 0.05 mA/s: 0.5 mA, on the 0.05 mA grid
    amps = np.array([d.amplitude_ma for d in ds])
    levels = np.r_[0.0, 0.005 * np.arange(1, 101)]
    assert np.all(amps <= levels[1:] + 1e-9)  # never above the ramped level
    assert np.diff(np.r_[0.0, amps]).max() <= 0.05 + 1e-9  # one grid step at a time
    assert amps[-1] == pytest.approx(0.5, abs=1e-9) and amps[9] == pytest.approx(0.05)


def test_hysteresis_no_chattering_between_thresholds(space):
    ctl = AdaptiveController(_cfg(ramp_up_ma_per_s=100.0, ramp_down_ma_per_s=100.0), space)
    ds = _run(ctl, [2.0])  # on, full scale in one step
    assert ds[0].amplitude_ma == 3.0
    wiggle = 0.5 + 0.45 * np.sin(np.arange(200) * 1.3)  # between off (0) and on (1)
    ds = _run(ctl, wiggle)
    assert {d.amplitude_ma for d in ds} == {3.0} and {d.state for d in ds} == {"hold"}
    ds = _run(ctl, [-1.0] + list(wiggle))
    assert {d.amplitude_ma for d in ds} == {0.0}
    assert sum(d.stop for d in ds) == 1 and ds[0].stop


def test_onset_blanking_ignores_a_spike_in_the_blank_window(space):
    cfg = _cfg(ramp_up_ma_per_s=100.0, ramp_down_ma_per_s=100.0, onset_blank_s=0.35, offset_blank_s=0.25)
    ctl = AdaptiveController(cfg, space)
    ds = _run(ctl, [2.0, -9.0, -9.0, -9.0, 0.5, -9.0])  # onset at t=0; blank until 0.35 s
    assert ds[0].amplitude_ma == 3.0
    assert [d.state for d in ds[1:4]] == ["blank"] * 3 and all(d.amplitude_ma == 3.0 for d in ds[1:4])
    assert ds[1].biomarker_used is None
    assert ds[4].state == "hold" and ds[5].amplitude_ma == 0.0 and ds[5].stop  # t = 0.5: offset
    # offset blank: a spike at 0.6 s (within 0.25 s of the offset) is ignored
    d = ctl.step(0.6, 50.0)
    assert d.state == "blank" and d.amplitude_ma == 0.0
    assert ctl.step(0.8, 50.0).amplitude_ma == 3.0


def test_every_stimulus_is_checked_and_capped(space):
    rng = np.random.default_rng(0)
    for cfg in (_cfg(ramp_up_ma_per_s=50.0), _cfg(mode="proportional", gain_ma_per_decade=40.0, threshold_off=None),
                _cfg(amplitude_max_ma=5.0, pulse_width_us=450.0)):  # 5 mA × 450 µs is over the charge limits
        ctl = AdaptiveController(cfg, space)
        assert ctl.amplitude_max_ma <= cfg.amplitude_max_ma
        for i, v in enumerate(rng.normal(0.5, 2.0, 400)):
            d = ctl.step(i * 0.1, float(v))
            assert 0.0 <= d.amplitude_ma <= ctl.amplitude_max_ma + 1e-12
            if d.stimulus is not None:
                assert space.is_safe(d.stimulus) and d.stimulus.amplitude_ma == d.amplitude_ma
                assert d.stimulus.duration_s == pytest.approx(0.3) and d.stimulus.contact == "c1"
                assert round(d.amplitude_ma / 0.05, 6) == round(d.amplitude_ma / 0.05)  # on the device grid
            else:
                assert d.amplitude_ma == 0.0


def test_amplitude_max_lowered_to_the_safe_limit(space):
    tight = StimulusSpace.electrical(space.contacts, duration_s=(0.05, 2.0), limits=SafetyLimits(max_charge_uc=0.09))
    ctl = AdaptiveController(_cfg(amplitude_max_ma=3.0, pulse_width_us=60.0), tight)
    # 0.09 µC / 60 µs = 1.5 mA; the library's projection rounds down onto the 0.01 mA grid
    assert 1.48 <= ctl.amplitude_max_ma <= 1.5
    d = _run(ctl, [9.0] * 40)[-1]
    assert d.amplitude_ma == ctl.amplitude_max_ma and tight.is_safe(d.stimulus)
    assert OpenLoop(_cfg(), tight).step(0.0).amplitude_ma == ctl.amplitude_max_ma


def test_proportional_gain(space):
    cfg = _cfg(mode="proportional", gain_ma_per_decade=2.0, threshold_on=1.0, threshold_off=None,
               ramp_up_ma_per_s=1000.0, ramp_down_ma_per_s=1000.0)
    ctl = AdaptiveController(cfg, space)
    for b, want in [(1.5, 1.0), (2.0, 2.0), (1.25, 0.5), (0.5, 0.0), (9.0, 3.0)]:
        assert ctl.step(0.0, b).amplitude_ma == pytest.approx(want)
    floor = AdaptiveController(cfg.replace(amplitude_min_ma=0.5), space)
    assert floor.step(0.0, -3.0).amplitude_ma == pytest.approx(0.5)


def test_proportional_mode_is_ramp_limited(space):
    cfg = _cfg(mode="proportional", gain_ma_per_decade=10.0, threshold_off=None, ramp_up_ma_per_s=1.0,
               ramp_down_ma_per_s=1.0)
    ctl = AdaptiveController(cfg, space)
    amps = [d.amplitude_ma for d in _run(ctl, [5.0] * 10 + [-5.0] * 10)]
    assert np.abs(np.diff(np.r_[0.0, amps])).max() <= 0.1 + 1e-9


def test_non_finite_biomarker_ramps_down(space):
    ctl = AdaptiveController(_cfg(ramp_up_ma_per_s=100.0), space)
    ctl.step(0.0, 5.0)
    d = ctl.step(0.1, math.nan)
    assert d.state == "invalid" and d.amplitude_ma == pytest.approx(3.0 - 0.4)


def test_calibration_sets_quantile_thresholds(space):
    cfg = _cfg(threshold_on=None, threshold_off=None, threshold_quantile_on=0.75, threshold_quantile_off=0.25)
    ctl = AdaptiveController(cfg, space)
    with pytest.raises(ValidationError, match="calibrate"):
        ctl.step(0.0, 1.0)
    rest = np.arange(101.0)
    ctl.calibrate(np.r_[rest, np.nan])
    assert ctl.threshold_on == pytest.approx(75.0) and ctl.threshold_off == pytest.approx(25.0)
    with pytest.raises(ValidationError):
        ctl.calibrate(np.array([1.0, 2.0]))
    off = AdaptiveController(cfg.replace(threshold_offset_on=-10.0, threshold_offset_off=-20.0), space)
    off.calibrate(rest)  # offsets from the rest median (50) win over the quantiles
    assert off.threshold_on == pytest.approx(40.0) and off.threshold_off == pytest.approx(30.0)


def test_open_loop_is_constant(space):
    ol = OpenLoop(_cfg(), space, amplitude_ma=2.0)
    ds = [ol.step(i * 0.1, v) for i, v in enumerate([0.0, 9.0, None])]
    assert {d.amplitude_ma for d in ds} == {2.0} and all(d.stimulus is not None for d in ds)
    assert OpenLoop(_cfg(), space).step(0.0).amplitude_ma == 3.0
    with pytest.raises(ValidationError):
        OpenLoop(_cfg(), space, amplitude_ma=4.0)


@pytest.mark.parametrize("kw, field", [
    (dict(mode="bang"), "mode"), (dict(ramp_up_ma_per_s=0.0), "ramp_up_ma_per_s"),
    (dict(ramp_down_ma_per_s=-1.0), "ramp_down_ma_per_s"), (dict(amplitude_min_ma=4.0), "amplitude_min_ma"),
    (dict(threshold_off=2.0), "threshold_off"), (dict(command_duration_s=0.05), "command_duration_s"),
    (dict(threshold_on=None), "threshold_on"), (dict(onset_blank_s=math.inf), "onset_blank_s"),
    (dict(threshold_on=None, threshold_off=None, threshold_quantile_on=0.3, threshold_quantile_off=0.6),
     "threshold_quantile_off"), (dict(threshold_offset_on=-1.0, threshold_offset_off=-0.5), "threshold_offset_off"), (dict(period_s=0.0), "period_s"), (dict(frequency_hz=True), "frequency_hz"),
])
def test_bad_config_names_field_value_and_range(kw, field):
    with pytest.raises(ValidationError) as e:
        _cfg(**kw)
    assert e.value.field == field and "expected" in str(e.value)


def test_unknown_contact_and_toml(space, tmp_path):
    with pytest.raises(ValidationError, match="contact"):
        AdaptiveController(_cfg(contact="c9"), space)
    p = tmp_path / "c.toml"
    p.write_text('[continuous]\nmode = "proportional"\nthreshold_quantile_on = 0.2\ngain_ma_per_decade = 3.0\n'
                 'ramp_up_ma_per_s = 0.05\n')
    cfg = ControllerConfig.from_toml(p)
    assert cfg.mode == "proportional" and cfg.ramp_up_ma_per_s == 0.05
    p.write_text('[continuous]\nsegments = ["adaptive"]\n[continuous.controller]\nperiod_s = 0.2\n'
                 'command_duration_s = 0.4\n')
    assert ControllerConfig.from_toml(p).period_s == 0.2
    p.write_text('[continuous]\nramp = 3\n')
    with pytest.raises(ConfigError, match="ramp"):
        ControllerConfig.from_toml(p)
    assert ControllerConfig.from_dict(cfg.to_dict()) == cfg


def test_shipped_config_loads(space):
    cfg = ControllerConfig.from_toml(REPO_CONFIG)
    AdaptiveController(cfg, space, contact="c1").calibrate(np.linspace(0.0, 1.0, 50)).step(0.0, 0.5)


def test_train_duration_clipped_to_the_device_space():
    fixed = StimulusSpace.electrical([Contact("c1", (0.0, 0.0, 0.0))])  # trains of exactly 1 s
    d = AdaptiveController(_cfg(ramp_up_ma_per_s=100.0), fixed).step(0.0, 5.0)
    assert d.stimulus is not None and d.stimulus.duration_s == 1.0 and fixed.is_safe(d.stimulus)
