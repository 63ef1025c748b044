"""Drive a running mllmseg_node from another ROS node: feed it camera frames and commands, record what it publishes.

The replay driver shared by tests and benchmarks (test/ros, benchmarks/bench_tracking.py, bench_stop_latency.py):
test frames and depth images, a small model whose [SEG]/[REJ] answer is pinned, and waiting on a condition instead of
sleeping.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

WAIT_S = 30.0
K = [100.0, 0.0, 31.5, 0.0, 100.0, 23.5, 0.0, 0.0, 1.0]  # intrinsics of the 64 x 48 test camera


def tiny_checkpoint(folder: Path, decision: str = "SEG") -> Path:
    """A small random model with its own tokenizer; its [REJ] logit is pinned so every answer is ``decision``."""
    from ..training.checkpoint_builder import random_checkpoint

    random_checkpoint(folder, ["the red cup", "the blue bowl", "the green box"], image_size=56, vision_width=32, llm_width=32)
    state = load_file(str(folder / "model.safetensors"))
    rej = json_token(folder, "[REJ]")
    head = state["language_model.lm_head.weight"]
    bias_direction = state["language_model.model.norm.weight"].sign()
    # Zero row: logit 0 loses to the many positive random logits -> [SEG]; a large aligned row wins -> [REJ].
    head[rej] = 0.0 if decision == "SEG" else 1e3 * bias_direction
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def json_token(folder: Path, token: str) -> int:
    import json

    for entry in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]:
        if entry["content"] == token:
            return entry["id"]
    raise KeyError(token)


def wait_for(condition, timeout: float = WAIT_S, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def rgb_msg(height: int = 48, width: int = 64, stamp_ns: int = 0, frame_id: str = "camera_optical", encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}[encoding]
    pixels = (np.arange(height * width * channels, dtype=np.uint32) % 251).astype(np.uint8)
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = frame_id
    msg.data = pixels.tobytes()
    return msg


def depth_msg(value_m: float, height: int = 48, width: int = 64, stamp_ns: int = 0, encoding: str = "16UC1"):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding)
    if encoding == "16UC1":
        data = np.full((height, width), round(value_m * 1000), np.uint16)
        msg.step = width * 2
    else:
        data = np.full((height, width), value_m, np.float32)
        msg.step = width * 4
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = "camera_optical"
    msg.data = data.tobytes()
    return msg


def camera_info_msg(height: int = 48, width: int = 64):
    from sensor_msgs.msg import CameraInfo

    return CameraInfo(height=height, width=width, k=K)


def is_model_answer(array) -> bool:
    """Whether the model answered this array's own frame (not a model answer carried to it by tracking)."""
    return all(s.source == s.SOURCE_MODEL for s in array.segmentations)


def stamp_ns_of(array) -> int:
    return array.header.stamp.sec * 10**9 + array.header.stamp.nanosec


class Driver:
    """A test node that feeds the node under test and records what it publishes."""

    def __init__(self, prefix: str = "/mllmseg_node", image_qos=None, namespace: str = "", keep_messages: bool = True) -> None:
        from geometry_msgs.msg import PointStamped
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        from ..msg import SegmentationArray

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.node = Node(f"test_driver_{id(self)}")
        ns = namespace.rstrip("/")
        self.image = self.node.create_publisher(Image, f"{ns}/image", image_qos or reliable)
        self.depth = self.node.create_publisher(Image, f"{ns}/depth", reliable)
        self.info = self.node.create_publisher(CameraInfo, f"{ns}/camera_info", reliable)
        self.command = self.node.create_publisher(String, "/command", reliable)
        self.arrays: list = []
        self.masks: list = []
        self.centroids: list = []
        self._lock = threading.Lock()
        self.latencies_ms: list[float] = []  # total_ms of every array received
        self.model_latencies_ms: list[float] = []  # total_ms of the model's answers (not tracked results)
        self.keep_messages = keep_messages  # False: only latencies (a flood test must not measure its own hoard)
        self.node.create_subscription(SegmentationArray, f"{prefix}/segmentations", self._on_array, reliable)
        if keep_messages:
            self.node.create_subscription(Image, f"{prefix}/mask", self._store(self.masks), reliable)
            self.node.create_subscription(PointStamped, f"{prefix}/centroid", self._store(self.centroids), reliable)

    def _store(self, bucket: list):
        def callback(msg) -> None:
            with self._lock:
                bucket.append(msg)

        return callback

    def _on_array(self, msg) -> None:
        with self._lock:
            self.latencies_ms.append(msg.total_ms)
            if is_model_answer(msg):
                self.model_latencies_ms.append(msg.total_ms)
            if self.keep_messages:
                self.arrays.append(msg)

    @property
    def model_answers(self) -> list:
        """The arrays answered by the model on their own frame: tracked results may come between them (with
        ``tracking: auto`` a frame arriving as an answer is being published gets the answer carried to it too)."""
        with self._lock:
            return [a for a in self.arrays if is_model_answer(a)]

    def send_command(self, text: str) -> None:
        from std_msgs.msg import String

        self.command.publish(String(data=text))

    def wait_connected(self, timeout: float = WAIT_S) -> bool:
        return wait_for(lambda: self.image.get_subscription_count() > 0 and self.command.get_subscription_count() > 0, timeout)


def connected(node, driver: Driver, stream_index: int = 0, timeout: float = WAIT_S) -> bool:
    """The driver's publishers see the node, and each of the node's sensor subscriptions to a topic the driver
    publishes has the reliability of the driver's publisher there, as the ROS graph shows it (with image_qos=auto
    the node re-subscribes once a publisher appears; frames sent before that may be lost). Read from the graph, not
    with ros/qos.py's functions, so that a test does not start only when the code it tests says so."""
    publishers = {p.topic_name: p for p in (driver.image, driver.depth, driver.info)}
    stream = node.streams[stream_index]

    def subscribed_as_published() -> bool:
        for sensor in stream.sensors:
            topic = node.resolve_topic_name(sensor.topic)
            if topic not in publishers:
                continue
            ours = [info for info in driver.node.get_subscriptions_info_by_topic(topic)
                    if (info.node_name, info.node_namespace) == (node.get_name(), node.get_namespace())]
            if len(ours) != 1 or ours[0].qos_profile.reliability != publishers[topic].qos_profile.reliability:
                return False
        return bool(stream.sensors)

    return wait_for(subscribed_as_published, timeout) and driver.wait_connected(timeout)
