#!/usr/bin/env python3
"""Link budget: bytes per second into and out of the node at a camera's rate, default vs compact forms.

Each message is built as the node or a camera driver builds it and serialised with rclpy (CDR: what DDS carries per
message; RTPS, UDP and IP headers add a few percent, measured on the wire by bench_remote.py). Content:

  colour  scikit-image's photos (astronaut, coffee, chelsea, rocket) resized to the frame size, with a camera's
          sensor noise (sigma 2 grey levels); the median size over the four. Synthetic scenes if scikit-image is
          missing.
  depth   the synthetic tabletop scene's aligned depth (mllmseg_ros.data.scenes) with a depth camera's noise
          (sigma = 1 mm x z^2 in metres, rounded to mm) and holes (2% of the pixels, and object edges): noise-free
          depth compresses far better than a real sensor's
  masks   that scene's object masks (one target: the median object's mask; three: it and the two smallest)

    .venv/bin/python benchmarks/bench_link.py --fps 15 --sizes 640x480,1280x720 --markdown
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geometry_msgs.msg import PointStamped  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mllmseg_ros.data.scenes import Camera, make_scene  # noqa: E402
from mllmseg_ros.engine.postprocess import mask_geometry  # noqa: E402
from mllmseg_ros.engine.visualize import draw_overlay  # noqa: E402
from mllmseg_ros.ros.compact import apply_mask_format, compressed_mask, compressed_overlay  # noqa: E402
from mllmseg_ros.ros.compressed_depth import encode_compressed_depth  # noqa: E402
from mllmseg_ros.ros.conversions import depth_mm_image, mono8_image, rgb_image  # noqa: E402

HEADER = Header(frame_id="camera_color_optical_frame")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def size(msg) -> int:
    return len(serialize_message(msg))


def photos(width: int, height: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    try:
        from skimage import data
        images = [getattr(data, name)() for name in PHOTOS]
    except ImportError:
        images = [make_scene(seed, Camera(width, height)).image for seed in range(4)]
    frames = []
    for image in images:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_CUBIC)
        frames.append(np.clip(image + rng.normal(0, 2.0, image.shape), 0, 255).astype(np.uint8))
    return frames


def sensor_depth(depth_mm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    metres = depth_mm.astype(np.float64) / 1000
    noisy = np.round((metres + rng.normal(0, 1e-3, metres.shape) * metres**2) * 1000)
    noisy[depth_mm == 0] = 0
    edges = cv2.Canny((depth_mm // 8).astype(np.uint8), 10, 30) > 0
    noisy[edges | (rng.random(metres.shape) < 0.02)] = 0
    return np.clip(noisy, 0, 65535).astype(np.uint16)


class Result:
    def __init__(self, mask: np.ndarray) -> None:
        geometry = mask_geometry(mask)
        self.mask, self.found, self.bbox, self.centroid, self.area = mask, True, geometry.bbox, geometry.centroid, geometry.area
        self.expression, self.confidence = "the red cup", 0.9


def result_array(results: list[Result], mask_format: str, frame) -> int:
    from mllmseg_ros.ros.publishing import build_array

    array = build_array(frame, "pick up the red cup", results, None, None, "no depth image", {}, 0.0)
    apply_mask_format(array.segmentations, results, mask_format)
    return size(array)


def measure(width: int, height: int) -> dict[str, float]:
    """Serialised bytes per message (median over the content), keyed by what it is."""
    from mllmseg_ros.ros.buffers import Frame

    rng = np.random.default_rng(1)
    scene = make_scene(3, Camera(width, height), min_objects=6, max_objects=8)
    colour = photos(width, height)
    depth = sensor_depth(scene.depth_mm, rng)
    sizes = {
        "colour rgb8": size(rgb_image(colour[0], HEADER)),
        "colour JPEG q95": statistics.median(size(compressed_overlay(c, HEADER, 95)) for c in colour),
        "colour JPEG q80": statistics.median(size(compressed_overlay(c, HEADER, 80)) for c in colour),
        "depth 16UC1": size(depth_mm_image(depth, HEADER)),
        "depth compressedDepth png": size(encode_compressed_depth(depth, "16UC1", HEADER)),
        "depth compressedDepth rvl": size(encode_compressed_depth(depth, "16UC1", HEADER, codec="rvl")),
        "camera_info": size(CameraInfo(header=HEADER, width=width, height=height, k=scene.camera.k, d=[0.0] * 5,
                                       distortion_model="plumb_bob")),
    }
    masks = sorted((obj.mask for obj in scene.objects if obj.mask.any()), key=lambda m: m.sum())
    ordered = [masks[len(masks) // 2]] + [m for i, m in enumerate(masks) if i != len(masks) // 2]
    frame = Frame(rgb=scene.image, header=HEADER, received=0.0)
    for mask_format in ("image", "png", "none"):
        for targets in (1, 3):
            sizes[f"results {mask_format}, {targets} target{'s' * (targets > 1)}"] = result_array(
                [Result(m) for m in ordered[:targets]], mask_format, frame)
    union = np.logical_or.reduce(ordered[:1])
    sizes["centroid"] = size(PointStamped(header=HEADER))
    sizes["overlay rgb8"] = size(rgb_image(draw_overlay(colour[0], [Result(ordered[0])]), HEADER))
    sizes["overlay JPEG q80"] = statistics.median(size(compressed_overlay(draw_overlay(c, [Result(ordered[0])]), HEADER)) for c in colour)
    sizes["mask mono8"] = size(mono8_image(union, HEADER))
    sizes["mask PNG"] = size(compressed_mask(union, HEADER))
    sizes["command"] = 4 + 4 + len("pick up the red cup") + 1  # CDR header, length, text, NUL
    return sizes


def budget(sizes: dict[str, float], fps: float, targets: int = 1) -> dict[str, dict[str, float]]:
    """Bytes per second in (robot -> node) and out (node -> robot) for the usual set-ups, ``targets`` per command."""
    def results(mask_format: str) -> float:
        return sizes[f"results {mask_format}, {targets} target{'s' * (targets > 1)}"]

    inputs_raw = sizes["colour rgb8"] + sizes["depth 16UC1"] + sizes["camera_info"]
    inputs_compact = sizes["colour JPEG q80"] + sizes["depth compressedDepth png"] + sizes["camera_info"]
    return {
        "defaults (raw colour and depth, full masks)": {
            "in": fps * inputs_raw, "out": fps * (results("image") + sizes["centroid"])},
        "compact (JPEG q80, compressedDepth png, mask_format png)": {
            "in": fps * inputs_compact, "out": fps * (results("png") + sizes["centroid"])},
        "compact, no masks (mask_format none)": {
            "in": fps * inputs_compact, "out": fps * (results("none") + sizes["centroid"])},
        "compact, with ~/overlay/compressed watched": {
            "in": fps * inputs_compact, "out": fps * (results("png") + sizes["centroid"] + sizes["overlay JPEG q80"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--json", help="write the sizes and budgets here")
    parser.add_argument("--markdown", action="store_true", help="print the tables as docs/remote.md has them")
    args = parser.parse_args()
    report = {}
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.split("x"))
        sizes = measure(width, height)
        report[text] = {"bytes_per_message": sizes, "budget_bytes_per_s": {t: budget(sizes, args.fps, t) for t in (1, 3)}}
    names = list(next(iter(report.values()))["bytes_per_message"])
    print(f"| message (bytes each) | {' | '.join(report)} |\n|---|{'---|' * len(report)}")
    for name in names:
        cells = [f"{r['bytes_per_message'][name]:,.0f}" for r in report.values()]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\n| at {args.fps:g} fps, kB/s in / out | " + " | ".join(f"{s}, {t} target{'s' * (t > 1)}" for s in report for t in (1, 3))
          + f" |\n|---|{'---|' * (2 * len(report))}")
    for setup in next(iter(report.values()))["budget_bytes_per_s"][1]:
        cells = [f"{r['budget_bytes_per_s'][t][setup]['in'] / 1e3:,.0f} / {r['budget_bytes_per_s'][t][setup]['out'] / 1e3:,.1f}"
                 for r in report.values() for t in (1, 3)]
        print(f"| {setup} | {' | '.join(cells)} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"fps": args.fps, "sizes": report}, indent=2))


if __name__ == "__main__":
    main()
