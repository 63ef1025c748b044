"""ros/params.py on a plain rclpy node (no model): declaring every parameter as given, storing each as the value it
means, refusing wrong ones with a reason, which changes may happen when, the depth limits against each other, and the
settings the node runs on. (The node's own use of them: test_node_param_effects.py, test_node_parameters.py.)"""
from __future__ import annotations

import itertools

import pytest
from rclpy.parameter import Parameter

from mllmseg_ros.ros.params import (PARAMETERS, SPECS, NodeSettings, check_changes, declare_parameters,
                                    depth_limits_problem, owned, settings_values, start_value, validate)

_names = itertools.count()


def declared(ros, **given):
    from rclpy.node import Node

    node = ros.add(Node(f"params_test_{next(_names)}", automatically_declare_parameters_from_overrides=False,
                        parameter_overrides=[Parameter(name, value=value) for name, value in given.items()]))
    return node, declare_parameters(node)


def test_values_as_typed_are_stored_as_meant_and_defaults_fill_the_rest(ros):
    node, problems = declared(ros, max_rate_hz=2, use_depth="no", tracking=False, cameras="left", threads=2.0,
                              image_transport="Compressed")
    assert problems == {}
    names = ("max_rate_hz", "use_depth", "tracking", "cameras", "threads", "image_transport")
    stored = {name: node.get_parameter(name).value for name in names}
    assert stored == {"max_rate_hz": 2.0, "use_depth": False, "tracking": "off", "cameras": ["left"], "threads": 2,
                      "image_transport": "compressed"}  # a str meaning another str is stored as meant too
    assert type(stored["max_rate_hz"]) is float and type(stored["threads"]) is int
    assert node.get_parameter("threshold").value == 0.5 and node.get_parameter("mode").value == "continuous"
    assert all(node.has_parameter(spec.name) for spec in PARAMETERS)


def test_wrong_values_are_reasons_and_keep_their_defaults(ros):
    node, problems = declared(ros, threshold=2.0, mode="sometimes", max_rate_hz=1.5)
    assert set(problems) == {"threshold", "mode"}
    assert problems["threshold"] == "threshold: 2.0 is out of range; expected a number from 0 to 1"
    assert problems["mode"] == "mode: 'sometimes' is not one of continuous, once"
    assert node.get_parameter("threshold").value == 0.5 and node.get_parameter("max_rate_hz").value == 1.5
    kept = node.describe_parameter("threshold")  # re-declared with its default: still described and ranged
    assert kept.description == SPECS["threshold"].description and kept.floating_point_range[0].to_value == 1.0
    with pytest.raises(ValueError, match="mode: 'sometimes'"):
        NodeSettings.from_node(node)
    assert start_value(node, "mode") == "continuous"  # the default while the given one is wrong
    assert start_value(node, "max_rate_hz") == 1.5


def test_descriptors_say_the_type_the_range_and_the_choices(ros):
    node, _ = declared(ros)
    threshold = node.describe_parameter("threshold")
    assert threshold.dynamic_typing and not threshold.read_only
    assert threshold.description == SPECS["threshold"].description
    assert (threshold.floating_point_range[0].from_value, threshold.floating_point_range[0].to_value) == (0.0, 1.0)
    assert threshold.additional_constraints.startswith("float: ")
    threads = node.describe_parameter("threads")
    assert (threads.integer_range[0].from_value, threads.integer_range[0].to_value, threads.integer_range[0].step) == (0, 256, 1)
    assert not threads.floating_point_range
    assert node.describe_parameter("mode").description.endswith("(one of: continuous, once)")
    assert not node.describe_parameter("use_depth").floating_point_range
    assert node.describe_parameter("diagnostics_window_s").floating_point_range[0].from_value == 0.1
    assert node.describe_parameter("max_command_chars").integer_range[0].from_value == 1


def test_settings_from_the_node(ros):
    node, _ = declared(ros, command_prefixes=["yo bot", ""], image_transport="compressed", min_depth_m=0.3)
    settings = NodeSettings.from_node(node)
    assert settings.command_prefixes == ("yo bot",) and settings.stop_phrases == ()  # '' is the placeholder
    assert settings.min_depth_m == 0.3 and settings.max_depth_m == 20.0 and settings.threshold == 0.5
    assert settings.compressed
    assert not NodeSettings.from_node(declared(ros)[0]).compressed
    assert NodeSettings.from_node(declared(ros, image_compressed=True)[0]).compressed  # the deprecated flag


def test_crossed_depth_limits_refuse_the_settings(ros):
    node, problems = declared(ros, min_depth_m=5.0, max_depth_m=2.0)
    assert problems == {}
    with pytest.raises(ValueError, match=r"^min_depth_m \(5\) must be below max_depth_m \(2\)$"):
        NodeSettings.from_node(node)


def test_every_unusable_value_is_named_at_once(ros):
    node, _ = declared(ros, mode="sometimes", tracking="maybe")
    with pytest.raises(ValueError) as raised:
        NodeSettings.from_node(node)
    assert "mode: 'sometimes'" in str(raised.value) and "; tracking: 'maybe'" in str(raised.value)


def test_depth_limits_problem():
    assert depth_limits_problem(0.1, 20.0) is None
    assert depth_limits_problem(2.0, 2.0) == "min_depth_m (2) must be below max_depth_m (2)"
    assert depth_limits_problem(3.0, 2.0) is not None


def test_what_may_change_and_when():
    current = {"min_depth_m": 0.1, "max_depth_m": 20.0}.__getitem__
    assert check_changes({"threshold": 0.3}, True, current) == (None, {"threshold": 0.3})
    assert check_changes({"threshold": "0.3"}, True, current) == (None, {"threshold": 0.3})  # as typed
    reason, changes = check_changes({"threshold": 3}, True, current)
    assert reason == validate("threshold", 3) and "out of range" in reason and changes == {}
    reason, changes = check_changes({"depth_scale": 0.002}, True, current)  # read on configure only
    assert reason == "depth_scale is read on configure; clean up and configure again to change it" and changes == {}
    assert check_changes({"depth_scale": 0.002}, False, current) == (None, {"depth_scale": 0.002})  # before configure
    assert check_changes({"min_depth_m": 25.0}, True, current) == ("min_depth_m (25) must be below max_depth_m (20)",
                                                                   {"min_depth_m": 25.0})
    assert check_changes({"max_depth_m": 0.05}, True, current)[0] == "min_depth_m (0.1) must be below max_depth_m (0.05)"
    assert check_changes({"min_depth_m": 25.0, "max_depth_m": 30.0}, True, current) == (
        None, {"min_depth_m": 25.0, "max_depth_m": 30.0})
    assert check_changes({"stop_phrases": ["halt", ""]}, True, current) == (None, {"stop_phrases": ("halt",)})
    crossed = {"min_depth_m": 5.0, "max_depth_m": 2.0}.__getitem__  # given so at start: refused at configure only
    assert check_changes({"threshold": 0.3}, False, crossed) == (None, {"threshold": 0.3})
    assert check_changes({"max_depth_m": 6.0}, False, crossed) == (None, {"max_depth_m": 6.0})  # mended


def test_settings_values_and_ownership():
    assert settings_values({"cameras": ["", "left", ""], "threads": 3.0, "tracking": True}) == {
        "cameras": ("left",), "threads": 3, "tracking": "on"}
    assert owned("threshold") and not owned("use_sim_time") and not owned("qos_overrides./image.subscription.depth")
    assert validate("threshold", 0.7) is None
