"""Parameter values as people type them (YAML: off/on, 1 for 1.0, [] ...) -> the value meant, or one clear reason."""
from __future__ import annotations

import pytest
import yaml

from mllmseg_ros.ros.param_coercion import coerce
from mllmseg_ros.ros.params import SPECS, validate
from params_as_typed import AS_TYPED


def test_every_parameter_has_a_value_as_typed():
    assert set(AS_TYPED) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_value_meant_from_yaml_as_rcl_reads_it(name):
    text, meant = AS_TYPED[name]
    value = yaml.safe_load(text)  # what rcl and launch_ros hand over (YAML 1.1: off -> False, 1 -> int)
    assert coerce(SPECS[name], value) == meant
    assert type(coerce(SPECS[name], value)) is type(meant)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_defaults_are_what_they_mean(name):
    default = SPECS[name].default
    assert coerce(SPECS[name], default) == default


@pytest.mark.parametrize("name, value, meant", [
    ("tracking", True, "on"), ("tracking", False, "off"), ("tracking", "OFF", "off"),
    ("depth_registered", False, "false"), ("image_transport", "Compressed", "compressed"),
    ("threshold", "0.25", 0.25), ("threads", 2.0, 2), ("autostart", "true", True), ("autostart", 1, True),
    ("cameras", "left", ["left"]), ("cameras", None, [""]), ("cameras", [1, 2], ["1", "2"]),
    ("initial_command", 42, "42"), ("depth_transport", "compresseddepth", "compressedDepth"),
    ("mask_format", "PNG", "png"),
])
def test_more_ways_people_type(name, value, meant):
    assert coerce(SPECS[name], value) == meant


@pytest.mark.parametrize("name, value, words", [
    ("threshold", "abc", "threshold: 'abc' is not a number from 0 to 1"),
    ("threshold", 2, "threshold: 2 is out of range; expected a number from 0 to 1"),
    ("threshold", True, "is not a number"),
    ("threshold", float("nan"), "is not a number"),
    ("threads", 1.5, "threads: 1.5 is not a whole number from 0 to 256"),
    ("mode", "sometimes", "mode: 'sometimes' is not one of continuous, once"),
    ("tracking", "maybe", "tracking: 'maybe' is not one of auto, on, off"),
    ("autostart", "maybe", "autostart: 'maybe' is not true or false"),
    ("stop_phrases", [True, False], "quote them"),
    ("max_rate_hz", -1, "out of range"),
])
def test_a_wrong_value_is_one_clear_reason(name, value, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")) as raised:
        coerce(SPECS[name], value)
    assert "\n" not in str(raised.value)
    assert validate(name, value) == str(raised.value)
