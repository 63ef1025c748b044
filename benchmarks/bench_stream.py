#!/usr/bin/env python3
"""The node end to end under a camera's stream: colour, depth and camera_info at a camera's rate, one command.

A camera process publishes rgb8 colour and 16UC1 depth (same size) and camera_info at ``--fps``, stamped with the wall
clock, sends one command, and records when each result arrives. The node runs in this process with a random-weight
model of a released shape, built here rather than loaded from disk (``load_segmenter`` is replaced; the rest of the
node is what ``mllmseg_node`` runs). Both processes use the shipped Fast DDS shared-memory profile. Reported:

  latency      frame stamp -> result received in the camera process, model answers only (p50, p95, max)
  answers/s    model answers per second; tracked/s: tracked results (between answers) per second
  engine ms    the engine's own time per answer (preprocess + inference + post-process, from the results)
  dropped      frames the node replaced by a newer one before the model took them
  peak CUDA MB torch.cuda.max_memory_allocated() of the node's process

    python3 benchmarks/bench_stream.py --shape 1b --device cuda --dtype bf16 --size 1280x720 --fps 30 --seconds 15
    .venv/bin/python benchmarks/bench_stream.py --shape tiny --seconds 5        # a CPU check of the benchmark itself
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
COMMAND = "the red cup"


def camera(args: argparse.Namespace) -> None:
    """The camera and the planner: publish the stream, send the command, log each result's arrival."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    from mllmseg_ros.msg import Segmentation, SegmentationArray

    width, height = (int(v) for v in args.size.split("x"))
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, "/image", reliable)
    depth_pub = node.create_publisher(Image, "/depth", reliable)
    info_pub = node.create_publisher(CameraInfo, "/camera_info", reliable)
    command_pub = node.create_publisher(String, "/command", reliable)
    arrivals: list[dict] = []

    def on_array(msg: SegmentationArray) -> None:
        received = time.time()
        first = msg.segmentations[0] if msg.segmentations else None
        arrivals.append({"received": received, "stamp": msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                         "tracked": bool(first and first.source == Segmentation.SOURCE_TRACKED),
                         "engine_ms": msg.preprocess_ms + msg.inference_ms + msg.postprocess_ms,
                         "total_ms": msg.total_ms, "centroid_3d_valid": bool(first and first.centroid_3d_valid)})

    node.create_subscription(SegmentationArray, "/mllmseg_node/segmentations", on_array, reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    rng = np.random.default_rng(0)
    colours = [rng.integers(0, 255, (height, width, 3), dtype=np.uint8).tobytes() for _ in range(4)]
    depth = (800 + rng.integers(0, 50, (height, width))).astype(np.uint16).tobytes()
    deadline = time.monotonic() + 60
    while image_pub.get_subscription_count() == 0 or command_pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("camera: the node never subscribed")
        time.sleep(0.05)
    command_pub.publish(String(data=COMMAND))
    time.sleep(0.3)
    period, start = 1.0 / args.fps, time.monotonic()
    frames = int((args.warmup + args.seconds) * args.fps)
    for index in range(frames):
        time.sleep(max(0.0, start + index * period - time.monotonic()))
        now = time.time()
        stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
        image = Image(height=height, width=width, encoding="rgb8", step=3 * width, data=colours[index % len(colours)])
        image.header.stamp, image.header.frame_id = stamp, "camera_color_optical_frame"
        depth_msg = Image(height=height, width=width, encoding="16UC1", step=2 * width, data=depth)
        depth_msg.header = image.header
        info = CameraInfo(height=height, width=width, k=[600.0, 0, width / 2, 0, 600.0, height / 2, 0, 0, 1])
        info.header = image.header
        depth_pub.publish(depth_msg)
        info_pub.publish(info)
        image_pub.publish(image)
    time.sleep(2.0)  # answers still under way
    Path(args.out).write_text(json.dumps({"start": time.time() - (time.monotonic() - start), "frames": frames,
                                          "arrivals": arrivals}))
    executor.shutdown(timeout_sec=5)
    spinner.join(timeout=5)
    node.destroy_node()
    rclpy.try_shutdown()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(log: dict, args: argparse.Namespace) -> dict:
    """Latencies and rates over the measured window (after the warm-up)."""
    window_start = log["start"] + args.warmup
    window_end = window_start + args.seconds
    arrivals = [a for a in log["arrivals"] if window_start <= a["stamp"] < window_end]
    model = [a for a in arrivals if not a["tracked"]]
    latency = [1e3 * (a["received"] - a["stamp"]) for a in model]
    return {
        "frames_sent_per_s": args.fps, "answers_per_s": len(model) / args.seconds,
        "tracked_per_s": (len(arrivals) - len(model)) / args.seconds,
        "latency_ms_p50": percentile(latency, 50), "latency_ms_p95": percentile(latency, 95),
        "latency_ms_max": max(latency, default=float("nan")),
        "engine_ms_p50": statistics.median(a["engine_ms"] for a in model) if model else float("nan"),
        "node_total_ms_p50": statistics.median(a["total_ms"] for a in model) if model else float("nan"),
        "centroid_3d_valid_share": sum(a["centroid_3d_valid"] for a in model) / max(1, len(model)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="tiny")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window, after --warmup")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of stream before measuring (captures)")
    parser.add_argument("--no-cuda-graphs", action="store_true")
    parser.add_argument("--role", default="node", choices=["node", "camera"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp())
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_shm.xml"))
    if args.role == "camera":
        camera(args)
        return

    import rclpy
    import torch
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from bench_engine import build_segmenter
    from bench_model import DTYPES, machine_info
    from mllmseg_ros.ros import node as node_module
    from mllmseg_ros.ros.engine_setup import apply_options

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        segmenter = build_segmenter(args.shape, DTYPES[args.dtype], args.device, Path(folder),
                                    cuda_graphs=not args.no_cuda_graphs)
        build_s = time.perf_counter() - started

        def load_segmenter(settings, announce):  # the model built above instead of a checkpoint read from disk
            apply_options(segmenter.options, settings)
            return segmenter

        node_module.load_segmenter = load_segmenter
        rclpy.init()
        params = {"model_path": f"random {args.shape}", "device": args.device, "image_qos": "auto",
                  "diagnostics_period_s": 0.0, "no_image_warn_s": 0.0}
        node = node_module.MLLMSegNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        node.trigger_configure()
        node.trigger_activate()
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        log_path = Path(folder) / "camera.json"
        camera_args = [sys.executable, __file__, "--role", "camera", "--out", str(log_path), "--size", args.size,
                       "--fps", str(args.fps), "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
        try:
            subprocess.run(camera_args, check=True, timeout=args.warmup + args.seconds + 120)
            counters = node.counters()
        finally:
            node.shutdown_worker()
            executor.shutdown(timeout_sec=5)
            node.destroy_node()
            rclpy.try_shutdown()
        summary = summarise(json.loads(log_path.read_text()), args)
    summary.update({"dropped": counters["dropped"], "received": counters["received"], "processed": counters["processed"],
                    "model_build_s": build_s})
    if args.device.startswith("cuda"):
        summary["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(f"stream {args.size} at {args.fps:g} fps, shape {args.shape} {args.dtype} on {args.device}"
          f"{' (no CUDA graphs)' if args.no_cuda_graphs else ''}")
    for key, value in summary.items():
        print(f"  {key:24} {value:10.2f}" if isinstance(value, float) else f"  {key:24} {value:>10}")
    if args.json:
        report = {"settings": vars(args), "machine": machine_info(torch.device(args.device)), "results": summary}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
