#!/usr/bin/env python3
"""Node overhead: time from image publish to SegmentationArray receipt, minus the engine's own time.

The engine's time is what the node reports in the array (``preprocess_ms + inference_ms + postprocess_ms``); the rest
is the ROS layer (DDS transport both ways, image conversion, hand-over to the worker, message building). The
``echo-baseline`` mode measures the transport alone: a node that answers each image with one mask and no model. Frames are sent one at a time
(the next after the previous answer), so nothing queues. A small random-weight model keeps the engine time short,
which makes the overhead the visible part; the overhead does not depend on the model.

    .venv/bin/python benchmarks/bench_node.py --frames 100 --sizes 640x480,1280x720 --modes in-process,cross-process
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from mllmseg_ros.msg import SegmentationArray  # noqa: E402
from mllmseg_ros.tools.node_driver import tiny_checkpoint  # noqa: E402

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def frame(width: int, height: int, stamp: int) -> Image:
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
    msg.header.frame_id = "camera"
    msg.data = np.random.default_rng(stamp).integers(0, 255, height * width * 3, dtype=np.uint8).tobytes()
    return msg


class Client:
    def __init__(self) -> None:
        self.node = rclpy.create_node("bench_client")
        self.image = self.node.create_publisher(Image, "/image", RELIABLE)
        self.command = self.node.create_publisher(String, "/command", RELIABLE)
        self.received = threading.Event()
        self.last: tuple[float, SegmentationArray] | None = None
        self.node.create_subscription(SegmentationArray, "/mllmseg_node/segmentations", self._on_array, RELIABLE)

    def _on_array(self, msg: SegmentationArray) -> None:
        self.last = (time.perf_counter(), msg)
        self.received.set()

    def measure(self, width: int, height: int, frames: int, warmup: int = 5) -> dict:
        rows = []
        for index in range(frames + warmup):
            msg = frame(width, height, index + 1)
            self.received.clear()
            sent = time.perf_counter()
            self.image.publish(msg)
            if not self.received.wait(60):
                raise RuntimeError("no answer within 60 s")
            received, array = self.last
            if index >= warmup:
                end_to_end = (received - sent) * 1e3
                engine = array.preprocess_ms + array.inference_ms + array.postprocess_ms
                rows.append((end_to_end, engine, array.postprocess_ms))
        e2e, engine, post = (np.array(c) for c in zip(*rows))
        overhead = e2e - engine
        return {
            "size": f"{width}x{height}", "frames": frames,
            "end_to_end_ms": float(np.median(e2e)), "engine_ms": float(np.median(engine)),
            "postprocess_ms": float(np.median(post)), "overhead_ms": float(np.median(overhead)),
            "overhead_fraction": float(np.median(overhead / np.maximum(engine, 1e-3))),
            "target_ms": float(0.10 * np.median(engine) + 5.0),
        }


class EchoNode:
    """Baseline: answers each image at once with a SegmentationArray holding one full-size mono8 mask, no model.
    Its round trip is the DDS transport cost that any node publishing masks pays."""

    def __init__(self) -> None:
        from mllmseg_ros.msg import Segmentation
        from mllmseg_ros.ros.conversions import image_to_rgb, mono8_image

        self.node = rclpy.create_node("mllmseg_node")
        publisher = self.node.create_publisher(SegmentationArray, "/mllmseg_node/segmentations", RELIABLE)

        def on_image(msg: Image) -> None:
            rgb = image_to_rgb(msg)
            mask = mono8_image(rgb[:, :, 0] > 127, msg.header)
            publisher.publish(SegmentationArray(header=msg.header, segmentations=[Segmentation(mask=mask)]))

        self.node.create_subscription(Image, "image", on_image, RELIABLE)
        self.node.create_subscription(String, "command", lambda msg: None, RELIABLE)


def wait(condition, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the node")
        time.sleep(0.02)


def run(mode: str, checkpoint: Path, sizes: list[tuple[int, int]], frames: int, executor_kind: str) -> list[dict]:
    """``executor_kind`` is this process's executor (client, and the node in-process); the node's own process
    (cross-process) uses what its ``main()`` uses."""
    executor = SingleThreadedExecutor() if executor_kind == "single" else MultiThreadedExecutor()
    client = Client()
    executor.add_node(client.node)
    process = node = None
    params = {"model_path": str(checkpoint), "image_qos": "reliable", "use_depth": False, "no_image_warn_s": 0.0,
              "diagnostics_period_s": 0.0}
    if mode == "echo-baseline":
        node = EchoNode()
        executor.add_node(node.node)
    elif mode == "in-process":
        from mllmseg_ros.ros.node import MLLMSegNode

        node = MLLMSegNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        executor.add_node(node)
        node.trigger_configure()
        node.trigger_activate()
    else:
        args = [f"{k}:={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items()]
        command = [sys.executable, "-m", "mllmseg_ros.ros.node", "--ros-args", "-p", "autostart:=true"]
        for a in args:
            command += ["-p", a]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        wait(lambda: client.image.get_subscription_count() > 0 and client.command.get_subscription_count() > 0)
        client.command.publish(String(data="the red cup"))
        time.sleep(0.5)  # the command reaches the node before the first frame
        return [{"mode": mode, "executor": executor_kind, **client.measure(w, h, frames)} for w, h in sizes]
    finally:
        if node is not None and hasattr(node, "shutdown_worker"):
            node.shutdown_worker()
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        executor.shutdown(timeout_sec=5)
        spinner.join(timeout=5)
        client.node.destroy_node()
        if node is not None:
            (node.node if isinstance(node, EchoNode) else node).destroy_node()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--modes", default="echo-baseline,in-process,cross-process")
    parser.add_argument("--executor", default="single", choices=["single", "multi"],
                        help="rclpy executor of this process (the node's main() uses single; multi shows why)")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp())
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = tiny_checkpoint(Path(folder) / "model")
            results = [r for mode in args.modes.split(",") for r in run(mode, checkpoint, sizes, args.frames, args.executor)]
    finally:
        rclpy.try_shutdown()
    print(f"executor in this process: {args.executor}")
    print(f"{'mode':14} {'size':10} {'e2e ms':>8} {'engine ms':>10} {'post ms':>8} {'overhead ms':>12} {'target ms':>10}")
    for r in results:
        print(f"{r['mode']:14} {r['size']:10} {r['end_to_end_ms']:8.1f} {r['engine_ms']:10.1f} {r['postprocess_ms']:8.1f} "
              f"{r['overhead_ms']:12.1f} {r['target_ms']:10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": platform.processor() or platform.machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
