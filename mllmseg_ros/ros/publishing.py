"""Engine results -> messages, and the per-camera output publishers."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from ..engine.depth import Centroid3D, centroid_3d
from ..engine.visualize import PALETTE, draw_overlay
from .compact import apply_mask_format, compressed_mask, compressed_overlay
from .conversions import intrinsics_from_camera_info, mono8_image, point, region_of_interest, rgb_image
from .qos import output_qos, overridable, overriding_when_given, own_profile
from .vision_outputs import detection_2d_array, detection_3d_array, vision_messages

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
                image_width=frame.rgb.shape[1],
                image_height=frame.rgb.shape[0],
                track_confidence=1.0,  # a model answer on its own frame (ros/tracking.py sets tracked ones)
            )
        )
    array.preprocess_ms = float(timings.get("preprocess", 0.0))
    array.inference_ms = float(timings.get("encode", 0.0) + timings.get("query", 0.0))
    array.postprocess_ms = float(timings.get("postprocess", 0.0) + (depth_seconds + depth_lookup_s) * 1e3)
    array.total_ms = float((time.monotonic() - frame.received) * 1e3)
    return array


class OutputGate:
    """Results go out only while the gate is open: deactivate and shutdown close it, and once ``close`` returns
    nothing more is published (publishing under way finishes first). An answer the model finishes after that is
    dropped, so a paused or stopping node never moves the robot. Publishers do not wait for each other (the
    tracking thread runs at a lower priority, and must not hold up the model's answers)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open = False
        self._publishing = 0

    def open(self) -> None:
        with self._changed:
            self._open = True

    def close(self, timeout: float = 1.0) -> None:
        with self._changed:
            self._open = False
            self._changed.wait_for(lambda: self._publishing == 0, timeout=timeout)

    @contextmanager
    def publishing(self) -> Iterator[bool]:
        """``with gate.publishing() as may: if may: publish(...)``: ``close`` waits until such a block has ended."""
        with self._changed:
            may = self._open
            self._publishing += may
        try:
            yield may
        finally:
            if may:
                with self._changed:
                    self._publishing -= 1
                    self._changed.notify_all()


class ResultPublisher:
    """``<prefix>/segmentations``, ``/centroid``, ``/markers``, where vision_msgs is installed ``/detections`` and
    ``/detections_3d``, and the images ``/mask``, ``/overlay`` with their image_transport ``compressed`` companions
    (``/mask/compressed`` PNG, ``/overlay/compressed`` JPEG); images and detections are built only when subscribed.
    The node's ``mask_format`` says how ``/segmentations`` carries masks (ros/compact.py), ``output_qos`` how reliably
    the results go out. Every publisher takes `qos_overrides.<topic>.publisher.*` parameters."""

    def __init__(self, node: Node, prefix: str, stream=None, settings: Callable[[], Any] = lambda: None,
                 gate: OutputGate | None = None, monitor=None) -> None:
        """``node`` makes the publishers (any rclpy node); ``settings()`` gives the node's current settings (None
        before configure: reliable results, masks as images), ``gate`` is open while results may go out, ``monitor``
        counts the 3D answers for /diagnostics (``ThreeDOutcomes.record_3d``)."""
        from visualization_msgs.msg import MarkerArray

        from ..msg import SegmentationArray

        self.node = node
        self.stream = stream  # its camera_info gives the 3D detections' box size
        self.settings = settings
        self.gate = gate
        self.monitor = monitor
        self._publishers = []

        def publisher(message_type, name, qos, chosen_per_configure: bool = False):
            # A profile chosen per configure (output_qos) takes the override options only where the user gave an
            # override for the topic: declared, rclpy's read-only parameters would hold it to the first configure's
            topic = f"{prefix}/{name}"
            overriding = overriding_when_given(node, topic, "publisher") if chosen_per_configure else overridable()
            made = node.create_publisher(message_type, topic, own_profile(qos), qos_overriding_options=overriding)
            self._publishers.append(made)
            return made

        def result_publisher(message_type, name):
            return publisher(message_type, name, results_qos, chosen_per_configure=True)

        current = settings()
        results_qos = output_qos(current.output_qos if current else "reliable")
        self.segmentations = result_publisher(SegmentationArray, "segmentations")
        self.mask = publisher(Image, "mask", IMAGES_QOS)
        self.mask_compressed = publisher(CompressedImage, "mask/compressed", IMAGES_QOS)
        self.centroid = result_publisher(PointStamped, "centroid")
        self.overlay = publisher(Image, "overlay", IMAGES_QOS)
        self.overlay_compressed = publisher(CompressedImage, "overlay/compressed", IMAGES_QOS)
        self.markers = result_publisher(MarkerArray, "markers")
        # The newest stamp sent on the topics above but ~/segmentations. A model answer about an older frame than a
        # result already sent (tracked results ran ahead while the model worked) goes on ~/segmentations only, where
        # its source and stamp say what it is; the tracker publishes it brought forward to the newest frame.
        self._newest_stamp: tuple[int, int] | None = None
        self._stamp_lock = threading.Lock()  # the inference and the tracking threads both publish
        self.vision = vision_messages()
        if self.vision is not None:
            self.detections = result_publisher(self.vision.Detection2DArray, "detections")
            self.detections_3d = result_publisher(self.vision.Detection3DArray, "detections_3d")

    def publish(self, array, frame, results, with_markers: bool) -> bool:
        """Publish one frame's results; False when the gate is closed (nothing was sent)."""
        if self.gate is None:
            self._publish(array, frame, results, with_markers)
            return True
        with self.gate.publishing() as may:
            if may:
                self._publish(array, frame, results, with_markers)
            return may

    def _publish(self, array, frame, results, with_markers: bool) -> None:
        settings = self.settings()
        apply_mask_format(array.segmentations, results, settings.mask_format if settings else "image")
        stamp = (frame.header.stamp.sec, frame.header.stamp.nanosec)
        with self._stamp_lock:
            late = self._newest_stamp is not None and stamp < self._newest_stamp
            if not late:
                self._newest_stamp = stamp
            if late and not all(s.source == s.SOURCE_MODEL for s in array.segmentations):
                return  # a tracked result is never late on purpose: nothing of it goes out
            self.segmentations.publish(array)
            if self.monitor is not None:
                self.monitor.record_3d(array)
            if not late:
                self._publish_stamped(array, frame, results, with_markers)

    def _publish_stamped(self, array, frame, results, with_markers: bool) -> None:
        """The topics that have no field to tell a late answer by: only ever newer (or equal) stamps."""
        raw_mask, png_mask = self.mask.get_subscription_count() > 0, self.mask_compressed.get_subscription_count() > 0
        if raw_mask or png_mask:  # a full-size image: not built for nobody
            union = np.zeros(frame.rgb.shape[:2], bool)
            for result in results:
                if result.found:
                    union |= result.mask
            if raw_mask:
                self.mask.publish(mono8_image(union, frame.header))
            if png_mask:
                self.mask_compressed.publish(compressed_mask(union, frame.header))
        # The first target with a valid 3D centroid: what a grasp planner or navigation goal needs.
        for segmentation in array.segmentations:
            if segmentation.centroid_3d_valid:
                self.centroid.publish(PointStamped(header=frame.header, point=segmentation.centroid_3d))
                break
        raw_overlay, jpeg_overlay = self.overlay.get_subscription_count() > 0, self.overlay_compressed.get_subscription_count() > 0
        if raw_overlay or jpeg_overlay:
            overlay = draw_overlay(frame.rgb, results)
            if raw_overlay:
                self.overlay.publish(rgb_image(overlay, frame.header))
            if jpeg_overlay:
                self.overlay_compressed.publish(compressed_overlay(overlay, frame.header))
        if with_markers:
            self.markers.publish(self._markers(array, frame.header))
        if self.vision is not None:
            if self.detections.get_subscription_count() > 0:
                self.detections.publish(detection_2d_array(self.vision, array))
            if self.detections_3d.get_subscription_count() > 0:
                self.detections_3d.publish(detection_3d_array(self.vision, array, self._focal_lengths(frame)))

    def _focal_lengths(self, frame) -> tuple[float, float] | None:
        """(fx, fy) of the frame's camera at the frame's size, or None without a usable camera_info."""
        info = frame.camera_info or (self.stream.camera_info if self.stream is not None else None)
        try:
            intrinsics = intrinsics_from_camera_info(info).scaled_to(frame.rgb.shape[1], frame.rgb.shape[0])
        except (AttributeError, ValueError):  # none yet, or unusable (its reason is in centroid_3d_status)
            return None
        return intrinsics.fx, intrinsics.fy

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
        for publisher in self._publishers:
            self.node.destroy_publisher(publisher)
