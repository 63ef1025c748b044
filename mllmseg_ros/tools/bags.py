"""Play and record rosbag2 folders without rosbag2 (it is not on pip): ``rosbags`` reads and writes the files
(sqlite3 ``.db3`` or ``.mcap``), rclpy publishes and subscribes. Bags written here play with ``ros2 bag play``.

rclpy must be initialised by the caller (``ros_session`` does it for the command line).
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.publisher import Publisher
    from rclpy.qos import QoSProfile
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

PACKAGE = "mllmseg_ros"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
RELIABILITIES = ("reliable", "best_effort")
QUEUE_DEPTH = 10
ACK_TIMEOUT_S = 1.0  # after the last message, how long reliable publishers wait for subscribers to acknowledge
GRAPH_POLL_S = 0.1  # how often record looks for publishers of topics it is not subscribed to yet


class BagError(ValueError):
    """A bag that cannot be read or written, or a message type without a class or definition."""


def message_class(msgtype: str, topic: str = "") -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy class ``sensor_msgs.msg.Image`` (rosidl_runtime_py is not on pip)."""
    module, _, name = msgtype.rpartition("/")
    module = module.replace("/", ".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        where = f" on topic {topic}" if topic else ""
        raise BagError(f"unknown message type {msgtype}{where}: cannot import {module}.{name}") from None


def package_msg_dirs() -> list[Path]:
    """Where this package's .msg files live: the source tree, then install prefixes (a venv, colcon's install/)."""
    prefixes = [sys.prefix, *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    source = Path(__file__).resolve().parents[2] / "msg"
    return [source, *(Path(p) / "share" / PACKAGE / "msg" for p in prefixes if p)]


def add_package_types(store: Typestore, msgtype: str, msg_dirs: Iterable[Path] | None = None) -> None:
    """Make sure ``store`` knows ``msgtype``: the Kilted store has the standard messages, ours (``mllmseg_ros/msg/*``)
    are parsed from the first folder of .msg files found; rosbags needs them for a connection's msgdef and type hash."""
    if msgtype in store.fielddefs:
        return
    if msgtype.startswith(f"{PACKAGE}/"):
        for folder in msg_dirs if msg_dirs is not None else package_msg_dirs():
            if folder.is_dir():
                types: dict[str, Any] = {}
                for file in sorted(folder.glob("*.msg")):  # all at once: messages may refer to each other
                    types.update(get_types_from_msg(file.read_text(), f"{PACKAGE}/msg/{file.stem}"))
                store.register(types)
                break
    if msgtype not in store.fielddefs:
        raise BagError(f"no message definition for {msgtype}")


class BagWriter:
    """A rosbag2 folder being written: one connection per (topic, type), made on first use or up front for
    ``topics`` (``{topic: msgtype}``, checked before the folder is created). Close it to finish."""

    def __init__(self, path: str | Path, storage: str = "mcap", topics: dict[str, str] | None = None) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGES)}")
        self.path = Path(path)
        self._store = get_typestore(Stores.ROS2_KILTED)
        for msgtype in (topics or {}).values():
            add_package_types(self._store, msgtype)
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f"cannot write bag {self.path}: {exc}") from None
        self._connections: dict[tuple[str, str], Connection] = {}
        for topic, msgtype in (topics or {}).items():
            self.connect(topic, msgtype)

    def connect(self, topic: str, msgtype: str) -> Connection:
        key = (topic, msgtype)
        if key not in self._connections:
            add_package_types(self._store, msgtype)
            self._connections[key] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        return self._connections[key]

    def write(self, topic: str, msgtype: str, data: bytes, t_ns: int) -> None:
        """``data``: the message as CDR bytes; ``t_ns``: its bag timestamp in ns."""
        self._writer.write(self.connect(topic, msgtype), t_ns, data)

    def close(self) -> None:
        self._writer.close()  # writes metadata.yaml: without it the folder is not a bag


def write_bag(path: str | Path, messages: Iterable[tuple[str, str, Any, int]], storage: str = "mcap") -> int:
    """Write ``(topic, msgtype, rclpy message, t_ns)`` tuples to a new rosbag2 folder; returns the message count."""
    from rclpy.serialization import serialize_message

    bag = BagWriter(path, storage)
    count = 0
    try:
        for topic, msgtype, msg, t_ns in messages:
            bag.write(topic, msgtype, serialize_message(msg), t_ns)
            count += 1
    finally:
        bag.close()
    return count


