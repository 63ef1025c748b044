"""ros2 launch mllmseg_ros mllmseg.launch.py model_path:=/models/MLLMSeg_InternVL2_5_1B_RES image:=/camera/color/image_raw

Starts mllmseg_node with config/mllmseg.yaml, the launch arguments on top, and the input topics remapped.
With autostart (default) the node configures and activates itself; with autostart:=false manage it with
`ros2 lifecycle set /mllmseg_node configure` / `activate`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = {
    "model_path": ("", "MLLMSeg checkpoint folder"),
    "device": ("cpu", "cpu, cuda, cuda:1 ..."),
    "dtype": ("auto", "auto, float32, bfloat16, float16"),
    "namespace": ("", "namespace of the node"),
    "image": ("image", "colour image topic (sensor_msgs/Image)"),
    "depth": ("depth", "depth image topic (16UC1 mm or 32FC1 m)"),
    "camera_info": ("camera_info", "camera_info topic of the colour image"),
    "command": ("command", "command topic (std_msgs/String)"),
    "autostart": ("true", "configure and activate on start"),
}


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("mllmseg_ros"), "config", "mllmseg.yaml")
    arg = LaunchConfiguration
    declared = [DeclareLaunchArgument(name, default_value=default, description=text) for name, (default, text) in ARGUMENTS.items()]
    declared.append(DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"))
    node = LifecycleNode(
        package="mllmseg_ros",
        executable="mllmseg_node",
        name="mllmseg_node",
        namespace=arg("namespace"),
        output="screen",
        parameters=[
            arg("params_file"),
            {
                "model_path": arg("model_path"),
                "device": arg("device"),
                "dtype": arg("dtype"),
                "autostart": ParameterValue(arg("autostart"), value_type=bool),
            },
        ],
        remappings=[
            ("image", arg("image")),
            ("depth", arg("depth")),
            ("camera_info", arg("camera_info")),
            ("command", arg("command")),
        ],
    )
    return LaunchDescription([*declared, node])
