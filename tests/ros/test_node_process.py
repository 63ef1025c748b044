"""The node as its own process, started through its entry point with --params-file, as `ros2 run` would."""
from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from ros_harness import rgb_msg, wait_for

REPO = Path(__file__).resolve().parents[2]


def node_command() -> list[str]:
    script = shutil.which("mllmseg_node", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "mllmseg_ros.ros.node"]


def test_entry_point_with_params_file(ros, seg_checkpoint, tmp_path):
    params = yaml.safe_load((REPO / "config" / "mllmseg.yaml").read_text())
    params["/**"]["ros__parameters"].update(model_path=str(seg_checkpoint), threshold=0.0, no_image_warn_s=0.0)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    process = subprocess.Popen(
        node_command() + ["--ros-args", "--params-file", str(params_file), "-r", "image:=/cam/image_raw"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
    )
    try:
        driver = ros.driver(namespace="/cam")
        driver.image = driver.node.create_publisher(type(rgb_msg()), "/cam/image_raw", 10)
        assert wait_for(lambda: driver.image.get_subscription_count() > 0 and driver.command.get_subscription_count() > 0)
        # the node re-matches QoS once it sees our RELIABLE publisher; keep sending until results come back
        driver.send_command("the red cup")
        assert wait_for(lambda: (driver.image.publish(rgb_msg(stamp_ns=99, frame_id="cam")), bool(driver.arrays))[1], interval=0.2)
        array = driver.arrays[0]
        assert array.header.frame_id == "cam" and array.segmentations[0].expression == "the red cup"
        assert array.segmentations[0].area == 64 * 48  # threshold 0.0 from the params file
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0]
    assert "model loaded" in output, output
    assert "Traceback" not in output, output


def test_launch_file_is_declarative_and_names_existing_parameters():
    """The launch file cannot run here (no launch package); check what it declares against the node's parameters."""
    from mllmseg_ros.ros.params import SPECS

    source = (REPO / "launch" / "mllmseg.launch.py").read_text()
    tree = ast.parse(source)
    arguments = next(node for node in ast.walk(tree) if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS")
    names = {key.value for key in arguments.value.keys}
    assert {"model_path", "device", "dtype", "namespace", "image", "depth", "camera_info", "command", "autostart"} <= names
    for parameter in ("model_path", "device", "dtype", "autostart"):
        assert parameter in SPECS
    params = yaml.safe_load((REPO / "config" / "mllmseg.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == set(SPECS), set(params) ^ set(SPECS)
