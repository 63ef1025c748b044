"""launch/mllmseg.launch.py: a launch argument overrides the params file only when it is given.

launch/launch_ros are not on PyPI, so the launch file is loaded with stand-ins for their classes that record what
they were given; it was also run by hand on the launch/launch_ros sources of Humble, Jazzy and Rolling (docs/workspace.md).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from mllmseg_ros.ros.params import SPECS  # before the launch_file fixture replaces ament_index_python

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "mllmseg.launch.py"


@pytest.fixture()
def launch_file(monkeypatch):
    """The launch file as a module, with launch, launch_ros and ament_index_python replaced by recorders."""
    def recorder(kind):
        return type(kind, (), {"__init__": lambda self, *args, **kwargs: self.__dict__.update(args=args, kwargs=kwargs)})

    fakes = {
        "launch": {"LaunchDescription": recorder("LaunchDescription")},
        "launch.actions": {"DeclareLaunchArgument": recorder("DeclareLaunchArgument"), "OpaqueFunction": recorder("OpaqueFunction")},
        "launch_ros.actions": {"LifecycleNode": recorder("LifecycleNode")},
        "ament_index_python.packages": {"get_package_share_directory": lambda name: f"/opt/share/{name}"},
    }
    for name, attributes in fakes.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))
    monkeypatch.setitem(sys.modules, "launch_ros", types.SimpleNamespace())
    spec = importlib.util.spec_from_file_location("mllmseg_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch(module, **given: str):
    """Declared defaults, overridden by ``given`` as `ros2 launch ... name:=value` would; the node's arguments."""
    description = module.generate_launch_description()
    *declared, opaque = description.args[0]
    values = {arg.args[0]: arg.kwargs["default_value"] for arg in declared}
    assert set(given) <= set(values), f"not a launch argument: {set(given) - set(values)}"
    values.update(given)
    context = types.SimpleNamespace(launch_configurations=values)
    (node,) = opaque.kwargs["function"](context)
    return values, node.kwargs


def test_a_params_file_alone_is_not_overridden(launch_file):
    _, node = _launch(launch_file, params_file="my.yaml")
    assert node["parameters"] == ["my.yaml"]


def test_given_arguments_override_the_file_typed(launch_file):
    _, node = _launch(launch_file, params_file="my.yaml", dtype="bfloat16", autostart="False", use_sim_time="true")
    assert node["parameters"] == ["my.yaml", {"dtype": "bfloat16", "autostart": False, "use_sim_time": True}]


def test_defaults_load_the_package_config(launch_file):
    values, node = _launch(launch_file)
    assert node["parameters"] == ["/opt/share/mllmseg_ros/config/mllmseg.yaml"]
    assert all(values[name] == "" for name in launch_file.parameter_arguments())


def test_log_level_respawn_and_namespace(launch_file):
    _, node = _launch(launch_file, log_level="debug", respawn="true", respawn_delay="0.5", namespace="robot1")
    assert node["ros_arguments"] == ["--log-level", "debug"]
    assert node["respawn"] is True and node["respawn_delay"] == 0.5 and node["namespace"] == "robot1"
    _, default = _launch(launch_file)
    assert default["respawn"] is False and default["ros_arguments"] == ["--log-level", "info"]


def test_arguments_are_typed_as_ros_types_minus_p(launch_file):
    """YAML, as rcl reads `-p name:=value`: the node then takes off/on and 1 for 1.0 (test/ros/test_node_parameters.py)
    and answers a wrong value with one line and /diagnostics, so the launch passes it on rather than failing."""
    _, node = _launch(launch_file, params_file="my.yaml", tracking="off", threshold="1", max_rate_hz="2",
                      cameras="[left, right]", model_path="/models/m", autostart="maybe")
    assert node["parameters"][1] == {"tracking": False, "threshold": 1, "max_rate_hz": 2, "cameras": ["left", "right"],
                                     "model_path": "/models/m", "autostart": "maybe"}
    with pytest.raises(ValueError, match="respawn"):  # the launch's own switches are the launch's to check
        _launch(launch_file, respawn="maybe")


def test_every_node_parameter_is_a_launch_argument(launch_file):
    # use_sim_time belongs to every rclpy node; the others are mllmseg_node's own, all of them
    assert set(launch_file.parameter_arguments()) == set(SPECS) | {"use_sim_time"}


def test_real_launch_description_if_launch_is_installed():
    """On a ROS install (or with the launch sources on PYTHONPATH): the real classes accept the description."""
    pytest.importorskip("launch_ros.actions", reason="launch_ros is not installed (not on PyPI)")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location("mllmseg_launch_real", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        description = module.generate_launch_description()
    except LookupError:  # ament_index: the package is not installed in this prefix
        pytest.skip("mllmseg_ros is not in the ament index (AMENT_PREFIX_PATH)")
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert {d.name for d in declared} >= {*module.parameter_arguments(), "params_file", "log_level", "respawn"}
    context = LaunchContext()
    for argument in declared:
        context.launch_configurations[argument.name] = "" if argument.default_value is None else \
            "".join(s.perform(context) for s in argument.default_value)
    context.launch_configurations.update(params_file="my.yaml", dtype="float16")
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    (node,) = opaque.execute(context)
    assert type(node).__name__ == "LifecycleNode"
