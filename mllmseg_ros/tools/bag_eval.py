"""``mllmseg-ros bag-eval``: replay a bag through the node and score its answers against ground truth in the bag.

Ground truth format (what the synthetic-scene generator writes): a topic of ``mllmseg_ros/msg/SegmentationArray``
messages whose header stamp equals the stamp of the image they describe, one ``Segmentation`` per target in the
order of the command's targets, with ``found`` and a mono8 ``mask`` (and, when known, ``centroid_3d``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.postprocess import mask_iou
from ..ros.conversions import image_to_rgb, mask_from_mono8, stamp_ns
from .bags import BagError, message_class, open_bag, play

MODEL, TRACKED = "model", "tracked"  # the sources of the node's results (Segmentation.source)


@dataclass
class TargetScore:
    command: str
    expression: str
    frames: int = 0
    answered: int = 0
    found_correct: int = 0
    ious: list[float] = field(default_factory=list)  # frames where the target is present
    centroid_errors_mm: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def row(self) -> dict:
        mean = lambda values: float(np.mean(values)) if values else None  # noqa: E731
        return {
            "command": self.command,
            "expression": self.expression,
            "frames": self.frames,
            "answered": self.answered,
            "found_accuracy": self.found_correct / self.answered if self.answered else None,
            "mean_iou": mean(self.ious),
            "centroid_error_mm": float(np.median(self.centroid_errors_mm)) if self.centroid_errors_mm else None,
            "latency_ms": float(np.median(self.latencies_ms)) if self.latencies_ms else None,
        }


def read_ground_truth(bag: Path, topic: str) -> dict[int, object]:
    from rclpy.serialization import deserialize_message

    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"ground-truth topic {topic} is not in {bag}")
        cls = message_class(connections[0].msgtype, topic)
        return {stamp_ns(msg.header): msg for msg in (deserialize_message(raw, cls) for _, _, raw in reader.messages(connections))}


def score(ground_truth: dict[int, object], answers: dict[int, object]) -> list[TargetScore]:
    """Per (command, target) scores; frames the node skipped (latest-frame policy) count as not answered."""
    scores: dict[tuple[str, int], TargetScore] = {}
    for stamp, truth in sorted(ground_truth.items()):
        answer = answers.get(stamp)
        for index, expected in enumerate(truth.segmentations):
            key = (truth.command, index)
            entry = scores.setdefault(key, TargetScore(truth.command, expected.expression))
            entry.frames += 1
            if answer is None or index >= len(answer.segmentations):
                continue
            predicted = answer.segmentations[index]
            entry.answered += 1
            entry.latencies_ms.append(answer.total_ms)
            entry.found_correct += int(predicted.found == expected.found)
            if expected.found:
                entry.ious.append(mask_iou(mask_from_mono8(predicted.mask), mask_from_mono8(expected.mask)) if predicted.found else 0.0)
                if predicted.centroid_3d_valid and (expected.centroid_3d.z > 0):
                    a, b = predicted.centroid_3d, expected.centroid_3d
                    entry.centroid_errors_mm.append(1000 * float(np.linalg.norm([a.x - b.x, a.y - b.y, a.z - b.z])))
    return list(scores.values())


def evaluate_bag(bag: str | Path, model_path: str | Path, ground_truth_topic: str = "/ground_truth", **options) -> list[TargetScore]:
    """Run the node in this process on the bag's images/commands and score the model's answers (options: those of
    ``evaluate_bag_by_source``). rclpy must be initialised by the caller."""
    return evaluate_bag_by_source(bag, model_path, ground_truth_topic, **options)[MODEL]


def evaluate_bag_by_source(
    bag: str | Path,
    model_path: str | Path,
    ground_truth_topic: str = "/ground_truth",
    remap: dict[str, str] | None = None,
    rate: float = 1.0,
    node_parameters: dict | None = None,
    settle_s: float = 30.0,
    overlay_dir: str | Path | None = None,
    answer_delay_s: float = 0.0,
) -> dict[str, list[TargetScore]]:
    """Run the node in this process on the bag's images/commands (topics ``image``, ``depth``, ``camera_info``,
    ``command`` after ``remap``) and score its answers: ``MODEL`` the model's own, ``TRACKED`` those carried between
    answers (node parameter ``tracking``). With ``overlay_dir``, the node's overlay images are saved there as
    ``<stamp>.png``. ``answer_delay_s`` holds each model answer back that long, as a slower model or machine would
    (the demo model answers in tens of milliseconds on a CPU). rclpy must be initialised by the caller."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from ..msg import SegmentationArray
    from ..ros.node import MLLMSegNode

    bag = Path(bag)
    truth = read_ground_truth(bag, ground_truth_topic)
    parameters = {"model_path": str(model_path), "image_qos": "reliable", "no_image_warn_s": 0.0, **(node_parameters or {})}
    node = MLLMSegNode(parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
    answers: dict[str, dict[int, object]] = {MODEL: {}, TRACKED: {}}
    lock = threading.Lock()

    def on_answer(msg) -> None:
        tracked = bool(msg.segmentations) and msg.segmentations[0].source == msg.segmentations[0].SOURCE_TRACKED
        with lock:
            answers[TRACKED if tracked else MODEL][stamp_ns(msg.header)] = msg

    from rclpy import create_node

    listener = create_node("mllmseg_bag_eval")
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    listener.create_subscription(SegmentationArray, "/mllmseg_node/segmentations", on_answer, reliable)
    if overlay_dir is not None:
        import cv2
        from sensor_msgs.msg import Image

        overlay_dir = Path(overlay_dir)
        overlay_dir.mkdir(parents=True, exist_ok=True)

        def on_overlay(msg) -> None:
            rgb = image_to_rgb(msg)
            cv2.imwrite(str(overlay_dir / f"{stamp_ns(msg.header):020d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

        listener.create_subscription(Image, "/mllmseg_node/overlay", on_overlay, reliable)
    executor = SingleThreadedExecutor()  # as the node's main() (see there why)
    executor.add_node(node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        node.trigger_configure()
        if node.settings is None:
            raise BagError(f"the node could not load the model from {model_path}")
        if answer_delay_s > 0:
            _hold_back(node.segmenter, answer_delay_s)
        node.trigger_activate()
        topics = [t for t in _bag_topics(bag) if t != ground_truth_topic]
        play(bag, rate=rate, remap=remap, topics=topics, wait_for_subscribers=10.0)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and node.streams and node.streams[0].slot.peek() is not None:
            time.sleep(0.05)
        time.sleep(0.5)  # the last answer in flight
    finally:
        node.shutdown_worker()
        executor.shutdown(timeout_sec=5)
        spinner.join(timeout=5)
        node.destroy_node()
        listener.destroy_node()
    with lock:
        return {source: score(truth, dict(found)) for source, found in answers.items()}


def _hold_back(segmenter, delay_s: float) -> None:
    answer = segmenter.segment_batch

    def held_back(*args, **kwargs):
        time.sleep(delay_s)
        return answer(*args, **kwargs)

    segmenter.segment_batch = held_back


def _bag_topics(bag: Path) -> list[str]:
    with open_bag(bag) as reader:
        return sorted({c.topic for c in reader.connections})


def format_scores(scores: list[TargetScore]) -> str:
    header = ("command", "expression", "answered", "found acc", "mean IoU", "3D err mm", "latency ms")
    rows = [header]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for entry in scores:
        r = entry.row()
        rows.append(
            (r["command"], r["expression"], f"{r['answered']}/{r['frames']}", fmt(r["found_accuracy"], ".2f"),
             fmt(r["mean_iou"], ".3f"), fmt(r["centroid_error_mm"], ".0f"), fmt(r["latency_ms"], ".0f"))
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
