"""ros2 launch mllmseg_ros mllmseg.launch.py model_path:=/models/MLLMSeg_InternVL2_5_1B_RES image:=/camera/color/image_raw

Starts mllmseg_node with params_file (default config/mllmseg.yaml) and the input topics remapped. Every node
parameter (and use_sim_time) is also a launch argument that overrides the file only when given on the command line
(`tracking:=off`, `threshold:=0.3`): left empty, the file's value (or the node's default) stays. Values are read as
YAML, as `-p name:=value` is, and the node takes them as people type them (off/on, 1 for 1.0) or says why not. With
autostart the node configures and activates itself; with autostart:=false manage it with
`ros2 lifecycle set /mllmseg_node configure` / `activate`. Works with the launch/launch_ros of Humble, Jazzy and Rolling.
"""
from __future__ import annotations

# launch, launch_ros, ament_index_python and the node's parameter table are imported inside the functions that use
# them, so that the tests (test/test_launch.py) can load this file where no launch package is installed.

EXTRA_PARAMETERS = {"use_sim_time": "true/false: follow /clock (bag replay with a clock)"}  # rclpy's, not the node's
OTHER_ARGUMENTS = {  # name: (default, description)
    "namespace": ("", "namespace of the node"),
    "image": ("image", "colour image topic (sensor_msgs/Image)"),
    "depth": ("depth", "depth image topic (16UC1 mm or 32FC1 m)"),
    "camera_info": ("camera_info", "camera_info topic of the colour image"),
    "command": ("command", "command topic (std_msgs/String)"),
    "log_level": ("info", "debug, info, warn, error, fatal"),
    "respawn": ("false", "restart the node process if it exits"),
    "respawn_delay": ("2.0", "seconds before a respawn"),
}


def parameter_arguments() -> dict[str, str]:
    """{name: description} of the launch arguments that set a node parameter: every one of the node's, and
    use_sim_time."""
    from mllmseg_ros.ros.params import PARAMETERS

    return {spec.name: spec.description for spec in PARAMETERS} | EXTRA_PARAMETERS


def parse_bool(name: str, text: str) -> bool:
    """'true'/'false' for the launch's own switches (respawn); anything else is a launch error naming the argument."""
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    raise ValueError(f"launch argument {name}:={text!r}: expected true or false")


def typed(text: str) -> object:
    """A launch argument's text as ROS reads `-p name:=text`: YAML (off -> False, 1 -> 1, [a, b] -> a list); text
    YAML cannot read stays text (the node says what it expected)."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None or isinstance(value, dict) else value


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """The parameters to put after params_file: only the arguments that were given (non-empty), typed as YAML."""
    return {name: typed(values[name].strip()) for name in parameter_arguments() if values.get(name, "").strip()}


def _node(context):
    from launch_ros.actions import LifecycleNode

    values = context.launch_configurations
    overrides = parameter_overrides(values)
    return [LifecycleNode(
        package="mllmseg_ros",
        executable="mllmseg_node",
        name="mllmseg_node",
        namespace=values["namespace"],  # Humble's LifecycleNode requires one
        output="screen",
        parameters=[values["params_file"], *([overrides] if overrides else [])],  # the later dict wins over the file
        remappings=[(topic, values[topic]) for topic in ("image", "depth", "camera_info", "command")],
        ros_arguments=["--log-level", values["log_level"]],
        respawn=parse_bool("respawn", values["respawn"]),
        respawn_delay=float(values["respawn_delay"]),
    )]


def generate_launch_description():
    import os

    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    default_params = os.path.join(get_package_share_directory("mllmseg_ros"), "config", "mllmseg.yaml")
    declared = [DeclareLaunchArgument(name, default_value="", description=f"{text} (default: from params_file)")
                for name, text in parameter_arguments().items()]
    declared += [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in OTHER_ARGUMENTS.items()]
    declared.append(DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"))
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