@contextmanager
def open_bag(path: str | Path) -> Iterator[Reader]:
    """An open rosbags Reader for a rosbag2 folder (or a single .db3/.mcap file), errors as ``BagError``."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError) as exc:
        raise BagError(f"cannot read bag {path}: {exc}") from None
    try:
        yield reader
    finally:
        reader.close()


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


def parse_remap(rules: Iterable[str]) -> dict[str, str]:
    """``["/a:=/b", ...]`` (the ``ros2 bag play --remap`` syntax) -> ``{"/a": "/b"}``."""
    remap = {}
    for rule in rules:
        source, sep, target = rule.partition(":=")
        if not (sep and source and target):
            raise ValueError(f"bad remap {rule!r}; expected FROM:=TO")
        remap[_absolute(source)] = _absolute(target)
    return remap


def _qos(reliability: str) -> QoSProfile:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    if reliability not in RELIABILITIES:
        raise ValueError(f"unknown reliability {reliability!r}; expected one of {', '.join(RELIABILITIES)}")
    return QoSProfile(depth=QUEUE_DEPTH, reliability=ReliabilityPolicy[reliability.upper()])


def _wait_for_subscribers(publishers: Iterable[Publisher], timeout_s: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout_s
    while any(p.get_subscription_count() == 0 for p in publishers) and time.monotonic() < deadline:
        if stop.wait(0.01):
            return


class BagClock:
    """Publishes the bag's time on /clock, as ``ros2 bag play --clock`` does, for nodes with use_sim_time.

    Playback at ``rate`` maps monotonic time t to bag time ``first + (t - start) * rate``; the clock is published at
    ``hz`` while waiting for the next message, and once with each message's own time before it goes out.
    """

    def __init__(self, node: Node, hz: float) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._message = Clock
        self.period = 1.0 / hz
        self.publisher = node.create_publisher(Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))

    def publish(self, t_ns: int) -> None:
        msg = self._message()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 10**9)
        self.publisher.publish(msg)


def _wait_until(due: float, stop: threading.Event, clock: BagClock | None, bag_time_ns) -> bool:
    """Wait for monotonic time ``due``, ticking ``clock`` meanwhile; True when stopped."""
    while (remaining := due - time.monotonic()) > 0:
        if stop.wait(remaining if clock is None else min(remaining, clock.period)):
            return True
        if clock is not None:
            clock.publish(bag_time_ns(time.monotonic()))
    return stop.is_set()


def _play_once(reader: Reader, connections: list[Connection], classes: dict[str, type],
               publishers: dict[str, Publisher], rate: float, stop: threading.Event, clock: BagClock | None = None) -> int:
    """One pass over the bag. Each message is due at start + (bag offset / rate) on the monotonic clock: waiting for
    that absolute deadline, not sleeping a gap, keeps deserialize and publish time from adding up as drift."""
    from rclpy.serialization import deserialize_message

    start, first, count = time.monotonic(), None, 0
    for connection, t_ns, raw in reader.messages(connections=connections):
        first = t_ns if first is None else first
        msg = deserialize_message(raw, classes[connection.topic])
        bag_time_ns = lambda now, first=first: first + (now - start) * rate * 1e9  # noqa: E731
        if _wait_until(start + (t_ns - first) / 1e9 / rate, stop, clock, bag_time_ns):
            break
        if clock is not None:
            clock.publish(t_ns)
        publishers[connection.topic].publish(msg)
        count += 1
    return count


def play(bag_path: str | Path, rate: float = 1.0, loop: bool = False, remap: dict[str, str] | None = None,
         topics: list[str] | None = None, start_paused: bool = False, qos_reliability: str = "reliable",
         wait_for_subscribers: float = 0.0, node: Node | None = None, stop_event: threading.Event | None = None,
         resume_event: threading.Event | None = None, clock_hz: float = 0.0) -> int:
    """Publish the messages of a bag with their original spacing divided by ``rate``, like ``ros2 bag play``.

    ``remap``/``topics`` use the bag's topic names. Publishers exist before playback starts; it then waits up to
    ``wait_for_subscribers`` s for every topic to have a subscriber and, with ``start_paused``, for ``resume_event``.
    ``loop`` repeats until ``stop_event`` is set. ``clock_hz`` > 0 publishes the bag time on /clock at that rate
    (``ros2 bag play --clock``), for nodes run with use_sim_time. Returns the number of messages published.
    """
    from rclpy import create_node
    from rclpy.duration import Duration

    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if clock_hz < 0:
        raise ValueError(f"clock rate must not be negative, got {clock_hz}")
    if start_paused and resume_event is None:
        raise ValueError("start_paused needs a resume_event to resume on")
    qos = _qos(qos_reliability)
    remap = {_absolute(k): _absolute(v) for k, v in (remap or {}).items()}
    stop = stop_event or threading.Event()
    with open_bag(bag_path) as reader:
        wanted = {_absolute(t) for t in topics} if topics else {c.topic for c in reader.connections}
        if missing := wanted - {c.topic for c in reader.connections}:
            raise BagError(f"topics not in bag {bag_path}: {', '.join(sorted(missing))}")
        connections = [c for c in reader.connections if c.topic in wanted]
        classes = {c.topic: message_class(c.msgtype, c.topic) for c in connections}
        player = node or create_node("mllmseg_bag_player")
        publishers: dict[str, Publisher] = {}
        clock = None
        try:
            for topic, cls in classes.items():
                publishers[topic] = player.create_publisher(cls, remap.get(topic, topic), qos)
            clock = BagClock(player, clock_hz) if clock_hz > 0 else None
            _wait_for_subscribers(publishers.values(), wait_for_subscribers, stop)
            if start_paused and resume_event is not None:
                while not (resume_event.wait(0.05) or stop.is_set()):
                    pass
            count = 0
            while not stop.is_set():
                played = _play_once(reader, connections, classes, publishers, rate, stop, clock)
                count += played
                if not loop or played == 0:  # an empty bag would loop without end
                    break
            for publisher in publishers.values():  # destroying a writer can drop samples still in flight
                publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
            return count
        finally:
            for publisher in [*publishers.values(), *([clock.publisher] if clock else [])]:
                player.destroy_publisher(publisher)
            if node is None:
                player.destroy_node()


def _subscription_qos(node: Node, topic: str, reliability: str) -> QoSProfile | None:
    """QoS to record ``topic`` with, or None to wait for a publisher; "auto" matches the publishers on the graph."""
    from ..ros.qos import matching_qos

    if reliability != "auto":
        return _qos(reliability)
    return matching_qos(node, topic, QUEUE_DEPTH)


def record(bag_path: str | Path, topics: dict[str, str], duration: float | None = None,
           max_messages: int | None = None, storage: str = "mcap", qos_reliability: str = "auto",
           node: Node | None = None, stop_event: threading.Event | None = None) -> int:
    """Record ``{topic: msgtype}`` to a new bag until ``duration`` s, ``max_messages`` or ``stop_event``.

    Messages are stored as received (CDR) and stamped with their receive time (ns, wall clock, as rosbag2 does).
    With ``qos_reliability="auto"`` a topic is subscribed once a publisher appears, with QoS matching it. A given
    ``node`` must be spun by the caller; without one, record spins its own node in the calling thread. The bag is
    closed properly on any exit, KeyboardInterrupt included. Returns the number of messages recorded.
    """
    from rclpy import create_node
    from rclpy.executors import SingleThreadedExecutor

    if qos_reliability != "auto":
        _qos(qos_reliability)  # validate before creating the bag
    topics = {_absolute(t): msgtype for t, msgtype in topics.items()}
    classes = {topic: message_class(msgtype, topic) for topic, msgtype in topics.items()}
    stop = stop_event or threading.Event()
    done, lock, count = threading.Event(), threading.Lock(), 0

    def on_message(topic: str, raw: bytes) -> None:
        nonlocal count
        received_ns = time.time_ns()
        with lock:  # a caller's multi-threaded executor may run callbacks concurrently
            if done.is_set():
                return
            bag.write(topic, topics[topic], raw, received_ns)
            count += 1
            if max_messages is not None and count >= max_messages:
                done.set()

    recorder = node or create_node("mllmseg_bag_recorder")  # first: without rclpy.init no empty bag is left
    executor = None if node else SingleThreadedExecutor()
    subscriptions, pending = [], dict(topics)
    try:
        bag = BagWriter(bag_path, storage, topics)  # silent topics are in the bag too, as with rosbag2
        try:
            if executor:
                executor.add_node(recorder)
            end = None if duration is None else time.monotonic() + duration
            next_poll = 0.0
            while not (done.is_set() or stop.is_set() or (end is not None and time.monotonic() >= end)):
                if pending and time.monotonic() >= next_poll:
                    for topic in list(pending):
                        if (qos := _subscription_qos(recorder, topic, qos_reliability)) is not None:
                            # raw: the CDR bytes as they came, nothing to deserialize and serialize again
                            subscriptions.append(recorder.create_subscription(
                                classes[topic], topic, partial(on_message, topic), qos, raw=True))
                            del pending[topic]
                    next_poll = time.monotonic() + GRAPH_POLL_S
                if executor:
                    executor.spin_once(timeout_sec=0.05)
                else:
                    done.wait(0.05)
            return count
        finally:
            with lock:
                done.set()
                bag.close()
    finally:
        for subscription in subscriptions:
            recorder.destroy_subscription(subscription)
        if executor:
            executor.shutdown()
            recorder.destroy_node()


@contextmanager
def ros_session() -> Iterator[threading.Event]:
    """rclpy initialised for one command. The first Ctrl-C sets the yielded event, so play/record stop and return
    their count (and a recorded bag is closed); a second Ctrl-C raises KeyboardInterrupt."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        # args=[]: rcl would read our own FROM:=TO arguments from sys.argv as global remap rules;
        # no signal handlers: rclpy's would shut ROS down mid-bag instead of letting play/record finish.
        rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
        try:
            yield stop
        finally:
            rclpy.try_shutdown()
    finally:
        signal.signal(signal.SIGINT, previous)
