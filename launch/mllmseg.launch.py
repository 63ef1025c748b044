"""ros2 launch mllmseg_ros mllmseg.launch.py model_path:=/models/MLLMSeg_InternVL2_5_1B_RES image:=/camera/color/image_raw

Starts mllmseg_node with params_file (default config/mllmseg.yaml) and the input topics remapped. A parameter
argument (model_path, device, dtype, autostart, use_sim_time) overrides the file only when given on the command
line: left empty, the file's value (or the node's default) stays. With autostart the node configures and activates
itself; with autostart:=false manage it with `ros2 lifecycle set /mllmseg_node configure` / `activate`.
Works with the launch/launch_ros of Humble, Jazzy and Rolling.
"""
from __future__ import annotations

# launch, launch_ros and ament_index_python are imported inside the functions that use them, so that the tests
# (tests/test_launch.py) can load this file and check parameter_overrides where no launch package is installed.

# Launch arguments that set a node parameter; "" means "not given".
PARAMETER_ARGUMENTS = {
    "model_path": "MLLMSeg checkpoint folder",
    "device": "cpu, cuda, cuda:1 ...",
    "dtype": "auto, float32, bfloat16, float16",
    "autostart": "true/false: configure and activate on start",
    "use_sim_time": "true/false: follow /clock (bag replay with a clock)",
}
BOOLEAN_PARAMETERS = {"autostart", "use_sim_time"}
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


def parse_bool(name: str, text: str) -> bool:
    """'true'/'false' as in ROS parameter YAML; anything else is a launch error naming the argument."""
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    raise ValueError(f"launch argument {name}:={text!r}: expected true or false")


def parameter_overrides(values: dict[str, str]) -> dict[str, object]:
    """The parameters to put after params_file: only the arguments that were given (non-empty), typed."""
    given = {name: values[name].strip() for name in PARAMETER_ARGUMENTS if values.get(name, "").strip()}
    return {name: parse_bool(name, text) if name in BOOLEAN_PARAMETERS else text for name, text in given.items()}


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
                for name, text in PARAMETER_ARGUMENTS.items()]
    declared += [DeclareLaunchArgument(name, default_value=default, description=text)
                 for name, (default, text) in OTHER_ARGUMENTS.items()]
    declared.append(DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"))
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
