"""``mllmseg-ros demo``: the whole chain on a fresh machine, with the project's own trained demo model.

1. generates a short rosbag2 of synthetic tabletop scenes (colour, depth, camera_info, a spoken command per scene,
   and ground truth) that ``ros2 bag play`` could also replay;
2. starts ``mllmseg_node`` with the demo model (in this process) and replays the bag into it;
3. writes the node's overlay images and an animated GIF, and prints per command: the expression used, found or not,
   IoU against the ground truth, 3D centroid error in mm and latency;
4. replays a short moving-camera sequence (15 fps) with each model answer held back ``MOTION_ANSWER_DELAY_S``, as a
   1B model on a CPU or a small Jetson answers, and prints the model's answers against the tracked results the node
   publishes for the frames in between.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..data.scene_motion import make_motion_sequence
from ..data.scenes import make_scene
from ..engine.depth import PinholeIntrinsics, centroid_3d, depth_to_metres
from ..engine.commands import normalize_command
from ..engine.postprocess import mask_geometry

DEMO_MODEL = Path(__file__).resolve().parents[2] / "models" / "mllmseg_demo"
DEMO_SEEDS = 9_000_000  # held out: training uses seeds below 1,000,000
FRAME_PERIOD_NS = 1_500_000_000


MOTION_SECONDS = 4.0
MOTION_FPS = 15.0
MOTION_ANSWER_DELAY_S = 1.0
TOPIC_REMAP = {"/camera/color/image_raw": "/image", "/camera/aligned_depth_to_color/image_raw": "/depth",
               "/camera/color/camera_info": "/camera_info"}


def _frame_messages(t: int, image_rgb: np.ndarray, depth_mm: np.ndarray, k: list[float], command: str, mask: np.ndarray,
                    found: bool) -> list[tuple]:
    """One camera frame at ``t`` ns: camera_info and depth just before the image, and the ground truth."""
    from geometry_msgs.msg import Point
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from ..msg import Segmentation, SegmentationArray
    from ..ros.conversions import depth_mm_image, mono8_image, rgb_image

    height, width = mask.shape
    image = rgb_image(image_rgb, Header())
    image.header.stamp.sec, image.header.stamp.nanosec = divmod(t, 10**9)
    image.header.frame_id = "camera_color_optical_frame"
    info = CameraInfo(header=image.header, width=width, height=height, k=k, distortion_model="plumb_bob", d=[0.0] * 5)
    truth = SegmentationArray(header=image.header, command=command)
    located = centroid_3d(mask, mask_geometry(mask).centroid, depth_to_metres(depth_mm),
                          PinholeIntrinsics.from_k(k, width, height))
    truth.segmentations.append(Segmentation(
        expression=normalize_command(command)[0], found=found, mask=mono8_image(mask, image.header),
        centroid_3d=Point(**dict(zip("xyz", located.point))) if located.point else Point(),
        centroid_3d_valid=located.point is not None,
    ))
    return [
        ("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", info, t - 1),
        ("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", depth_mm_image(depth_mm, image.header), t - 1),
        ("/camera/color/image_raw", "sensor_msgs/msg/Image", image, t),
        ("/ground_truth", "mllmseg_ros/msg/SegmentationArray", truth, t),
    ]


def _command_message(command: str, t: int) -> tuple:
    from std_msgs.msg import String

    return ("/command", "std_msgs/msg/String", String(data=command), t)


def write_demo_bag(path: Path, scenes: int, seed: int = DEMO_SEEDS, storage: str = "mcap") -> int:
    """A bag with one scene per ``FRAME_PERIOD_NS``: the command first, then image, depth, camera_info, truth."""
    from .bags import write_bag

    rng = np.random.default_rng(seed)
    messages = []
    for index in range(scenes):
        scene = make_scene(seed + index)
        expression = scene.expressions[int(rng.integers(len(scene.expressions)))]
        t = (index + 1) * FRAME_PERIOD_NS
        messages.append(_command_message(expression.command, t - 200_000_000))
        messages += _frame_messages(t, scene.image, scene.depth_mm, scene.camera.k, expression.command,
                                    scene.target_mask(expression), expression.target is not None)
    return write_bag(path, messages, storage)


def write_motion_bag(path: Path, seed: int = DEMO_SEEDS, kind: str = "sideways", seconds: float = MOTION_SECONDS,
                     fps: float = MOTION_FPS, storage: str = "mcap") -> tuple[int, str]:
    """A bag of a moving-camera sequence (``data/scene_motion.py``) at ``fps``: "pick up <the target>", then every
    frame with its ground truth. Returns (message count, command)."""
    from .bags import write_bag

    sequence = make_motion_sequence(seed, kind, seconds=seconds, fps=fps)
    command = f"pick up {sequence.expression}"
    start = FRAME_PERIOD_NS
    messages = [_command_message(command, start - 200_000_000)]
    for frame in sequence.frames():
        mask = frame.masks[sequence.target]
        messages += _frame_messages(start + round(frame.time_s * 1e9), frame.image, frame.depth_mm, sequence.k, command,
                                    mask, bool(mask.any()))
    return write_bag(path, messages, storage), command


def _remove(folder: Path) -> None:
    import shutil

    if folder.exists():
        shutil.rmtree(folder)


def write_gif(frames_dir: Path, target: Path, frame_ms: int = 1200) -> Path | None:
    from PIL import Image

    frames = [Image.open(p) for p in sorted(frames_dir.glob("*.png"))]
    if not frames:
        return None
    frames[0].save(target, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return target


def run_demo(out_dir: Path, scenes: int = 8, model_dir: Path = DEMO_MODEL) -> int:
    from .bag_eval import evaluate_bag, format_scores
    from .bags import ros_session

    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"demo model not found at {model_dir}")
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    bag = out_dir / "demo_bag"
    _remove(bag)  # a bag writer refuses an existing folder
    count = write_demo_bag(bag, scenes)
    print(f"wrote {bag} ({count} messages, {scenes} scenes; replay it on a robot with `ros2 bag play {bag}`)")
    overlays = out_dir / "overlays"
    with ros_session():
        scores = evaluate_bag(bag, model_dir, remap=TOPIC_REMAP, overlay_dir=overlays,
                              # The small demo model leaves stray pixels away from the object now and then; the
                              # largest connected part's centroid ignores them (docs/models.md, "The demo model").
                              node_parameters={"mode": "continuous", "publish_markers": False,
                                               "centroid_of_largest_component": True})
    print(format_scores(scores))
    gif = write_gif(overlays, out_dir / "demo.gif")
    rows = [s.row() for s in scores]
    ious = [r["mean_iou"] for r in rows if r["mean_iou"] is not None]
    found = [r["found_accuracy"] for r in rows if r["found_accuracy"] is not None]
    print(f"mean IoU {np.mean(ious):.3f} on present targets, found/not-found accuracy {np.mean(found):.2f}; "
          f"overlays in {overlays}" + (f", animation {gif}" if gif else ""))
    motion = run_motion_demo(out_dir / "demo_motion_bag", model_dir)
    report = {"scenes": rows, "moving_camera": {source: [s.row() for s in scores] for source, scores in motion.items()}}
    (out_dir / "scores.json").write_text(json.dumps(report, indent=1))
    print(f"demo done in {time.perf_counter() - start:.0f} s; scores in {out_dir / 'scores.json'}")
    return 0


def run_motion_demo(bag: Path, model_dir: Path, answer_delay_s: float = MOTION_ANSWER_DELAY_S) -> dict:
    """The moving-camera part (step 4 above); returns the scores by source."""
    from .bag_eval import MODEL, TRACKED, evaluate_bag_by_source, format_scores
    from .bags import ros_session

    _remove(bag)
    count, command = write_motion_bag(bag)
    print(f"\nmoving camera: wrote {bag} ({count} messages, {MOTION_SECONDS:g} s at {MOTION_FPS:g} fps); each model answer "
          f"held back {answer_delay_s:g} s, as a slower model or machine answers; tracking on")
    with ros_session():
        scores = evaluate_bag_by_source(bag, model_dir, remap=TOPIC_REMAP, answer_delay_s=answer_delay_s,
                                        node_parameters={"mode": "continuous", "publish_markers": False,
                                                         "tracking": "on", "centroid_of_largest_component": True})
    for source, title in ((MODEL, "model answers"), (TRACKED, "tracked between model answers")):
        print(f"{title}:\n{format_scores(scores[source])}")
    return scores
