"""~/detections and ~/detections_3d: the results as vision_msgs detections (where vision_msgs is installed).

vision_msgs is not installable here, so the conversion is checked against stand-in classes built from the official
field layout (test/ros/vision_msgs_layout/, fake_messages.py): a wrong field name or type fails as it would with the
real classes. With vision_msgs importable (a robot's colcon test, or a rosidl build of that layout on PYTHONPATH) the
node is also checked end to end.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from geometry_msgs.msg import Point
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from fake_messages import fake_package
from mllmseg_ros.ros.vision_outputs import detection_2d_array, detection_3d_array

LAYOUT = Path(__file__).resolve().parent / "vision_msgs_layout"


@pytest.fixture(scope="module")
def vision():
    return fake_package(LAYOUT, "vision_msgs")


def segmentation_array():
    from mllmseg_ros.msg import Segmentation, SegmentationArray

    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = 7
    found = Segmentation(expression="the red cup", found=True, confidence=0.875,
                         bbox=RegionOfInterest(x_offset=10, y_offset=20, width=40, height=30),
                         centroid_3d=Point(x=0.1, y=-0.05, z=1.5), centroid_3d_valid=True, centroid_3d_status="ok")
    flat = Segmentation(expression="the blue bowl", found=True, confidence=0.625,
                        bbox=RegionOfInterest(x_offset=0, y_offset=0, width=64, height=48),
                        centroid_3d_status="depth is not registered to the colour camera")
    absent = Segmentation(expression="the purple plate", found=False, confidence=0.0625)
    return SegmentationArray(header=header, segmentations=[found, flat, absent])


def test_found_targets_become_2d_detections(vision):
    detections = detection_2d_array(vision, segmentation_array())
    assert detections.header.frame_id == "camera_color_optical_frame" and detections.header.stamp.sec == 7
    assert [d.id for d in detections.detections] == ["the red cup", "the blue bowl"]  # not the one not found
    cup = detections.detections[0]
    assert (cup.bbox.center.position.x, cup.bbox.center.position.y) == (29.5, 34.5)  # pixel centres at whole numbers
    assert (cup.bbox.size_x, cup.bbox.size_y) == (40.0, 30.0)
    (hypothesis,) = cup.results
    assert hypothesis.hypothesis.class_id == "the red cup" and hypothesis.hypothesis.score == 0.875
    assert hypothesis.pose.pose.position.z == 1.5  # where its 3D centroid is known
    assert detections.detections[1].results[0].pose.pose.position.z == 0.0


def test_targets_with_a_3d_centroid_become_3d_detections(vision):
    detections = detection_3d_array(vision, segmentation_array(), focal_lengths=(100.0, 100.0))
    (cup,) = detections.detections  # the blue bowl has no valid 3D centroid
    assert cup.id == "the red cup" and cup.results[0].hypothesis.score == 0.875
    assert (cup.bbox.center.position.x, cup.bbox.center.position.z) == (0.1, 1.5)
    assert cup.bbox.center.orientation.w == 1.0
    assert (cup.bbox.size.x, cup.bbox.size.y, cup.bbox.size.z) == pytest.approx((0.6, 0.45, 0.0))  # 40 px at 1.5 m, f 100
    no_camera = detection_3d_array(vision, segmentation_array(), focal_lengths=None).detections[0]
    assert (no_camera.bbox.size.x, no_camera.bbox.size.y) == (0.0, 0.0)


def test_the_stand_ins_refuse_what_the_real_classes_refuse(vision):
    with pytest.raises(AttributeError):
        vision.BoundingBox2D().center.x = 1.0  # vision_msgs 3 (Foxy) had center.x; 4 has center.position.x
    with pytest.raises(TypeError):
        vision.ObjectHypothesis().score = 1  # float64 takes a float


def test_the_node_publishes_detections_where_vision_msgs_is_installed(ros, make_node, seg_checkpoint):
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed (not on PyPI); the "
                                      "conversion is tested above against its field layout")
    from ros_harness import camera_info_msg, connected, depth_msg, rgb_msg, wait_for

    node = make_node(seg_checkpoint, threshold=0.0)
    driver = ros.driver()
    received_2d, received_3d = [], []
    driver.node.create_subscription(vision_msgs.Detection2DArray, "/mllmseg_node/detections", received_2d.append, 10)
    driver.node.create_subscription(vision_msgs.Detection3DArray, "/mllmseg_node/detections_3d", received_3d.append, 10)
    assert connected(node, driver)
    assert wait_for(lambda: node.streams[0].publisher.detections.get_subscription_count() > 0)
    driver.info.publish(camera_info_msg())
    driver.depth.publish(depth_msg(2.0, stamp_ns=5))
    assert wait_for(lambda: node.streams[0].camera_info is not None and len(node.streams[0].depth) == 1)
    driver.send_command("the red cup")
    assert wait_for(lambda: node.target.current is not None)
    driver.image.publish(rgb_msg(stamp_ns=5))
    assert wait_for(lambda: received_2d and received_3d)
    (detection,) = received_2d[0].detections
    assert detection.id == "the red cup" and (detection.bbox.size_x, detection.bbox.size_y) == (64.0, 48.0)
    (detection,) = received_3d[0].detections
    assert detection.bbox.center.position.z == pytest.approx(2.0)
    assert detection.bbox.size.x == pytest.approx(64 * 2.0 / 100.0)
