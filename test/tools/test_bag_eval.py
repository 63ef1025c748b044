"""Bag replay end to end: a bag with images, depth, camera_info, a spoken command and ground truth goes through the
node; per-target IoU, found accuracy, 3D error and latency come out with known values."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed; scripts/setup.sh installs it")
from geometry_msgs.msg import Point  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ros.ros_harness import camera_info_msg, depth_msg, rgb_msg, tiny_checkpoint  # noqa: E402 (test/ros/)

from mllmseg_ros.msg import Segmentation, SegmentationArray  # noqa: E402
from mllmseg_ros.ros.conversions import mono8_image  # noqa: E402
from mllmseg_ros.tools.bags import write_bag  # noqa: E402
from mllmseg_ros.tools.cli import main  # noqa: E402

FRAMES = 5
PERIOD_NS = 200_000_000


@pytest.fixture(scope="module")
def seg_checkpoint(tmp_path_factory):
    """A tiny random model that answers [SEG] to everything (as ``test/ros/conftest.py``'s fixture)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny_seg"), decision="SEG")


def registered(depth, frame_id: str):
    """Depth registered to the colour image carries its frame_id (else the node gives no 3D)."""
    depth.header.frame_id = frame_id
    return depth


def make_bag(path, storage="mcap"):
    left_half = np.zeros((48, 64), bool)
    left_half[:, :32] = True
    messages = [("/command", "std_msgs/msg/String", String(data="Pick up the red cup"), 0)]
    for i in range(FRAMES):
        t = (i + 1) * PERIOD_NS
        image = rgb_msg(stamp_ns=t, frame_id="cam")
        truth = SegmentationArray(header=image.header, command="Pick up the red cup")
        truth.segmentations.append(
            Segmentation(expression="the red cup", found=True, mask=mono8_image(left_half, image.header),
                         centroid_3d=Point(x=0.1, y=0.0, z=2.0))
        )
        messages += [
            ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", camera_info_msg(), t - 1),
            ("/cam/depth", "sensor_msgs/msg/Image", registered(depth_msg(2.0, stamp_ns=t), "cam"), t - 1),
            ("/cam/image", "sensor_msgs/msg/Image", image, t),
            ("/ground_truth", "mllmseg_ros/msg/SegmentationArray", truth, t),
        ]
    write_bag(path, messages, storage)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_eval_scores_known_answers(seg_checkpoint, tmp_path, capsys, storage):
    bag = make_bag(tmp_path / "scenes", storage)
    report = tmp_path / "scores.json"
    code = main([
        "bag-eval", str(bag), "--model", str(seg_checkpoint), "--json", str(report), "--threshold", "0.0",
        "--remap", "/cam/image:=/image", "/cam/depth:=/depth", "/cam/camera_info:=/camera_info",
    ])
    assert code == 0
    rows = json.loads(report.read_text())
    assert len(rows) == 1
    row = rows[0]
    assert row["expression"] == "the red cup" and row["frames"] == FRAMES
    assert row["answered"] >= 1
    assert row["found_accuracy"] == 1.0
    assert row["mean_iou"] == pytest.approx(0.5)  # threshold 0: the whole image vs the left half
    assert row["centroid_error_mm"] == pytest.approx(100.0, abs=0.5)  # (0, 0, 2) vs (0.1, 0, 2)
    assert row["latency_ms"] > 0
    assert "the red cup" in capsys.readouterr().out


def test_bag_eval_without_ground_truth_is_a_clear_error(seg_checkpoint, tmp_path, capsys):
    bag = tmp_path / "nogt"
    write_bag(bag, [("/image", "sensor_msgs/msg/Image", rgb_msg(), 1)])
    assert main(["bag-eval", str(bag), "--model", str(seg_checkpoint)]) == 2
    assert "ground-truth topic /ground_truth" in capsys.readouterr().err
