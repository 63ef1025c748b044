#!/usr/bin/env python3
"""Tracking between model answers: moving-camera sequences replayed through the node with a slow model.

The "model" is an oracle: after ``delay`` seconds it answers with the ground-truth mask of the frame it was given, so
every model answer is perfect and what is measured is what happens between answers. For every camera frame where the
target is visible, the newest result the node has published for that frame (tracking on) is compared with the frame's
ground truth, and so is the baseline "repeat the last model answer" (the last model answer published before the frame
arrived). IoU; 3D centroid error against the centroid a perfect mask gives on that frame's depth; a dropped track
scores IoU 0 and no 3D error. Exit sequences also give the frames from the target leaving the view (less than
``min_in_view`` of it inside the image) to the drop.

The node runs with its defaults (the model on the CPU: at most 7.5 tracked frames a second, every 2nd of a 15 fps
camera); ``--track-rate-hz 1000`` tracks every frame.

Also: the tracker's own cost per 640 x 480 frame (engine MaskTracker, OpenCV on 2 threads) and how much a tracker
beside inference (its results built and serialised as the node does) slows the shipped demo model
(models/mllmseg_demo, torch on 2 threads): tracking every frame, and every 2nd (the node's rate on the CPU).

    .venv/bin/python benchmarks/bench_tracking.py --delays 0.5,2,6 --kinds pan,sideways,forward,occlusion,exit --seconds 12

Offline (``--offline``, no ROS, no wall clock: ``tools/tracking_replay.py``, every frame tracked): real-photo sequences
(``data/photo_motion.py``: scikit-image's photos under a moving hand-held camera, blur, +-20% exposure and white-balance
drift, noise, JPEG, occluders of other colours and of the target's own, the target leaving and coming back), the
development targets and the held-out ones apart, with and without the exposure drift; and the same replay on the
synthetic scenes above. Tracked IoU against repeating the last answer, precision, hidden frames called found, frames
to find a target again once fully visible, and the tracker's thread CPU time per 640 x 480 frame.

    .venv/bin/python benchmarks/bench_tracking.py --offline --delays 0.5,2,6
"""
from __future__ import annotations

import argparse
import json
import math
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

import cv2  # noqa: E402

from mllmseg_ros.data.scene_motion import make_motion_sequence  # noqa: E402
from mllmseg_ros.engine.depth import PinholeIntrinsics, centroid_3d, depth_to_metres  # noqa: E402
from mllmseg_ros.engine.postprocess import mask_geometry, mask_iou  # noqa: E402
from mllmseg_ros.engine.tracking import MaskTracker, TrackerConfig, lower_this_thread_priority  # noqa: E402


# --- sequences, pre-rendered (rendering takes longer than a camera frame) ---------------------------------------------
def rendered(seed: int, kind: str, seconds: float, fps: float, width: int, height: int) -> dict:
    sequence = make_motion_sequence(seed, kind, seconds=seconds, fps=fps, width=width, height=height)
    intrinsics = PinholeIntrinsics.from_k(sequence.k, width, height)
    frames = []
    for frame in sequence.frames():
        mask = frame.masks[sequence.target]
        geometry = mask_geometry(mask)
        truth_3d = centroid_3d(mask, geometry.centroid, depth_to_metres(frame.depth_mm), intrinsics).point
        frames.append({"image": frame.image, "depth_mm": frame.depth_mm, "mask": mask, "in_view": frame.in_view[sequence.target],
                       "truth_3d": truth_3d})
    return {"name": f"{kind}-{seed}", "kind": kind, "k": sequence.k, "fps": fps, "expression": sequence.expression, "frames": frames}


def fingerprint(image: np.ndarray) -> bytes:
    """Identifies a frame from its pixels (each frame has its own sensor noise): how the oracle finds its answer."""
    return image[::29, ::31].tobytes()


