"""Engine results -> messages, and the per-camera output publishers."""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..engine.depth import Centroid3D, centroid_3d
from ..engine.visualize import PALETTE, draw_overlay
from .conversions import mono8_image, point, region_of_interest, rgb_image
from .qos import RELIABLE_10

# Images out: keep one, the newest; a slow RViz should not make us buffer frames.
IMAGES_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def build_array(frame, command: str, results, depth_m, intrinsics, depth_reason: str, timings: dict, depth_lookup_s: float):
    """SegmentationArray for one frame. ``depth_reason``: why the frame has no 3D answer (empty when it may have one);
    ``depth_lookup_s``: time spent finding and converting the depth image.

    Latencies: ``preprocess_ms`` and ``inference_ms`` are the engine's; ``postprocess_ms`` is the engine's
    post-processing (resize, threshold, geometry) plus the 3D centroids; message building and transport are not in
    any stage, only in ``total_ms``.
    """
    from ..msg import Segmentation, SegmentationArray

    array = SegmentationArray(header=frame.header, command=command)
    depth_seconds = 0.0
    for result in results:
        depth_started = time.perf_counter()
        if depth_reason and result.centroid is not None:  # found, but this frame has no usable depth/camera model
            located = Centroid3D(None, 0, depth_reason)
        else:
            located = centroid_3d(result.mask, result.centroid, depth_m, intrinsics)
        depth_seconds += time.perf_counter() - depth_started
        array.segmentations.append(
            Segmentation(
                expression=result.expression,
                found=bool(result.found),
                confidence=float(result.confidence),
                mask=mono8_image(result.mask, frame.header),
                bbox=region_of_interest(result.bbox),
                centroid_px=point(result.centroid),
                centroid_3d=point(located.point),
                centroid_3d_valid=located.point is not None,
                centroid_3d_status=located.status,
                depth_samples=located.samples,
                area=int(result.area),
                track_confidence=1.0,  # a model answer on its own frame (ros/tracking.py sets tracked ones)
            )
        )
    array.preprocess_ms = float(timings.get("preprocess", 0.0))
    array.inference_ms = float(timings.get("encode", 0.0) + timings.get("query", 0.0))
    array.postprocess_ms = float(timings.get("postprocess", 0.0) + (depth_seconds + depth_lookup_s) * 1e3)
    array.total_ms = float((time.monotonic() - frame.received) * 1e3)
    return array


class ResultPublisher:
    """``<prefix>/segmentations``, ``/mask`` and ``/overlay`` (both built only when subscribed), ``/centroid``, ``/markers``."""

    def __init__(self, node: Node, prefix: str) -> None:
        from visualization_msgs.msg import MarkerArray

        from ..msg import SegmentationArray

        self.node = node
        self.segmentations = node.create_publisher(SegmentationArray, f"{prefix}/segmentations", RELIABLE_10)
        self.mask = node.create_publisher(Image, f"{prefix}/mask", IMAGES_QOS)
        self.centroid = node.create_publisher(PointStamped, f"{prefix}/centroid", RELIABLE_10)
        self.overlay = node.create_publisher(Image, f"{prefix}/overlay", IMAGES_QOS)
        self.markers = node.create_publisher(MarkerArray, f"{prefix}/markers", RELIABLE_10)

    def publish(self, array, frame, results, with_markers: bool) -> None:
        self.segmentations.publish(array)
        if self.mask.get_subscription_count() > 0:  # a full-size image: not built for nobody
            union = np.zeros(frame.rgb.shape[:2], bool)
            for result in results:
                if result.found:
                    union |= result.mask
            self.mask.publish(mono8_image(union, frame.header))
        # The first target with a valid 3D centroid: what a grasp planner or navigation goal needs.
        for segmentation in array.segmentations:
            if segmentation.centroid_3d_valid:
                self.centroid.publish(PointStamped(header=frame.header, point=segmentation.centroid_3d))
                break
        if self.overlay.get_subscription_count() > 0:
            self.overlay.publish(rgb_image(draw_overlay(frame.rgb, results), frame.header))
        if with_markers:
            self.markers.publish(self._markers(array, frame.header))

    @staticmethod
    def _markers(array, header):
        from visualization_msgs.msg import Marker, MarkerArray

        markers = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
        for index, segmentation in enumerate(array.segmentations):
            if not segmentation.centroid_3d_valid:
                continue
            r, g, b = (c / 255 for c in PALETTE[index % len(PALETTE)])
            sphere = Marker(header=header, ns="mllmseg", id=2 * index, type=Marker.SPHERE, action=Marker.ADD)
            sphere.pose.position = segmentation.centroid_3d
            sphere.pose.orientation.w = 1.0
            sphere.scale.x = sphere.scale.y = sphere.scale.z = 0.05
            sphere.color.r, sphere.color.g, sphere.color.b, sphere.color.a = r, g, b, 0.9
            label = Marker(header=header, ns="mllmseg", id=2 * index + 1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
            label.pose.position.x = segmentation.centroid_3d.x
            label.pose.position.y = segmentation.centroid_3d.y - 0.06
            label.pose.position.z = segmentation.centroid_3d.z
            label.pose.orientation.w = 1.0
            label.scale.z = 0.04
            label.color.r = label.color.g = label.color.b = label.color.a = 1.0
            label.text = segmentation.expression
            markers.markers.extend([sphere, label])
        return markers

    def destroy(self) -> None:
        for publisher in (self.segmentations, self.mask, self.centroid, self.overlay, self.markers):
            self.node.destroy_publisher(publisher)
