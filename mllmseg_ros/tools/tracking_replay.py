"""The tracker replayed offline on a sequence with known masks, driven as the node's tracking thread drives it.

An oracle "model" takes the newest frame whenever it is free (``MaskTracker.remember``) and answers with that frame's
true mask ``delay_frames`` frames later (``anchor``, right after the frame it arrives with was tracked); every frame is
tracked (``add_frame``) as the node does with ``track_rate_hz`` at or above the camera's rate. No ROS, no wall clock:
the same sequence gives the same figures, in seconds rather than in real time (``benchmarks/bench_tracking.py``
replays through the node too).

Scored per frame after the first answer, leaving out the frames the model itself answered:
- tracked IoU (0 when the tracker says "not found") and the IoU of repeating the last answer, on frames that show the
  target;
- precision and recall of the tracked masks' pixels (a mask on a frame that does not show the target counts against
  precision);
- frames on which the target is entirely hidden (out of the view or behind something) called found;
- re-finding: from the first frame on which a target that was entirely hidden is fully visible again to the first
  one on which a tracked mask overlaps it with IoU >= 0.5;
- the tracker's thread CPU time per frame (``time.thread_time``: other processes on the machine do not count).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..engine.tracking import MaskTracker

MIN_ANSWER_PX = 16  # the oracle answers "not found" for less of the target than this
FULLY_VISIBLE = 0.98  # share of the target visible for "fully visible again"
REFOUND_IOU = 0.5  # a tracked mask this close to the truth has found the target again


@dataclass
class ReplayFrame:
    image: np.ndarray  # H x W x 3 uint8 RGB
    truth: np.ndarray  # H x W bool: the target's visible pixels
    visible: float | None = None  # share of the whole target visible (None: not known; only "any pixel" is)


def photo_frames(sequence) -> Iterator[ReplayFrame]:
    """``data.photo_motion`` frames as replay frames."""
    for frame in sequence.frames():
        yield ReplayFrame(frame.image, frame.mask, frame.visible)


def scene_frames(sequence) -> Iterator[ReplayFrame]:
    """``data.scene_motion`` frames as replay frames (how much of the target is hidden is not known there)."""
    for frame in sequence.frames():
        yield ReplayFrame(frame.image, frame.masks[sequence.target])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def replay(frames: Iterable[ReplayFrame], delay_frames: int, tracker: MaskTracker | None = None) -> dict:
    """Per-frame records and the sequence's summary (see the module docstring)."""
    tracker = tracker or MaskTracker()
    pending = None  # (frame index, its answer, due at frame index)
    last_answer = None  # (mask or None) of the newest answer received
    answered, records, costs = set(), [], []
    for index, frame in enumerate(frames):
        started = time.thread_time()
        [*states] = tracker.add_frame(frame.image, index)
        costs.append(time.thread_time() - started)
        if last_answer is not None and index not in answered:
            found = bool(states and states[0].found)
            mask = states[0].mask if found else None
            truth = frame.truth
            records.append({
                "frame": index, "visible": frame.visible, "shows": bool(truth.any()), "found": found,
                "tracked_iou": _iou(mask, truth) if found else 0.0,
                "baseline_iou": _iou(last_answer[0], truth) if last_answer[0] is not None else 0.0,
                "overlap": int(np.count_nonzero(mask & truth)) if found else 0,
                "area": int(np.count_nonzero(mask)) if found else 0, "truth_area": int(np.count_nonzero(truth)),
            })
        if pending is not None and index >= pending[2]:  # the answer arrives: brought to this frame
            tracker.anchor(pending[0], [pending[1]])
            last_answer, pending = (pending[1],), None
        if pending is None:  # the model is free: it takes the newest frame
            tracker.remember(frame.image, index)
            answered.add(index)
            mask = frame.truth if np.count_nonzero(frame.truth) >= MIN_ANSWER_PX else None
            pending = (index, None if mask is None else mask.copy(), index + delay_frames)
    return {"records": records, "cost_ms": [1e3 * c for c in costs], **summarise(records)}


def summarise(records: list[dict], fps: float = 15.0) -> dict:
    shows = [r for r in records if r["shows"]]
    hidden = [r for r in records if not r["shows"]]
    area = sum(r["area"] for r in records)
    truth_area = sum(r["truth_area"] for r in shows)
    return {
        "frames": len(shows),
        "tracked_iou": float(np.mean([r["tracked_iou"] for r in shows])) if shows else None,
        "baseline_iou": float(np.mean([r["baseline_iou"] for r in shows])) if shows else None,
        "precision": sum(r["overlap"] for r in records) / area if area else None,
        "recall": sum(r["overlap"] for r in shows) / truth_area if truth_area else None,
        "hidden_frames": len(hidden), "hidden_found": sum(r["found"] for r in hidden),
        "refind_frames": refind_delays(records),
    }


def refind_delays(records: list[dict]) -> list[int | None]:
    """Per time the target was entirely hidden and then fully visible again: frames from that moment to the first
    frame with a tracked mask of IoU >= REFOUND_IOU (None: not within the sequence)."""
    delays, was_hidden, waiting_since = [], False, None
    for record in records:
        if record["visible"] is None:
            continue
        if not record["shows"]:
            was_hidden, waiting_since = True, None
            continue
        if was_hidden and waiting_since is None and record["visible"] >= FULLY_VISIBLE:
            waiting_since, was_hidden = record["frame"], False
        if waiting_since is not None and record["tracked_iou"] >= REFOUND_IOU:
            delays.append(record["frame"] - waiting_since)
            waiting_since = None
    if waiting_since is not None:
        delays.append(None)
    return delays
