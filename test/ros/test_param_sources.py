"""Params files and -p rules: which sections apply to the node, what the node does not use, what rcl cannot parse."""
from __future__ import annotations

import pytest

from mllmseg_ros.ros.param_sources import drop_unparseable, key_matches, ros_arguments, unused_parameters


@pytest.mark.parametrize("key, node, matches", [
    ("/**", "/mllmseg_node", True), ("/**", "/robot1/mllmseg_node", True),
    ("mllmseg_node", "/mllmseg_node", True), ("mllmseg_node", "/robot1/mllmseg_node", False),
    ("/mllmseg_node", "/robot1/mllmseg_node", False), ("/robot1/mllmseg_node", "/robot1/mllmseg_node", True),
    ("/**/mllmseg_node", "/robot1/arm/mllmseg_node", True), ("/*/mllmseg_node", "/robot1/mllmseg_node", True),
    ("/*/mllmseg_node", "/mllmseg_node", False), ("/robot*/mllmseg_*", "/robot2/mllmseg_node", True),
    ("other_node", "/mllmseg_node", False),
])
def test_params_file_keys_select_nodes_as_rcl_does(key, node, matches):
    assert key_matches(key, node) is matches


def test_ros_arguments_finds_files_and_names_in_ros_args_sections_only():
    argv = ["node", "--not-ros", "-p", "x:=1", "--ros-args", "--params-file", "a.yaml", "-p", "threshold:=1",
            "--param", "y:=2", "-r", "image:=/cam", "--", "-p", "z:=3", "--ros-args", "--params-file", "b.yaml"]
    found = ros_arguments(argv)
    assert found.params_files == ["a.yaml", "b.yaml"] and found.param_names == ["threshold", "y"]


def test_what_the_node_does_not_use_is_named(tmp_path):
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("mllmseg_node:\n  ros__parameters:\n    threshold: 0.3\n")
    own = tmp_path / "own.yaml"
    own.write_text("/**:\n  ros__parameters:\n    thresold: 0.3\n    threshold: 0.3\n"
                   "    qos_overrides:\n      /command:\n        subscription:\n          reliability: reliable\n")
    known = lambda name: name == "threshold" or name.startswith("qos_overrides.")  # noqa: E731
    argv = ["--ros-args", "--params-file", str(keyed), "--params-file", str(own), "-p", "threshold:=1", "-p", "treshold:=1"]
    problems = unused_parameters(ros_arguments(argv), "/robot1/mllmseg_node", known)
    assert len(problems) == 3, problems
    assert "-p treshold" in problems[0]
    assert "no section applies to this node /robot1/mllmseg_node" in problems[1] and "'/**'" in problems[1]
    assert "'thresold'" in problems[2]
    assert unused_parameters(ros_arguments(argv), "/mllmseg_node", known)[1:] == [problems[2]]  # keyed file matches


def test_an_argument_rcl_cannot_parse_is_dropped_with_its_reason():
    argv = ["node", "--ros-args", "--params-file", "good.yaml", "--params-file", "bad.yaml", "-p", "x:="]
    error = ("failed to initialize rcl: Couldn't parse params file: '--params-file bad.yaml'. Error: No value at "
             "line 3, at /project/src/parse.c:258, at /project/src/rcl/arguments.c:415")
    shorter, problem = drop_unparseable(argv, error)
    assert shorter == ["node", "--ros-args", "--params-file", "good.yaml", "-p", "x:="]
    assert problem == "params file 'bad.yaml' could not be parsed and was not used: No value at line 3"
    shorter, problem = drop_unparseable(shorter, "Couldn't parse parameter override rule: '-p x:='. Error: error not set")
    assert shorter == ["node", "--ros-args", "--params-file", "good.yaml"] and problem.startswith("parameter 'x:='")
    assert drop_unparseable(shorter, "some other failure") is None