# --- the node, in this process --------------------------------------------------------------------------------------
def replay(sequence: dict, delay_s: float, checkpoint: Path, tracking: str, rate_hz: float = 0.0) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image

    from mllmseg_ros.engine import SegmentationResult
    from mllmseg_ros.ros.node import MLLMSegNode
    from mllmseg_ros.tools.node_driver import Driver, connected, wait_for

    truth_by_print = {fingerprint(f["image"]): f["mask"] for f in sequence["frames"]}
    rclpy.init()
    executor = SingleThreadedExecutor()
    spinner = threading.Thread(target=executor.spin, daemon=True)
    node = MLLMSegNode(parameter_overrides=[Parameter("model_path", value=str(checkpoint)), Parameter("no_image_warn_s", value=0.0),
                                            Parameter("tracking", value=tracking), Parameter("max_frame_age_s", value=1.0),
                                            Parameter("track_rate_hz", value=rate_hz)])
    executor.add_node(node)
    driver = Driver()
    executor.add_node(driver.node)
    spinner.start()
    try:
        node.trigger_configure()
        node.trigger_activate()
        answered_prints: list[bytes] = []

        def oracle(images, expression_lists):
            time.sleep(delay_s)
            out = []
            for image, expressions in zip(images, expression_lists):
                mask = truth_by_print.get(fingerprint(image), np.zeros(image.shape[:2], bool))
                geometry = mask_geometry(mask)
                out.append([SegmentationResult(e, geometry.area > 0, "SEG", 1.0, mask.astype(np.float32), mask, geometry.bbox,
                                               geometry.centroid, geometry.area) for e in expressions])
                answered_prints.append(fingerprint(image))
            return out

        node.segmenter.segment_batch = oracle
        assert connected(node, driver), "driver and node did not connect"
        driver.send_command(sequence["expression"])
        assert wait_for(lambda: node.target.current is not None)
        height, width = sequence["frames"][0]["mask"].shape
        arrival: list[float] = []
        started = time.monotonic()
        for index, frame in enumerate(sequence["frames"]):
            stamp_ns = 1_000_000_000 + int(index * 1e9 / sequence["fps"])
            image = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=frame["image"].tobytes())
            depth = Image(height=height, width=width, encoding="16UC1", step=width * 2, data=frame["depth_mm"].tobytes())
            info = CameraInfo(height=height, width=width, k=sequence["k"])
            for msg in (image, depth, info):
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
                msg.header.frame_id = "camera_optical"
            driver.depth.publish(depth)
            driver.info.publish(info)
            driver.image.publish(image)
            arrival.append(time.monotonic())
            time.sleep(max(0.0, started + (index + 1) / sequence["fps"] - time.monotonic()))
        time.sleep(0.5)
        return {"arrays": list(driver.arrays), "arrival": arrival, "tracker_published": node.tracking.published}
    finally:
        node.shutdown_worker()
        executor.remove_node(node)
        executor.remove_node(driver.node)
        executor.shutdown(timeout_sec=5)
        node.destroy_node()
        driver.node.destroy_node()
        rclpy.try_shutdown()


def frame_of(array, fps: float) -> int:
    stamp_ns = array.header.stamp.sec * 10**9 + array.header.stamp.nanosec
    return round((stamp_ns - 1_000_000_000) * fps / 1e9)


def mask_of(segmentation) -> np.ndarray:
    image = segmentation.mask
    return np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width) > 0


