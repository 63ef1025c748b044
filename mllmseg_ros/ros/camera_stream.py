"""One camera's inputs (colour, depth, camera_info) and outputs; what each frame is paired with is
ros/frame_pairing.py's."""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from . import depth_pairing
from .buffers import Frame, LatestFrameSlot, StampMatcher
from .compressed_depth import decode_compressed_depth
from .conversions import compressed_to_rgb, image_to_rgb, stamp_seconds
from .frame_pairing import FramePairing
from .params import NodeSettings
from .publishing import build_array
from .qos import IMAGE_DEPTH, SENSOR_DEPTH, choose_sensor_qos, overridable, overridden, same_profile, sensor_setting

if TYPE_CHECKING:
    from rclpy.node import Node


def _join(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if namespace else name


@dataclass(frozen=True)
class CameraPorts:
    """What a camera stream uses of its node: the rclpy calls that make and drop its subscriptions and look at the
    topic graph, its QoS choice, a logger, a clock, and its result publisher. ``of(node)`` wires a node; tests give
    stand-ins (test/ros/test_camera_stream.py)."""

    create_subscription: Callable[..., Any]
    destroy_subscription: Callable[[Any], Any]
    resolve_topic_name: Callable[[str], str]
    publishers_info: Callable[[str], list]  # the publishers of a (resolved) topic, with their QoS
    choose_qos: Callable[[str, str, int], tuple[QoSProfile, str]]  # (topic, setting, history) -> (profile, why)
    qos_overridden: Callable[[str], bool]  # the user gave qos_overrides for this topic
    logger: Any
    outputs: Callable[[str, "CameraStream"], Any]  # (topic prefix, stream) -> its ResultPublisher
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def of(cls, node: "Node", outputs: Callable[[str, "CameraStream"], Any]) -> "CameraPorts":
        """The ports of an rclpy node; ``outputs`` makes a stream's result publisher (the node's, with its settings,
        output gate and 3D counter: node.py)."""
        return cls(create_subscription=node.create_subscription, destroy_subscription=node.destroy_subscription,
                   resolve_topic_name=node.resolve_topic_name, publishers_info=node.get_publishers_info_by_topic,
                   choose_qos=partial(choose_sensor_qos, node), qos_overridden=partial(overridden, node),
                   logger=node.get_logger(), outputs=outputs)


class SensorSubscription:
    """A subscription whose QoS follows its publishers (``image_qos: auto``): re-created when they change. A user's
    `qos_overrides.<topic>.subscription.*` parameters win: such a topic keeps the QoS they give."""

    def __init__(self, ports: CameraPorts, message_type: type, topic: str, callback: Callable, history: int) -> None:
        self.ports, self.message_type, self.topic, self.callback, self.history = ports, message_type, topic, callback, history
        self.subscription = None
        self.requested: QoSProfile | None = None  # what the node chose (compared with the publishers' next time)
        self.qos: QoSProfile | None = None  # what the subscription has (the choice, after any override)

    def match(self, setting: str, group) -> None:
        fixed = self.ports.qos_overridden(self.topic)
        if fixed and self.subscription is not None:
            return
        profile, why = self.ports.choose_qos(self.topic, setting, self.history)
        if same_profile(self.requested, profile):
            return
        # Not destroy(): readers of ``qos`` (diagnostics, the no-image warning) would see None between the two steps
        if self.subscription is not None:
            self.ports.destroy_subscription(self.subscription)
        self.subscription = self.ports.create_subscription(
            self.message_type, self.topic, self.callback, profile, callback_group=group,
            qos_overriding_options=overridable() if fixed else None)
        self.requested, self.qos = profile, self.subscription.qos_profile
        if fixed:
            why = f"{self.qos.reliability.name.lower()} (qos_overrides)"
        self.ports.logger.info(f"subscribed to {self.ports.resolve_topic_name(self.topic)} with QoS {why}")

    def destroy(self) -> None:
        if self.subscription is not None:
            self.ports.destroy_subscription(self.subscription)
        self.subscription, self.requested, self.qos = None, None, None


class CameraStream:
    """Inputs, buffers and outputs of one camera (relative topic names, so launch files can remap them).

    Each colour frame is paired with the depth image nearest in stamp and with the camera_info of its time while it
    waits for the model and while the model runs on it (ros/frame_pairing.py), so how long the model takes never
    costs the 3D answer.
    """

    def __init__(self, ports: CameraPorts, namespace: str, on_rejected: Callable[[str, str], None],
                 on_frame: Callable[[], None]) -> None:
        """``ports``: what the stream uses of its node; ``on_rejected(text, kind)``: a frame rejected ("rejected")
        or without 3D for its depth input ("depth"); ``on_frame()``: a frame is waiting in the slot."""
        self.ports = ports
        self.name = namespace.strip("/")
        self.image_topic = _join(namespace, "image")
        self.depth_topic = _join(namespace, "depth")
        self.info_topic = _join(namespace, "camera_info")
        self.on_rejected, self.on_frame = on_rejected, on_frame
        self.pairing = FramePairing(clock=ports.clock)
        self.image: SensorSubscription | None = None
        self.sensors: list[SensorSubscription] = []
        self.rejected = 0
        self.reject_reason = ""
        self.processed = 0
        self.stale = 0  # frames older than the command they would have answered
        self.warned = False
        self.last_frame_time = ports.clock()
        self.publisher = ports.outputs("~" if not self.name else f"~/{self.name}", self)

    # the pairing's state, read by the node, the service, the tracker and the publisher
    @property
    def slot(self) -> LatestFrameSlot:
        return self.pairing.slot

    @property
    def depth(self) -> StampMatcher:
        return self.pairing.depth

    @property
    def camera_info(self) -> CameraInfo | None:
        return self.pairing.camera_info

    @property
    def latest(self) -> Frame | None:
        return self.pairing.latest

    @property
    def in_flight(self) -> Frame | None:
        return self.pairing.in_flight

    @property
    def image_qos(self) -> QoSProfile | None:
        return self.image.qos if self.image is not None else None

    # subscriptions ------------------------------------------------------------------------------------------------
    def transport_topic(self, topic: str, transport: str) -> str:
        """``topic`` for the raw transport; for another, the topic image_transport gives it: the remapped topic +
        ``/<transport>`` (``-r image:=/camera/color/image_raw`` -> /camera/color/image_raw/compressed; depth likewise
        /compressedDepth)."""
        return topic if transport == "raw" else f"{self.ports.resolve_topic_name(topic)}/{transport}"

    def subscribe(self, settings: NodeSettings, group) -> None:
        image_transport = "compressed" if settings.compressed else "raw"
        self.image = SensorSubscription(self.ports, CompressedImage if settings.compressed else Image,
                                        self.transport_topic(self.image_topic, image_transport), self._on_image, IMAGE_DEPTH)
        self.sensors = [self.image]
        if settings.use_depth:
            depth_type = Image if settings.depth_transport == "raw" else CompressedImage
            self.sensors += [
                SensorSubscription(self.ports, depth_type, self.transport_topic(self.depth_topic, settings.depth_transport),
                                   self._on_depth, SENSOR_DEPTH),
                SensorSubscription(self.ports, CameraInfo, self.info_topic, self._on_camera_info, SENSOR_DEPTH),
            ]
        self.match_qos(settings, group)
        self.last_frame_time = self.ports.clock()
        self.warned = False

    def match_qos(self, settings: NodeSettings, group) -> None:
        for sensor in self.sensors:
            sensor.match(sensor_setting(settings.image_qos, settings.network), group)

    def unsubscribe(self) -> None:
        for sensor in self.sensors:
            sensor.destroy()
        self.image, self.sensors = None, []
        self.pairing.clear()

    # callbacks: convert, pair, hand over, never block --------------------------------------------------------------
    def _on_image(self, msg) -> None:
        try:
            rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        except ValueError as exc:
            self.rejected += 1
            self.reject_reason = str(exc)
            self.on_rejected(f"{self.image_topic}: {exc}", "rejected")
            self.ports.logger.warning(f"{self.image_topic}: frame rejected: {exc}", throttle_duration_sec=5.0)
            return
        frame = self.pairing.frame_arrived(rgb, msg.header, stamp_seconds(msg.header))
        self.last_frame_time = frame.received
        self.warned = False
        self.on_frame()

    def _on_depth(self, msg) -> None:
        if isinstance(msg, CompressedImage):
            # Decoded on arrival (a few ms for 640x480 PNG): from here on it is raw depth, paired and checked
            # (registration, stamps, values: ros/depth_pairing.py) like any other
            try:
                msg = decode_compressed_depth(msg)
            except ValueError as exc:
                self.on_rejected(f"{self.depth_topic}: {exc}", "depth")
                self.ports.logger.warning(f"{self.depth_topic}: depth image rejected: {exc}", throttle_duration_sec=5.0)
                return
        self.pairing.depth_arrived(stamp_seconds(msg.header), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.pairing.camera_info_arrived(msg)

    # hand-over to the inference thread ---------------------------------------------------------------------------
    def take_frame(self) -> Frame | None:
        """The newest frame, now in flight: it keeps receiving depth offers until ``finish_frame``."""
        return self.pairing.take_frame()

    def finish_frame(self) -> None:
        self.pairing.finish_frame()

    # depth for a frame ---------------------------------------------------------------------------------------------
    def wait_for_depth_pair(self, frame: Frame, settings: NodeSettings) -> None:
        """Block until no nearer depth image can still come for ``frame`` (at most ``depth_sync_tolerance_s`` after
        it arrived; not at all without depth). For results computed as soon as a frame arrives (tracking), which
        would otherwise take the previous frame's depth."""
        if settings.use_depth:
            self.pairing.wait_for_own_depth(frame, settings.depth_sync_tolerance_s)

    def depth_for(self, frame: Frame, settings: NodeSettings):
        """(depth in metres or None, intrinsics or None, reason text: empty when a 3D answer is possible); see
        ros/depth_pairing.py for when depth may not be used."""
        return depth_pairing.depth_for(self, frame, settings)

    def results_array(self, frame: Frame, command_text: str, results, settings: NodeSettings, timings: dict):
        """The SegmentationArray of ``results`` on ``frame``, with the 3D answers of the frame's depth: the one way
        the model's, the tracker's and the service's results become a message."""
        started = time.perf_counter()
        depth, intrinsics, reason = self.depth_for(frame, settings)
        return build_array(frame, command_text, results, depth, intrinsics, reason, timings, time.perf_counter() - started)

    def depth_problem(self, text: str) -> None:
        """A frame got no 3D answer for a reason of the depth input itself: say so (rate-limited) and count it."""
        self.on_rejected(f"{self.depth_topic}: {text}", "depth")
        self.ports.logger.warning(f"no 3D answer: {text}", throttle_duration_sec=10.0)

    def why_no_images(self) -> str:
        topic = self.ports.resolve_topic_name(self.image.topic if self.image else self.image_topic)
        publishers = self.ports.publishers_info(topic)
        if self.rejected:
            return f"{self.rejected} frame(s) on {topic} were rejected: {self.reject_reason}"
        if not publishers:
            return f"nobody publishes {topic} (check the topic name / remapping)"
        if self.image_qos is not None and self.image_qos.reliability == ReliabilityPolicy.RELIABLE and any(
            p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers
        ):
            return f"QoS mismatch on {topic}: the publisher is BEST_EFFORT, this node subscribes RELIABLE (set image_qos:=auto)"
        return f"{len(publishers)} publisher(s) on {topic} but no frame arrived (network or large-message fragmentation?)"
