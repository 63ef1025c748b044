#!/usr/bin/env python3
"""A stop is never late: the worst delay from sending "stop" to the last result about the old target.

The node runs in its own process with a slow model (``--delay`` seconds added to every inference, as the 1B model on a
CPU or a small Jetson), a camera streams ``--size`` frames at ``--fps``, tracking publishes a result for every frame.
Each trial names a target, waits for its first answer, lets the model start on the next frame, starts a
``~/segment`` call (which waits for the model), then sends "stop" and records for ``--delay`` + 1 s every result and
centroid that still arrives (mllmseg_ros/tools/command_client.py, ``stop_trial``). Target: <= 100 ms, and nothing after it.

    .venv/bin/python benchmarks/bench_stop_latency.py --trials 20 --out benchmarks/results/stop_latency.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="bench_stop_log_"))

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from mllmseg_ros.tools.command_client import CommandClient, stop_trial  # noqa: E402
from mllmseg_ros.tools.node_driver import tiny_checkpoint, wait_for  # noqa: E402
from mllmseg_ros.tools.node_process import params_file, run_node  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--delay", type=float, default=1.5, help="seconds added to every inference")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    rclpy.init()
    executor = SingleThreadedExecutor()
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = tiny_checkpoint(Path(folder) / "model")
        params = params_file(Path(folder), model_path=str(checkpoint), threshold=0.0, no_image_warn_s=0.0,
                             autostart=True, diagnostics_period_s=0.2, use_depth=False, tracking="on",
                             track_rate_hz=args.fps)
        client = CommandClient(width, height)
        executor.add_node(client.node)
        with run_node(["--params-file", str(params)], delay_s=args.delay) as process:
            if not wait_for(lambda: client.image.get_subscription_count() > 0 and client.segment.service_is_ready(), 60):
                raise SystemExit(f"the node did not come up:\n{process.output}")
            client.start_camera(args.fps)
            rng = np.random.default_rng(0)
            trials = []
            for index in range(args.trials):
                trial = stop_trial(client, ("the red cup", "the blue bowl", "the green box")[index % 3], args.delay, rng)
                trials.append(trial)
                print(f"trial {index + 1}: {trial}", flush=True)
            client.stop_camera()
    executor.shutdown()
    rclpy.try_shutdown()
    delays = np.array([t["worst_delay_ms"] for t in trials])
    summary = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "delay_s": args.delay, "fps": args.fps, "size": args.size, "trials": len(trials),
        "worst_delay_ms_max": float(delays.max()), "worst_delay_ms_median": float(np.median(delays)),
        "messages_after_stop_max": max(t["messages_after_stop"] for t in trials),
        "stop_status_ms_max": max(t["stop_status_ms"] for t in trials),
        "stop_status_ms_median": float(np.median([t["stop_status_ms"] for t in trials])),
        "all_mid_inference_with_a_service_call": all(t["answer_in_flight_dropped"] and t["service_running_at_stop"]
                                                     for t in trials),
        "per_trial": trials,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "per_trial"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