def score(sequence: dict, run: dict, min_in_view: float) -> dict:
    """Per-frame IoU and 3D error of the tracked results and of repeating the last model answer."""
    fps, frames = sequence["fps"], sequence["frames"]
    # Per frame, the first tracked result the node published for it and, as the baseline, the last model answer it had
    # published before that one (what a planner holds at that moment without tracking). Both are compared on the
    # same frames, at the same moment.
    tracked: dict[int, tuple[int, object]] = {}  # frame -> (order received, segmentation)
    model_answers: list[tuple[int, int, object]] = []  # (order received, frame, segmentation)
    for order, array in enumerate(run["arrays"]):
        [segmentation] = array.segmentations
        index = frame_of(array, fps)
        if segmentation.source == segmentation.SOURCE_MODEL:
            model_answers.append((order, index, segmentation))
        else:
            tracked.setdefault(index, (order, segmentation))
    rows = []
    answered_frames = {index for _, index, _ in model_answers}
    for index, frame in enumerate(frames):
        if not frame["mask"].any() or index not in tracked or index in answered_frames:
            continue
        order, s = tracked[index]
        earlier = [answer for answer_order, _, answer in model_answers if answer_order < order]
        if not earlier:
            continue
        row = {"frame": index, "in_view": frame["in_view"]}
        row["baseline_iou"] = mask_iou(mask_of(earlier[-1]), frame["mask"]) if earlier[-1].found else 0.0
        row["baseline_3d"] = _error(earlier[-1], frame["truth_3d"])
        row["tracked_iou"] = mask_iou(mask_of(s), frame["mask"]) if s.found else 0.0
        row["tracked_3d"] = _error(s, frame["truth_3d"]) if s.found else None
        row["status"] = s.track_status
        rows.append(row)
    both = [r for r in rows if "tracked_iou" in r and "baseline_iou" in r]
    summary = {
        "sequence": sequence["name"], "frames_compared": len(both),
        "tracked_iou": _mean(r["tracked_iou"] for r in both), "baseline_iou": _mean(r["baseline_iou"] for r in both),
        "tracked_3d_mm": _mean(1e3 * r["tracked_3d"] for r in both if r.get("tracked_3d") is not None and r.get("baseline_3d") is not None),
        "baseline_3d_mm": _mean(1e3 * r["baseline_3d"] for r in both if r.get("tracked_3d") is not None and r.get("baseline_3d") is not None),
        "dropped_while_visible": sum(1 for r in both if r["tracked_iou"] == 0.0 and r["status"] != "tracking"),
        "model_answers": len(model_answers),
    }
    left = next((i for i, f in enumerate(frames) if f["in_view"] < min_in_view and i > 0), None)
    if left is not None:
        drops = sorted(i for i, (_, s) in tracked.items() if not s.found and s.track_status == "left the view")
        later_found = sorted(i for i, (_, s) in tracked.items() if s.found and i > left + 3 and frames[i]["in_view"] < min_in_view * 0.5)
        summary["left_view_frame"] = left
        summary["frames_to_drop"] = (drops[0] - left) if drops else None
        summary["found_after_leaving"] = len(later_found)  # tracked "found" on frames where the target is mostly gone
    return summary


def _error(segmentation, truth) -> float | None:
    if truth is None or not segmentation.centroid_3d_valid:
        return None
    p = segmentation.centroid_3d
    return float(np.linalg.norm(np.subtract((p.x, p.y, p.z), truth)))


def _weighted(runs: list[dict], key: str) -> float | None:
    """Mean over all compared frames of all runs (each run's mean weighted by its frame count)."""
    pairs = [(r[key], r["frames_compared"]) for r in runs if r.get(key) is not None and r["frames_compared"]]
    return float(sum(v * n for v, n in pairs) / sum(n for _, n in pairs)) if pairs else None


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# --- cost -------------------------------------------------------------------------------------------------------------
def tracker_cost(sequence: dict, threads: int, delay_frames: int = 30) -> dict:
    """Milliseconds per frame of MaskTracker.add_frame as the node uses it: one live track and one frame waiting for
    its (delayed) answer; a dropped track is re-anchored at once. OpenCV on ``threads`` threads."""
    default_threads = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    tracker = MaskTracker(TrackerConfig())
    frames = [f for f in sequence["frames"] if f["mask"].any()]
    tracker.add_frame(frames[0]["image"], 0)
    tracker.remember(frames[0]["image"], 0)
    tracker.anchor(0, [frames[0]["mask"]])
    waiting = None
    times = []
    for index, frame in enumerate(frames[1:], start=1):
        if waiting is None:
            tracker.remember(frame["image"], index)
            waiting = index
        started = time.perf_counter()
        tracker.add_frame(frame["image"], index)
        times.append((time.perf_counter() - started) * 1e3)
        if index - waiting >= delay_frames or not tracker.tracking:
            tracker.anchor(waiting, [frames[waiting]["mask"]])
            waiting = None
    cv2.setNumThreads(default_threads)
    return {"threads": threads, "median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95)),
            "frames": len(times)}


