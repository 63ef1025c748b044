"""Bag play and record without rosbag2: real rclpy nodes in this process, bags written and read with rosbags."""
from __future__ import annotations

import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from rosbags.rosbag2 import Reader, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mllmseg_ros.tools.bags import BagError, add_package_types, parse_remap, play, record, write_bag  # noqa: E402
from mllmseg_ros.tools.cli import main  # noqa: E402

IMAGE_TOPIC, TEXT_TOPIC = "/camera/image_raw", "/chatter"
IMAGE_TYPE, TEXT_TYPE = "sensor_msgs/msg/Image", "std_msgs/msg/String"
WIDTH, HEIGHT = 64, 48
COUNT = 12  # alternating image, string
SPACING_NS = 50_000_000
T0_NS = 1_700_000_000_000_000_000
TIMING_TOLERANCE = 0.4  # behaviour, not a benchmark: a loaded 2-core machine must pass
TIMEOUT_S = 10.0


def make_image(index: int, t_ns: int) -> Image:
    msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3)
    msg.header.frame_id = "camera"
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
    msg.data = ((np.arange(HEIGHT * WIDTH * 3) + 7 * index) % 256).astype(np.uint8).tobytes()
    return msg


def bag_messages() -> list[tuple[str, str, Any, int]]:
    out = []
    for i in range(COUNT):
        t_ns = T0_NS + i * SPACING_NS
        if i % 2 == 0:
            out.append((IMAGE_TOPIC, IMAGE_TYPE, make_image(i, t_ns), t_ns))
        else:
            out.append((TEXT_TOPIC, TEXT_TYPE, String(data=f"message {i}"), t_ns))
    return out


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Collector:
    """Subscribes to topics on the test node; keeps (topic, message, arrival time) in arrival order."""

    def __init__(self, node: Node, topics: dict[str, type]) -> None:
        self.items: list[tuple[str, Any, float]] = []
        self._cond = threading.Condition()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic, cls in topics.items():
            node.create_subscription(cls, topic, partial(self._on_message, topic), qos)

    def _on_message(self, topic: str, msg: Any) -> None:
        with self._cond:
            self.items.append((topic, msg, time.monotonic()))
            self._cond.notify_all()

    def wait_for(self, n: int) -> list[tuple[str, Any, float]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= n, TIMEOUT_S), f"{len(self.items)} of {n} arrived"
            return list(self.items)


@pytest.fixture()
def node():
    """A node spun by an executor in a thread, inside an rclpy context of its own."""
    rclpy.init()
    try:
        test_node = rclpy.create_node("bag_test")
        executor = SingleThreadedExecutor()
        executor.add_node(test_node)
        thread = threading.Thread(target=executor.spin, daemon=True)
        thread.start()
        try:
            yield test_node
        finally:
            executor.shutdown()
            thread.join(timeout=5)
            test_node.destroy_node()
    finally:
        rclpy.try_shutdown()


@pytest.fixture(params=["mcap", "sqlite3"])
def bag(request, tmp_path) -> Path:
    path = tmp_path / f"bag_{request.param}"
    assert write_bag(path, bag_messages(), storage=request.param) == COUNT
    return path


@pytest.fixture()
def mcap_bag(tmp_path) -> Path:
    path = tmp_path / "bag_mcap"
    write_bag(path, bag_messages())
    return path


def both_topics(node: Node) -> Collector:
    return Collector(node, {IMAGE_TOPIC: Image, TEXT_TOPIC: String})


def assert_same_messages(items, expected) -> None:
    assert [(topic, msg) for topic, msg, _ in items] == [(topic, msg) for topic, _, msg, _ in expected]


def assert_follows_the_bag_timing(items, spacing_s: float) -> None:
    """Messages arrive ``spacing_s`` apart (the median gap, so that one stall of a loaded machine does not count) and
    never faster than the bag: the whole span is at least the bag's span at that rate, less the tolerance."""
    import statistics

    times = [received for _, _, received in items]
    gap = statistics.median(b - a for a, b in zip(times, times[1:]))
    assert abs(gap - spacing_s) <= TIMING_TOLERANCE * spacing_s, f"median gap {gap:.3f} s, expected {spacing_s:.3f} s"
    span, expected = times[-1] - times[0], (len(times) - 1) * spacing_s
    assert span >= (1 - TIMING_TOLERANCE) * expected, f"played over {span:.3f} s, expected {expected:.3f} s"


def test_play_publishes_every_message_in_order_with_the_bag_timing(node, bag):
    collector = both_topics(node)
    assert play(bag, wait_for_subscribers=TIMEOUT_S) == COUNT
    items = collector.wait_for(COUNT)
    assert_same_messages(items, bag_messages())  # content, header stamps and frame ids, in bag order
    assert_follows_the_bag_timing(items, SPACING_NS / 1e9)


def test_rate_two_halves_the_playback_time(node, mcap_bag):
    collector = both_topics(node)
    assert play(mcap_bag, rate=2.0, wait_for_subscribers=TIMEOUT_S) == COUNT
    items = collector.wait_for(COUNT)
    assert_follows_the_bag_timing(items, SPACING_NS / 1e9 / 2)


