"""The results as vision_msgs detections, for nodes that take ROS's standard detection messages.

``~/detections`` (vision_msgs/Detection2DArray) and ``~/detections_3d`` (vision_msgs/Detection3DArray) are published
when the vision_msgs package can be imported (it is on any robot that has ros-<distro>-vision-msgs; it is not a
dependency of this node). One detection per found target, in the order of the command: ``id`` and the hypothesis'
``class_id`` are the expression, ``score`` is ``confidence`` (P(target found)). The layout is vision_msgs 4 (Humble
and newer: BoundingBox2D.center is a vision_msgs/Pose2D).
"""
from __future__ import annotations

import importlib
from types import ModuleType


def vision_messages() -> ModuleType | None:
    """vision_msgs.msg, or None where it is not installed."""
    try:
        return importlib.import_module("vision_msgs.msg")
    except ImportError:
        return None


def _hypothesis(vision: ModuleType, segmentation):
    result = vision.ObjectHypothesisWithPose()
    result.hypothesis.class_id = segmentation.expression
    result.hypothesis.score = float(segmentation.confidence)
    if segmentation.centroid_3d_valid:  # the target's position in the optical frame, where known
        result.pose.pose.position = segmentation.centroid_3d
        result.pose.pose.orientation.w = 1.0
    return result


def detection_2d_array(vision: ModuleType, array):
    """mllmseg_ros/SegmentationArray -> vision_msgs/Detection2DArray (found targets only). The box centre is in
    pixels with pixel centres at whole numbers, as ``centroid_px``."""
    detections = vision.Detection2DArray(header=array.header)
    for segmentation in array.segmentations:
        if not segmentation.found:
            continue
        box = segmentation.bbox
        detection = vision.Detection2D(header=array.header, id=segmentation.expression)
        detection.results.append(_hypothesis(vision, segmentation))
        detection.bbox.center.position.x = box.x_offset + (box.width - 1) / 2.0
        detection.bbox.center.position.y = box.y_offset + (box.height - 1) / 2.0
        detection.bbox.size_x, detection.bbox.size_y = float(box.width), float(box.height)
        detections.detections.append(detection)
    return detections


def detection_3d_array(vision: ModuleType, array, focal_lengths: tuple[float, float] | None):
    """mllmseg_ros/SegmentationArray -> vision_msgs/Detection3DArray: the found targets with a valid 3D centroid.
    The box is centred there; its x/y size is the 2D box seen at the centroid's depth (needs the camera's focal
    lengths ``(fx, fy)`` in pixels of this image, else 0), its z size 0 (the depth extent is not measured)."""
    detections = vision.Detection3DArray(header=array.header)
    for segmentation in array.segmentations:
        if not (segmentation.found and segmentation.centroid_3d_valid):
            continue
        detection = vision.Detection3D(header=array.header, id=segmentation.expression)
        detection.results.append(_hypothesis(vision, segmentation))
        detection.bbox.center.position = segmentation.centroid_3d
        detection.bbox.center.orientation.w = 1.0
        if focal_lengths is not None:
            depth = segmentation.centroid_3d.z
            detection.bbox.size.x = segmentation.bbox.width * depth / focal_lengths[0]
            detection.bbox.size.y = segmentation.bbox.height * depth / focal_lengths[1]
        detections.detections.append(detection)
    return detections
