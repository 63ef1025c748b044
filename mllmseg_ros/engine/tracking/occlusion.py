"""Targets out of sight: hidden behind something or outside the image, followed until they show again.

A target the tracker cannot see is not dropped for good: each frame its place is moved as the camera moves (the
camera's homography, which a planar scene or a turning camera follows exactly), plus its own steady motion against
the camera's as measured while it was in full sight (parallax, or an object moving by itself), and its look is
checked there and a little around. Once enough of it looks as on the model's frame again, it is published again.
After ``OcclusionConfig.max_unseen_frames`` unseen frames it is given up (LOST) until the next answer.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from .appearance import Look, Reference, look
from .config import TrackerConfig
from .flow import FrameView, Step
from .motion import aligned, own_shift, shifted, snapped
from .ops import project, translation
from .state import TrackPhase

RELATIVE_FRAMES = 30  # frames of own motion kept: the median of the last second or two of full sight
PARTLY_SHOWN = 0.25  # an unseen target is aligned with what the frame shows where this share of it agrees
IN_FULL_SIGHT = 0.9  # share visible at which a frame's own motion is the target's (not an occluder's edge)


class RelativeMotion:
    """A target's own motion per frame against the camera's, while it was in full sight (flow pixels)."""

    def __init__(self, earlier: "RelativeMotion | None" = None) -> None:
        self.history: deque = deque(earlier.history if earlier else (), maxlen=RELATIVE_FRAMES)

    def record(self, reference: Reference, moved: np.ndarray, camera_only: np.ndarray) -> None:
        centre = reference.samples.mean(0, keepdims=True)
        self.history.append(project(moved, centre)[0] - project(camera_only, centre)[0])

    @property
    def per_frame(self) -> np.ndarray:
        return np.median(np.array(self.history), axis=0) if self.history else np.zeros(2)

    def predict(self, homography: np.ndarray, step: Step) -> np.ndarray:
        """Where an unseen target is on the new frame: moved with the camera, plus its own steady motion."""
        dx, dy = self.per_frame
        return translation(float(dx), float(dy)) @ step.camera @ homography


def phase_of(view_look: Look, config: TrackerConfig, shown: bool) -> TrackPhase:
    """In sight, hidden or out of view, from how the target looks where the motion puts it. ``shown``: it was in
    sight on the previous frame (it stays so down to ``min_visible``; an unseen one needs ``visible_to_show``)."""
    occlusion = config.occlusion
    if view_look.in_view < occlusion.min_in_view:
        return TrackPhase.OUT_OF_VIEW
    if not view_look.judged:  # too little of it to tell: as it was
        return TrackPhase.TRACKING if shown else TrackPhase.HIDDEN
    if view_look.by_colour:  # colours found nowhere around it: even a sliver of them is the target
        needed = config.colour.min_visible
    else:
        needed = occlusion.min_visible if shown else occlusion.visible_to_show
    return TrackPhase.TRACKING if view_look.visible >= needed else TrackPhase.HIDDEN


def look_for(reference: Reference, homography: np.ndarray, gain: np.ndarray, view: FrameView, radius: int,
             config: TrackerConfig) -> tuple[np.ndarray, Look]:
    """The target's look where ``homography`` puts it, or a little around where it shows: aligned with what the
    frame shows there, or moved to where its look matches best within ``radius``. A place where it does not show is
    no better than the prediction, however its look compares there: the prediction is kept."""
    here = look(reference, homography, gain, view, config.appearance)
    if phase_of(here, config, shown=False) is not TrackPhase.HIDDEN:
        return homography, here
    for moved in (aligned(reference, homography, gain, view, PARTLY_SHOWN),
                  shifted(homography, own_shift(reference, homography, gain, view, radius)),
                  snapped(reference, homography, gain, view, radius)):
        if moved is homography:
            continue
        there = look(reference, moved, gain, view, config.appearance)
        if phase_of(there, config, shown=False) is TrackPhase.TRACKING and there.visible > here.visible:
            return moved, there
    return homography, here