def results_work(sequence: dict, frame: dict, states: list) -> None:
    """What the node's tracking thread does with a tracked frame besides tracking it: each mask's geometry, the 3D
    centroid from the frame's depth, the SegmentationArray with its mask images, serialised as a publisher does (the
    transport itself is left out)."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from mllmseg_ros.ros.buffers import Frame
    from mllmseg_ros.ros.publishing import build_array
    from mllmseg_ros.ros.tracking import tracked_results

    height, width = frame["mask"].shape
    results = tracked_results([sequence["expression"]] * len(states), [1.0] * len(states), states)
    depth_m = depth_to_metres(frame["depth_mm"])
    intrinsics = PinholeIntrinsics.from_k(sequence["k"], width, height)
    array = build_array(Frame(frame["image"], Header(frame_id="camera"), time.monotonic()), sequence["expression"], results,
                        depth_m, intrinsics, "", {}, 0.0)
    serialize_message(array)


def inference_slowdown(sequence: dict, groups: int, fps: float, every_nth: tuple[int, ...] = (1, 2),
                       block: int = 40, delay_frames: int = 30) -> list[dict]:
    """Demo-model inference time alone and beside a tracker in another thread that tracks every ``n``-th frame of a
    camera at ``fps``, for each ``n`` in ``every_nth`` (the node's track_rate_hz as a whole fraction of the camera
    rate). ``groups`` groups of blocks of ``block`` answers: one block alone and one per setting, in random order.
    This machine's speed drifts by tens of percent within a minute; blocks side by side cancel the drift.
    ``slowdown`` is the median over groups of (beside / alone) - 1.

    The tracker works as in the node's tracking thread: niced, one live track and one frame waiting for its answer
    (given ``delay_frames`` later), OpenCV on one thread, and each tracked frame's results built and serialised
    (``results_work``)."""
    import random

    import torch

    from mllmseg_ros.engine import Segmenter

    torch.set_num_threads(2)
    segmenter = Segmenter.from_pretrained(str(ROOT / "models" / "mllmseg_demo"), device="cpu", dtype=torch.float32)
    frames = sequence["frames"]

    def mean_time(count: int) -> float:
        started = time.perf_counter()
        for index in range(count):
            segmenter.segment(frames[index % len(frames)]["image"], [sequence["expression"]])
        return (time.perf_counter() - started) * 1e3 / count

    class Tracker(threading.Thread):
        """A tracking thread that lives through all the groups (its setup and first frames stay out of the blocks) and
        tracks frames at camera rate while ``running`` is set."""

        def __init__(self, every: int) -> None:
            super().__init__(daemon=True)
            self.every = every
            self.running, self.ready, self.stop = threading.Event(), threading.Event(), threading.Event()
            self.working = threading.Lock()  # held while a frame is tracked: a block ends after its last frame
            self.counts = {"frames": 0, "tracked": 0, "cpu_s": 0.0}
            self.start()
            self.ready.wait()

        def run(self) -> None:
            lower_this_thread_priority()  # as the node's tracking thread does
            cv2.setNumThreads(1)
            tracker = MaskTracker()
            tracker.add_frame(frames[0]["image"], 0)
            tracker.remember(frames[0]["image"], 0)
            tracker.anchor(0, [frames[0]["mask"]])
            results_work(sequence, frames[0], tracker.results())  # imports and first-call costs out of the blocks
            self.ready.set()
            index, waiting = 0, None
            while not self.stop.is_set():
                if not self.running.wait(timeout=0.05):
                    continue
                # frames come on one camera clock through all blocks: a block of T seconds gets T * fps of them
                now = time.perf_counter()
                if self.stop.wait(math.ceil(now * fps) / fps - now):
                    return
                with self.working:
                    if not self.running.is_set():
                        continue
                    index += 1
                    frame = frames[index % len(frames)]
                    self.counts["frames"] += 1
                    if index % self.every == 0:
                        cpu_started = time.thread_time()
                        if waiting is None:
                            tracker.remember(frame["image"], index)
                            waiting = (index, frame["mask"])
                        results_work(sequence, frame, tracker.add_frame(frame["image"], index))
                        if index - waiting[0] >= delay_frames or not tracker.tracking:
                            tracker.anchor(waiting[0], [waiting[1]])
                            waiting = None
                        cpu = time.thread_time() - cpu_started
                        self.counts["tracked"] += 1
                        self.counts["cpu_s"] += cpu

    trackers = {every: Tracker(every) for every in every_nth}
    counts = {every: trackers[every].counts for every in every_nth}
    ratios: dict[int, list[float]] = {every: [] for every in every_nth}
    alone_ms: list[float] = []
    order = random.Random(0)
    mean_time(block)  # warm-up
    for _ in range(groups):
        times = {}
        for every in order.sample([None, *every_nth], len(every_nth) + 1):
            if every is None:
                times[None] = mean_time(block)
                continue
            thread = trackers[every]
            thread.running.set()
            try:
                times[every] = mean_time(block)
            finally:
                thread.running.clear()
                with thread.working:  # its frame in progress ends before the next block starts
                    pass
        alone_ms.append(times[None])
        for every in every_nth:
            ratios[every].append(times[every] / times[None])
    for thread in trackers.values():
        thread.stop.set()
        thread.join()
    return [{"every_nth_frame": every, "slowdown": float(np.median(ratios[every]) - 1),
             "slowdown_groups_p10_p90": [float(np.percentile(ratios[every], q) - 1) for q in (10, 90)],
             "frames_tracked_share": counts[every]["tracked"] / max(1, counts[every]["frames"]),
             "tracker_cpu_ms_per_tracked_frame": 1e3 * counts[every]["cpu_s"] / max(1, counts[every]["tracked"]),
             "alone_ms": float(np.mean(alone_ms)), "groups": groups, "block": block, "camera_fps": fps}
            for every in every_nth]


def offline(args) -> dict:
    """The offline replay on real-photo and synthetic sequences (see the module docstring)."""
    from mllmseg_ros.data.photo_motion import KINDS, make_photo_sequence
    from mllmseg_ros.data.photo_targets import DEVELOPMENT, HELD_OUT
    from mllmseg_ros.tools.tracking_replay import photo_frames, replay as replay_offline, scene_frames, summarise

    cv2.setNumThreads(1)  # as the node's tracking thread
    delays = [float(d) for d in args.delays.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    groups = []  # (group name, [(sequence name, frames)]) rendered lazily, one sequence at a time
    photo_kinds = args.photo_kinds.split(",") if args.photo_kinds else list(KINDS)
    for name, targets in (("photos, development", DEVELOPMENT), ("photos, held out", HELD_OUT)):
        targets = [t for t in targets if not args.photo_targets or t in args.photo_targets.split(",")]
        if not targets:
            continue
        for drift in ((True, False) if args.no_drift_too else (True,)):
            sequences = [(target, kind, seed) for target in targets for kind in photo_kinds for seed in seeds]
            groups.append((name + ("" if drift else ", no exposure drift"),
                           [(lambda t=t, k=k, s=s, d=drift: make_photo_sequence(t, k, s, seconds=args.photo_seconds, drift=d), photo_frames)
                            for t, k, s in sequences]))
    groups.append(("synthetic scenes", [(lambda k=k, s=s: make_motion_sequence(s, k, seconds=args.seconds, fps=args.fps),
                                         scene_frames) for k in args.kinds.split(",") for s in seeds]))
    report = {}
    for name, makers in groups:
        records, costs = {delay: [] for delay in delays}, []
        for make, as_frames in makers:
            sequence = make()
            frames = list(as_frames(sequence))
            for delay in delays:
                run = replay_offline(iter(frames), int(round(delay * args.fps)))
                records[delay] += run["records"]
                costs += run["cost_ms"]
                print(f"{name}: {getattr(sequence, 'name', '')} {delay:g} s: tracked {run['tracked_iou'] or 0:.3f} "
                      f"repeat-last {run['baseline_iou'] or 0:.3f}", flush=True)
        report[name] = {"cost_ms_mean": float(np.mean(costs)), "cost_ms_p95": float(np.percentile(costs, 95)),
                        "sequences": len(makers),
                        "delays": {str(delay): {k: v for k, v in summarise(records[delay]).items()} for delay in delays}}
        for delay in delays:
            row = report[name]["delays"][str(delay)]
            refind = row["refind_frames"]
            row["refind_over_0_5_s"] = sum(1 for d in refind if d is None or d > 0.5 * args.fps)
            row["hidden_found_share"] = row["hidden_found"] / row["hidden_frames"] if row["hidden_frames"] else None
            print(f"== {name}, {delay:g} s: tracked IoU {row['tracked_iou'] or 0:.3f}, repeat-last "
                  f"{row['baseline_iou'] or 0:.3f}, precision {row['precision'] or 0:.3f}, recall {row['recall'] or 0:.3f}, hidden called found "
                  f"{row['hidden_found']}/{row['hidden_frames']}, found again later than 0.5 s: "
                  f"{row['refind_over_0_5_s']}/{len(refind)}; {report[name]['cost_ms_mean']:.1f} ms a frame", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", default="0.5,2,6")
    parser.add_argument("--kinds", default="pan,sideways,forward,occlusion,exit")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--slowdown-groups", type=int, default=40, help="groups of blocks for the slowdown")
    parser.add_argument("--track-rate-hz", type=float, default=0.0,
                        help="the node's track_rate_hz (0, its default: 7.5 with the model on the CPU, as here)")
    parser.add_argument("--skip-slowdown", action="store_true", help="no cost and slowdown measurements")
    parser.add_argument("--skip-node", action="store_true", help="only the cost and slowdown measurements")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--offline", action="store_true", help="the offline replay on real-photo and synthetic sequences")
    parser.add_argument("--photo-kinds", default="", help="real-photo sequence kinds (default: all of photo_motion.KINDS)")
    parser.add_argument("--photo-targets", default="", help="real-photo targets (default: all, e.g. chelsea/pupil)")
    parser.add_argument("--photo-seconds", type=float, default=10.0)
    parser.add_argument("--no-drift-too", action="store_true", help="also the real-photo sequences without exposure drift")
    args = parser.parse_args()
    if args.offline:
        report = offline(args)
        if args.out:
            args.out.write_text(json.dumps(report, indent=1))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    width, height = (int(v) for v in args.size.split("x"))
    from mllmseg_ros.tools.node_driver import tiny_checkpoint

    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "runs": []}
    sequences = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for kind in args.kinds.split(","):
            started = time.perf_counter()
            sequences.append(rendered(seed, kind, args.seconds, args.fps, width, height))
            print(f"rendered {kind}-{seed} ({len(sequences[-1]['frames'])} frames) in {time.perf_counter() - started:.0f} s", flush=True)
    min_in_view = TrackerConfig().occlusion.min_in_view
    if not args.skip_node:
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = tiny_checkpoint(Path(folder), decision="SEG")
            for delay in (float(d) for d in args.delays.split(",")):
                for sequence in sequences:
                    run = replay(sequence, delay, checkpoint, tracking="on", rate_hz=args.track_rate_hz)
                    summary = {"delay_s": delay, **score(sequence, run, min_in_view)}
                    report["runs"].append(summary)
                    print(json.dumps(summary), flush=True)
    report["track_rate_hz"] = args.track_rate_hz
    if not args.skip_slowdown:
        report["cost"] = [tracker_cost(sequences[0], threads) for threads in (2, 1)]
        print(json.dumps(report["cost"]), flush=True)
        report["slowdown"] = inference_slowdown(sequences[0], args.slowdown_groups, args.fps)
        print(json.dumps(report["slowdown"]), flush=True)
    for delay in sorted({r["delay_s"] for r in report["runs"]}):
        runs = [r for r in report["runs"] if r["delay_s"] == delay]
        pooled = {key: _weighted(runs, key) for key in ("tracked_iou", "baseline_iou", "tracked_3d_mm", "baseline_3d_mm")}
        report.setdefault("pooled", {})[str(delay)] = pooled
        print(f"delay {delay:g} s, over {sum(r['frames_compared'] for r in runs)} frames: {json.dumps(pooled)}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
