"""Results for the camera frames between model answers: the last answer carried to each new frame by optical flow.

A thread of its own (``mllmseg_tracking``) beside the inference thread: woken by every image callback, it moves each
camera's ``MaskTracker`` (engine/tracking/) to that camera's newest frame and publishes the carried masks as
``source = SOURCE_TRACKED`` results, with the 3D centroid from that frame's own depth. The inference thread tells it
which frame the model is answering (``model_takes``) and hands it every answer (``model_answered``): the answer is
brought forward to the newest frame at once (re-anchoring) and replaces the track (but a "not found" about a frame on
which the tracker held the target hidden leaves its track going: ``MaskTracker.anchor``).

Tracks belong to one command (its serial): a new command or a stop discards them, and a tracked result of a replaced
command is never published. ``mode: once`` never tracks; ``tracking: auto`` tracks while the model answers more slowly
than the camera sends frames.

While the model runs on the CPU, frames are tracked at most ``TRACK_RATE_ON_CPU_HZ`` a second unless
``track_rate_hz`` says otherwise: every millisecond of tracking stalls the model's threads, which wait for each other
(see docs/tracking.md for the numbers).
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

import cv2
import numpy as np

from ..engine.postprocess import mask_geometry
from ..engine.tracking import MaskTracker, TrackedMask, TrackerConfig, lower_this_thread_priority
from .buffers import Frame
from .params import TRACK_RATE_ON_CPU_HZ

if TYPE_CHECKING:
    from .camera_stream import CameraStream
    from .params import NodeSettings
    from .target import ActiveCommand, Target


@dataclass
class TrackedResult:
    """The fields of an engine SegmentationResult that publishing reads, for a carried mask."""

    expression: str
    found: bool
    confidence: float  # P(target found): the answer's, at most the track's confidence; 0 when the track is lost
    mask: np.ndarray
    bbox: tuple[int, int, int, int] | None
    centroid: tuple[float, float] | None
    area: int


def tracked_results(expressions: list[str], confidences: list[float], states: list[TrackedMask],
                    centroid_of_largest_component: bool = False) -> list[TrackedResult]:
    """The tracker's masks on a frame as results to publish, one per target (geometry at full resolution)."""
    results = []
    for expression, confidence, state in zip(expressions, confidences, states):
        geometry = mask_geometry(state.mask, centroid_of_largest_component)
        found = state.found and geometry.area > 0
        # P(target found) on this frame: the answer's, as far as the track still holds; none once the track is lost
        results.append(TrackedResult(expression, found, min(confidence, state.confidence) if found else 0.0, state.mask,
                                     geometry.bbox, geometry.centroid, geometry.area))
    return results


# OpenCV's DIS optical flow refuses pictures under 12 px a side; such frames get model answers only
MIN_TRACKING_SIDE_PX = 12


def trackable(frame: Frame) -> bool:
    return min(frame.rgb.shape[:2]) >= MIN_TRACKING_SIDE_PX


def mean_interval(times) -> float | None:
    """Mean time between successive ``times`` (oldest first); None with fewer than two."""
    return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None


def frame_key(frame: Frame) -> tuple[float, float]:
    return (frame.received, frame.stamp)


@dataclass
class _Answer:
    """The model answers a camera's tracks rest on, per target: the newest one, or an earlier one where the newest
    said "not found" about a target the tracker held hidden on that frame (the track goes on)."""

    serial: int
    expressions: list[str]
    stamps: list[float]  # of the answered frame, per target
    confidences: list[float]  # P(target found) of the answer, per target


@dataclass
class _CameraTrack:
    tracker: MaskTracker
    answer: _Answer | None = None
    last_frame: Frame | None = None  # the newest frame moved to
    last_seen: tuple | None = None  # key of the newest frame seen (moved to or not)
    remembered: tuple | None = None  # key of the last frame the model took (its chain is kept)
    next_due: float = 0.0  # receipt time from which the next frame is due under track_rate_hz (see _due)
    publish_newest: bool = False  # a fresh answer was anchored: publish it on the newest frame now
    arrivals: deque = field(default_factory=lambda: deque(maxlen=20))  # receipt times of the frames seen
    answer_times: deque = field(default_factory=lambda: deque(maxlen=5))  # time.monotonic() of the last answers