def test_remap_and_topic_selection(node, mcap_bag):
    collector = Collector(node, {IMAGE_TOPIC: Image, "/talk": String})
    count = play(mcap_bag, topics=["chatter"], remap={"/chatter": "/talk"}, wait_for_subscribers=TIMEOUT_S)
    assert count == COUNT // 2
    items = collector.wait_for(COUNT // 2)
    assert [(topic, msg.data) for topic, msg, _ in items] == [
        ("/talk", msg.data) for topic, _, msg, _ in bag_messages() if topic == TEXT_TOPIC
    ]


def test_loop_plays_again_until_stopped(node, mcap_bag):
    collector, stop, result = both_topics(node), threading.Event(), []
    player = threading.Thread(target=lambda: result.append(
        play(mcap_bag, rate=4.0, loop=True, wait_for_subscribers=TIMEOUT_S, stop_event=stop)))
    player.start()
    try:
        items = collector.wait_for(2 * COUNT)
    finally:
        stop.set()
        player.join(timeout=TIMEOUT_S)
    assert not player.is_alive() and result[0] >= 2 * COUNT
    # per topic: the next pass starts at once, so two topics' writers may swap the messages at the seam
    for topic in (IMAGE_TOPIC, TEXT_TOPIC):
        arrived = [msg for t, msg, _ in items if t == topic][: COUNT]
        assert arrived == [msg for t, _, msg, _ in bag_messages() if t == topic] * 2


def test_start_paused_creates_publishers_and_waits_for_resume(node, mcap_bag):
    collector, resume, result = both_topics(node), threading.Event(), []
    player = threading.Thread(target=lambda: result.append(
        play(mcap_bag, start_paused=True, resume_event=resume, wait_for_subscribers=TIMEOUT_S)))
    player.start()
    try:
        wait_until(lambda: node.count_publishers(IMAGE_TOPIC) == 1 and node.count_publishers(TEXT_TOPIC) == 1)
        assert collector.items == []
    finally:
        resume.set()
        player.join(timeout=TIMEOUT_S)
    assert result == [COUNT]
    assert_same_messages(collector.wait_for(COUNT), bag_messages())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_what_play_publishes(node, mcap_bag, tmp_path, storage):
    out, result = tmp_path / "recorded", []
    topics = {IMAGE_TOPIC: IMAGE_TYPE, TEXT_TOPIC: TEXT_TYPE, "/silent": TEXT_TYPE}
    recorder = threading.Thread(target=lambda: result.append(
        record(out, topics, max_messages=COUNT, duration=TIMEOUT_S, storage=storage)))
    recorder.start()
    try:
        assert play(mcap_bag, wait_for_subscribers=TIMEOUT_S) == COUNT
    finally:
        recorder.join(timeout=TIMEOUT_S)
    assert result == [COUNT]

    classes = {IMAGE_TYPE: Image, TEXT_TYPE: String}
    with Reader(out) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == topics
        recorded = [(c.topic, deserialize_message(raw, classes[c.msgtype]), t_ns)
                    for c, t_ns, raw in reader.messages()]
    assert [(topic, msg) for topic, msg, _ in recorded] == [(topic, msg) for topic, _, msg, _ in bag_messages()]
    stamps = [t_ns for _, _, t_ns in recorded]
    assert stamps == sorted(stamps) and abs(time.time_ns() - stamps[-1]) < 60e9  # receive time, not bag time


def test_missing_or_unreadable_bag_is_a_clear_error(tmp_path):
    with pytest.raises(BagError, match="bag not found: .*nowhere"):
        play(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="cannot read bag .*empty"):
        play(tmp_path / "empty")


def test_unknown_message_type_names_topic_and_type(tmp_path):
    path = tmp_path / "odd"
    with Writer(path, version=9) as writer:
        connection = writer.add_connection(
            "/thing", "fake_pkg/msg/Thing", msgdef="int32 x", rihs01="RIHS01_" + "0" * 64)
        writer.write(connection, T0_NS, b"\x00\x01\x00\x00\x2a\x00\x00\x00")
    with pytest.raises(BagError, match="fake_pkg/msg/Thing on topic /thing"):
        play(path)
    with pytest.raises(BagError, match="not in bag"):
        play(path, topics=["/other"])


def test_package_messages_come_from_msg_files(tmp_path):
    (tmp_path / "Segmentation.msg").write_text("string expression\nfloat32 confidence\nsensor_msgs/Image mask\n")
    (tmp_path / "SegmentationArray.msg").write_text("std_msgs/Header header\nSegmentation[] segmentations\n")
    store = get_typestore(Stores.ROS2_KILTED)
    add_package_types(store, "mllmseg_ros/msg/SegmentationArray", msg_dirs=[tmp_path])
    msgdef, _ = store.generate_msgdef("mllmseg_ros/msg/SegmentationArray", ros_version=2)
    assert "mllmseg_ros/Segmentation" in msgdef and store.hash_rihs01("mllmseg_ros/msg/SegmentationArray")
    with pytest.raises(BagError, match="no message definition for mllmseg_ros/msg/Nothing"):
        add_package_types(store, "mllmseg_ros/msg/Nothing", msg_dirs=[tmp_path])


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["play", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"mllmseg-ros: error: bag not found: {tmp_path / 'nowhere'}"
    assert main(["play", str(tmp_path), "--remap", "/a=/b"]) == 2
    assert "expected FROM:=TO" in capsys.readouterr().err
    assert parse_remap(["a:=/b", "/c:=d"]) == {"/a": "/b", "/c": "/d"}
