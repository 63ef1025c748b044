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


def _spec(default, **fields):
    from mllmseg_ros.ros.params import ParameterSpec

    return ParameterSpec("p", default, "a test parameter", **fields)


@pytest.mark.parametrize("spec, words", [
    (_spec(False), "true or false"), (_spec(3), "a whole number"), (_spec(0.5), "a number"), (_spec("x"), "a string"),
    (_spec([""]), "a list of strings"), (_spec(0.5, float_range=(0.1, 2.0)), "a number from 0.1 to 2"),
    (_spec(3, int_range=(1, 9)), "a whole number from 1 to 9"), (_spec("a", choices=("a", "b")), "one of a, b"),
])
def test_what_each_kind_accepts_in_words(spec, words):
    from mllmseg_ros.ros.param_coercion import expected

    assert expected(spec) == words


@pytest.mark.parametrize("choices, meant", [
    (("auto", "on", "off"), ("on", "off")), (("auto", "true", "false"), ("true", "false")),
    (("yes", "no"), ("yes", "no")), (("maybe", "yes", "no"), ("yes", "no")), ((), ("true", "false")),
])
def test_a_yaml_boolean_for_a_text_parameter_is_the_word_typed(choices, meant):
    """`-p name:=on` reaches a str parameter as True: the word most likely typed, among the parameter's choices."""
    spec = _spec("x", choices=choices)
    assert (coerce(spec, True), coerce(spec, False)) == meant


def test_booleans_from_numbers_only_0_and_1():
    spec = _spec(False)
    assert coerce(spec, 0) is False and coerce(spec, 1) is True
    for value in (2, 1.0, 0.0, -1):
        with pytest.raises(ValueError, match="is not true or false"):
            coerce(spec, value)


def test_whole_numbers_are_checked_against_their_own_range():
    assert coerce(SPECS["threads"], 256) == 256
    with pytest.raises(ValueError, match=r"threads: 300 is out of range; expected a whole number from 0 to 256"):
        coerce(SPECS["threads"], 300)
    assert coerce(_spec(3), 10**6) == 10**6  # no range given: any whole number


def test_a_list_with_yaml_booleans_says_to_quote_them():
    with pytest.raises(ValueError) as raised:
        coerce(SPECS["stop_phrases"], ["halt", False])
    assert str(raised.value) == ("stop_phrases: ['halt', False] is not a list of strings (YAML reads yes/no/on/off as "
                                 "booleans: quote them)")