class TrackingWorker:
    """Tracks every camera between model answers (see the module docstring).

    It sees of the node only what it needs: ``settings()`` (the node's current settings, None before configure),
    ``target`` (the command whose answers it carries, and the gate results of an old command never pass),
    ``streams()`` (the cameras), ``report(text)`` (a problem for /diagnostics) and ``logger``."""

    def __init__(self, settings: Callable[[], "NodeSettings | None"], target: "Target",
                 streams: Callable[[], Iterable["CameraStream"]], report: Callable[[str], None], logger) -> None:
        self._settings, self._target, self._streams, self._report, self._logger = settings, target, streams, report, logger
        self._cameras: dict[int, _CameraTrack] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0  # tracked results sent (the tracking benchmark reads it)

    # lifecycle -------------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mllmseg_tracking", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)
        self._thread = None
        with self._lock:
            self._cameras = {}

    def wake(self) -> None:
        self._wake.set()

    # decisions -------------------------------------------------------------------------------------------------------
    def _camera(self, stream: "CameraStream") -> _CameraTrack:
        with self._lock:
            camera = self._cameras.get(id(stream))
            if camera is None:
                camera = self._cameras[id(stream)] = _CameraTrack(MaskTracker(self._config()))
            return camera

    def _config(self) -> TrackerConfig:
        return TrackerConfig(min_confidence=self._settings().track_min_confidence)

    def wanted(self, settings, camera: _CameraTrack | None = None) -> bool:
        """Whether frames between answers get tracked results now."""
        if settings is None or settings.mode == "once" or settings.tracking == "off":
            return False
        if settings.tracking == "on":
            return True
        # auto: while the model answers more slowly than the camera sends frames (unknown yet: yes)
        answers, arrivals = (list(camera.answer_times), list(camera.arrivals)) if camera else ([], [])
        if len(answers) < 2 or len(arrivals) < 3:
            return True
        return mean_interval(answers) > 1.5 * mean_interval(arrivals)

    # hand-over from the inference thread ---------------------------------------------------------------------------
    def model_answered(self, stream: "CameraStream", frame: Frame, command: "ActiveCommand", results) -> None:
        """A model answer to ``frame`` (already published as the model's): it re-anchors this camera's track."""
        camera = self._camera(stream)
        camera.answer_times.append(time.monotonic())
        if not trackable(frame):
            self._logger.warning(f"{frame.rgb.shape[1]}x{frame.rgb.shape[0]} frames are too small to track "
                                           f"(optical flow needs {MIN_TRACKING_SIDE_PX} px a side): model answers "
                                           "only", throttle_duration_sec=60.0)
        if not trackable(frame) or not self.wanted(self._settings(), camera):
            camera.tracker.reset()
            camera.answer = None
            return
        earlier = camera.answer if camera.answer is not None and camera.answer.serial == command.serial else None
        key = frame_key(frame)
        states = camera.tracker.anchor(key, [r.mask if r.found else None for r in results], keep_hidden=earlier is not None)
        if not states:  # the frame was never remembered (tracking just turned on): start from the next answer
            camera.answer = None
            return
        answer = _Answer(command.serial, [r.expression for r in results], [frame.stamp] * len(results),
                         [float(r.confidence) for r in results])
        for index, state in enumerate(states):
            if state.answer_frame != key and earlier is not None and index < len(earlier.stamps):  # a track kept on
                answer.stamps[index], answer.confidences[index] = earlier.stamps[index], earlier.confidences[index]
        camera.answer = answer
        latest = stream.latest  # the answer is published on the newest frame at once (unless it is that frame)
        camera.publish_newest = latest is not None and frame_key(latest) != key
        self._wake.set()

    # the thread ------------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        lower_this_thread_priority()  # inference first: tracking must not slow the model down
        # OpenCV's own worker threads would be neither niced nor counted in this thread's CPU time (the budget), and
        # under a busy model they spin for no gain: the tracker is as fast on one thread (benchmarks/README.md)
        cv2.setNumThreads(1)
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            for stream in list(self._streams()):
                if self._stop.is_set():
                    return
                try:
                    self._follow(stream)
                except Exception as exc:  # a bad frame must not end tracking for good
                    self._report(f"tracking: {exc}")
                    self._logger.error(f"tracking failed on this frame: {exc}", throttle_duration_sec=5.0)

    def _follow(self, stream: "CameraStream") -> None:
        settings, command = self._settings(), self._target.current
        camera = self._camera(stream)
        if command is None or (camera.answer is not None and camera.answer.serial != command.serial):
            camera.tracker.reset()  # a new command or a stop: the old target's track is gone
            camera.answer = None
        frame = stream.latest
        new_frame = frame is not None and frame_key(frame) != camera.last_seen
        if new_frame:
            camera.last_seen = frame_key(frame)
            camera.arrivals.append(frame.received)
        if command is None or not self.wanted(settings, camera) or (frame is not None and not trackable(frame)):
            return
        flying = stream.in_flight  # the frame the model works on: keep a chain from it, so its answer comes forward
        if flying is not None and frame_key(flying) != camera.remembered and trackable(flying):
            camera.remembered = frame_key(flying)
            camera.tracker.remember(flying.rgb, camera.remembered)
        if camera.tracker.config.min_confidence != settings.track_min_confidence:
            camera.tracker.config = dataclasses.replace(camera.tracker.config, min_confidence=settings.track_min_confidence)
        # A fresh answer is carried to the newest frame at once, one the schedule skipped included; otherwise at most
        # the rate (a skipped frame is not compared with anything: the next one is compared with the last one moved to)
        fresh_elsewhere = camera.publish_newest and frame is not None and (
            camera.last_frame is None or frame_key(frame) != frame_key(camera.last_frame))
        due = fresh_elsewhere or (new_frame and self._due(camera, frame.received, self.rate_hz(settings)))
        self._carry(stream, camera, command, frame if due else None)

    @staticmethod
    def rate_hz(settings) -> float:
        """Tracked frames a second per camera at most (0: every frame): track_rate_hz, or where that is 0 and the
        model runs on the CPU, TRACK_RATE_ON_CPU_HZ."""
        if settings.track_rate_hz > 0 or not str(settings.device).startswith("cpu"):
            return settings.track_rate_hz
        return TRACK_RATE_ON_CPU_HZ

    @staticmethod
    def _due(camera: _CameraTrack, received: float, rate_hz: float) -> bool:
        """Whether a new frame is tracked under ``rate_hz`` (0: every frame). Due times advance by whole periods, and
        a frame within half a camera period of one counts as on time, so a rate that divides the camera's gives evenly
        spaced frames (7.5 Hz on a 15 fps camera: every 2nd) despite arrival jitter, and never more than the rate on
        average. After a pause (no frames, or tracking not wanted) the schedule starts again from the frame."""
        if rate_hz <= 0:
            return True
        period, camera_period = 1.0 / rate_hz, mean_interval(camera.arrivals)
        slack = 0.5 * min(camera_period or 0.0, period)
        if received < camera.next_due - slack:
            return False
        camera.next_due = camera.next_due + period if received < camera.next_due + slack else received + period
        return True

    def _carry(self, stream: "CameraStream", camera: _CameraTrack, command: "ActiveCommand", frame: Frame | None) -> None:
        """Move the track to ``frame`` (None: publish the fresh answer on the newest frame moved to) and publish."""
        if frame is not None:
            states = camera.tracker.add_frame(frame.rgb, frame_key(frame))
            camera.last_frame = frame
        elif camera.publish_newest and camera.last_frame is not None:
            states, frame = camera.tracker.results(), camera.last_frame
        else:
            return
        # Only frames the model is not answering: it is busy with an older one (or has just answered it)
        flying = stream.in_flight
        busy = flying is not None and frame_key(flying) != frame_key(frame)
        fresh_answer, camera.publish_newest = camera.publish_newest, False
        answer = camera.answer
        if answer is None or not states or not (busy or fresh_answer) or not self._target.is_current(command):
            return
        self._publish(stream, frame, command, answer, states)

    def _publish(self, stream: "CameraStream", frame: Frame, command: "ActiveCommand", answer: _Answer,
                 states: list[TrackedMask]) -> None:
        settings = self._settings()
        results = tracked_results(answer.expressions, answer.confidences, states, settings.centroid_of_largest_component)
        stream.wait_for_depth_pair(frame, settings)  # its own depth image may come a few ms after the frame
        array = stream.results_array(frame, command.text, results, settings, {})
        for segmentation, state, answer_stamp in zip(array.segmentations, states, answer.stamps):
            segmentation.source = segmentation.SOURCE_TRACKED
            segmentation.answer_age_s = float(frame.stamp - answer_stamp)
            segmentation.track_confidence = float(state.confidence)
            segmentation.track_status = "tracking" if segmentation.found else state.reason
        # through the target's gate: once a stop or a new command has returned, nothing tracked about the old one
        if self._target.publish_if_current(command, lambda: stream.publisher.publish(array, frame, results, settings.publish_markers)):
            self.published += 1
