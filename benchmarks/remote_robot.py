#!/usr/bin/env python3
"""The robot's side of bench_remote.py: a camera and a planner in one process, and the analysis of what it saw.

The camera publishes colour (rgb8, or JPEG quality 80 on image/compressed), depth (16UC1, or image_transport's
compressedDepth PNG on depth/compressedDepth) and camera_info at --fps, reliable like a camera driver's publishers,
stamped with the wall clock; the frames are the synthetic tabletop scenes with a depth camera's noise, encoded once.
The planner publishes the scripted commands (latched or volatile), and every result and /diagnostics is recorded.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def frames(width: int, height: int, colour: str, depth: str) -> list[tuple]:
    """(colour message, depth message) for four scenes, encoded as the camera sends them."""
    from std_msgs.msg import Header

    from bench_link import sensor_depth
    from mllmseg_ros.data.scenes import Camera, make_scene
    from mllmseg_ros.ros.compact import compressed_overlay
    from mllmseg_ros.ros.compressed_depth import encode_compressed_depth
    from mllmseg_ros.ros.conversions import depth_mm_image, rgb_image

    rng = np.random.default_rng(0)
    made = []
    for seed in range(4):
        scene = make_scene(seed, Camera(width, height))
        depth_mm = sensor_depth(scene.depth_mm, rng)
        colour_msg = compressed_overlay(scene.image, Header(), 80) if colour == "jpeg" else rgb_image(scene.image, Header())
        depth_msg = encode_compressed_depth(depth_mm, "16UC1") if depth == "png" else depth_mm_image(depth_mm, Header())
        made.append((colour_msg, depth_msg, scene.camera.k))
    return made


def robot(args) -> None:
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from std_msgs.msg import String

    from mllmseg_ros.msg import Segmentation, SegmentationArray

    width, height = (int(v) for v in args.size.split("x"))
    made = frames(width, height, args.colour, args.depth)
    rclpy.init()
    node = rclpy.create_node("robot")
    driver_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # image_transport's default
    colour_pub = (node.create_publisher(CompressedImage, "/image/compressed", driver_qos) if args.colour == "jpeg"
                  else node.create_publisher(Image, "/image", driver_qos))
    depth_pub = (node.create_publisher(CompressedImage, "/depth/compressedDepth", driver_qos) if args.depth == "png"
                 else node.create_publisher(Image, "/depth", driver_qos))
    info_pub = node.create_publisher(CameraInfo, "/camera_info", driver_qos)
    command_qos = QoSProfile(depth=1 if args.latched else 10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if args.latched else DurabilityPolicy.VOLATILE)
    command_pub = node.create_publisher(String, "/command", command_qos)
    log = {"arrivals": [], "commands": [], "diagnostics": {}, "frames_sent": 0, "payload_bytes": 0}
    from rclpy.serialization import serialize_message

    frame_bytes = [sum(len(serialize_message(m)) for m in (c, d, CameraInfo(width=width, height=height, k=k)))
                   for c, d, k in made]

    def on_array(msg: SegmentationArray) -> None:
        first = msg.segmentations[0] if msg.segmentations else None
        log["arrivals"].append({"received": time.time(), "stamp": msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                                "command": msg.command,
                                "tracked": bool(first and first.source == Segmentation.SOURCE_TRACKED)})

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            log["diagnostics"] = {kv.key: kv.value for kv in status.values}

    results_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT if args.results_best_effort
                             else ReliabilityPolicy.RELIABLE)
    node.create_subscription(SegmentationArray, "/mllmseg_node/segmentations", on_array, results_qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    from mllmseg_ros.msg import CommandStatus

    log["statuses"] = []  # the command each ~/command_status answers: what reached the node
    node.create_subscription(CommandStatus, "/mllmseg_node/command_status", lambda msg: log["statuses"].append(msg.command),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 60
    while colour_pub.get_subscription_count() == 0 or command_pub.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("robot: the node never subscribed across the link")
        time.sleep(0.1)
    time.sleep(1.0)  # the node's image_qos matching settles
    script = sorted((float(at), text) for at, text in json.loads(args.script))
    start, start_wall = time.monotonic(), time.time()
    log["start"] = start_wall
    print(f"stream starts at {start}", flush=True)
    period, index = 1.0 / args.fps, 0
    while (now := time.monotonic()) < start + args.seconds:
        while script and script[0][0] <= now - start:
            text = script.pop(0)[1]
            command_pub.publish(String(data=text))
            log["commands"].append({"sent": time.time(), "text": text})
        colour_msg, depth_msg, k = made[index % len(made)]
        wall = time.time()
        header_stamp = Time(sec=int(wall), nanosec=int((wall % 1) * 1e9))
        for msg in (colour_msg, depth_msg):
            msg.header.stamp, msg.header.frame_id = header_stamp, "camera_color_optical_frame"
        info = CameraInfo(width=width, height=height, k=k)
        info.header = colour_msg.header
        depth_pub.publish(depth_msg)
        info_pub.publish(info)
        colour_pub.publish(colour_msg)
        log["frames_sent"] += 1
        log["payload_bytes"] += frame_bytes[index % len(made)]
        index += 1
        time.sleep(max(0.0, start + index * period - time.monotonic()))
    log["stream_seconds"] = time.monotonic() - start  # longer than asked when publishing blocked
    time.sleep(3.0)  # results still on their way
    log["end"] = time.time()
    Path(args.out + ".part").write_text(json.dumps(log))
    Path(args.out + ".part").replace(args.out)  # whole or not at all: bench_remote.py waits for this file
    executor.shutdown(timeout_sec=5)
    node.destroy_node()
    rclpy.try_shutdown()


def analyse(log: dict, outage: tuple[float, float] | None) -> dict:
    """The figures of one run (see bench_remote.py), from the robot's log."""
    arrivals, commands = log["arrivals"], log["commands"]
    model = [a for a in arrivals if not a["tracked"]]
    latency = [1e3 * (a["received"] - a["stamp"]) for a in model]
    down = (log["start"] + outage[0], log["start"] + outage[0] + outage[1]) if outage else None
    lost, stop_latency, late, active, tracked, answers, recovery = [], [], 0, 0.0, 0, 0, None
    for i, command in enumerate(commands):
        begin = command["sent"]
        end = commands[i + 1]["sent"] if i + 1 < len(commands) else log["end"]
        after = [a for a in arrivals if begin <= a["received"] < end]
        if command["text"] == "stop":
            stop_latency.append(max((a["received"] - begin for a in after), default=0.0))
            late += sum(a["received"] > begin + 1.0 for a in after)
            continue
        answered = [a for a in arrivals if a["command"] == command["text"] and a["received"] >= begin]
        if not answered:
            lost.append(command["text"])
        if down and down[0] <= begin < down[1]:
            recovery = min((a["received"] for a in answered), default=None)
            recovery = recovery - down[1] if recovery is not None else None
            continue
        span = end - begin - (max(0.0, min(end, down[1]) - max(begin, down[0])) if down else 0.0)
        active += span
        tracked += sum(a["tracked"] for a in after)
        answers += sum(not a["tracked"] for a in after)

    def pct(values, q):
        return float(np.percentile(values, q)) if values else float("nan")

    return {
        "answer_latency_ms_p50": pct(latency, 50), "answer_latency_ms_p95": pct(latency, 95),
        "tracked_per_s": tracked / active if active else 0.0, "answers_per_s": answers / active if active else 0.0,
        "commands_sent": len(commands), "commands_not_answered": lost,
        "stop_latency_s_max": max(stop_latency, default=float("nan")), "results_over_1s_after_stop": late,
        "outage_command_answered_s_after_link_up": recovery,
        "frames_sent": log["frames_sent"], "frames_received_by_node": int(log["diagnostics"].get("frames_received", -1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--colour", choices=["raw", "jpeg"], default="raw")
    parser.add_argument("--depth", choices=["raw", "png"], default="raw")
    parser.add_argument("--latched", action="store_true")
    parser.add_argument("--results-best-effort", action="store_true")
    parser.add_argument("--script", required=True, help="JSON list of [seconds, command]")
    robot(parser.parse_args())


if __name__ == "__main__":
    main()
