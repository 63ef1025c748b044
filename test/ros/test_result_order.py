"""Stamps on the output topics never go back (issue 31): a model answer about an older frame than a tracked result
already published goes on ~/segmentations only; ~/centroid and the other stamped topics only ever move forward.

Checked to fail before the change: without the publisher's stamp guard ~/centroid received 5, 3, 4, 6 s here (the
node's own symptom: tracked results for newer frames, then the slow model's answer about its older frame)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np


def _array(stamp_s: int, source: int):
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Point
    from std_msgs.msg import Header

    from mllmseg_ros.msg import Segmentation, SegmentationArray

    header = Header(stamp=Time(sec=stamp_s), frame_id="camera_color_optical_frame")
    segmentation = Segmentation(expression="the red cup", found=True, source=source, centroid_3d_valid=True,
                                centroid_3d=Point(x=0.1 * stamp_s, y=0.0, z=1.0))
    frame = SimpleNamespace(header=header, rgb=np.zeros((4, 4, 3), np.uint8), camera_info=None)
    return SegmentationArray(header=header, command="the red cup", segmentations=[segmentation]), frame


def test_a_late_model_answer_goes_on_segmentations_only_and_centroid_never_goes_back(ros):
    from geometry_msgs.msg import PointStamped
    from rclpy.node import Node

    from mllmseg_ros.msg import Segmentation, SegmentationArray
    from mllmseg_ros.ros.publishing import ResultPublisher
    from mllmseg_ros.ros.qos import RELIABLE_10

    node = ros.add(Node("result_order_test"))
    publisher = ResultPublisher(node, "/order")  # no settings: the defaults (reliable, masks as images)
    listener = ros.add(Node("result_order_listener"))
    got = {"segmentations": [], "centroid": []}
    listener.create_subscription(SegmentationArray, "/order/segmentations",
                                 lambda m: got["segmentations"].append((m.header.stamp.sec, m.segmentations[0].source)),
                                 RELIABLE_10)
    listener.create_subscription(PointStamped, "/order/centroid", lambda m: got["centroid"].append(m.header.stamp.sec),
                                 RELIABLE_10)
    deadline = time.monotonic() + 10
    while publisher.centroid.get_subscription_count() < 1 or publisher.segmentations.get_subscription_count() < 1:
        assert time.monotonic() < deadline, "the listener never matched"
        time.sleep(0.05)
    tracked, model = Segmentation.SOURCE_TRACKED, Segmentation.SOURCE_MODEL
    for stamp, source in ((5, tracked), (3, model), (4, tracked), (6, tracked), (6, model)):
        array, frame = _array(stamp, source)
        assert publisher.publish(array, frame, [], with_markers=True)
    deadline = time.monotonic() + 10
    while len(got["segmentations"]) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    # the late model answer (3) is on ~/segmentations with its own stamp; the tracked result about 4, older than one
    # already sent, goes nowhere; an answer about the newest frame (6) goes everywhere
    assert got["segmentations"] == [(5, tracked), (3, model), (6, tracked), (6, model)]
    assert got["centroid"] == [5, 6, 6]
