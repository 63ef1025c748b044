"""Masks carried between model answers (numpy + OpenCV, no ROS, no torch). See docs/tracking.md for the design.

A slow model answers a frame seconds after it was taken; meanwhile the camera and the objects move. ``MaskTracker``
follows one camera: it is told which frame went to the model (``remember``), sees every frame to track
(``add_frame``) and gets the model's masks (``anchor``), which it brings to the newest frame at once.

- ``flow``: one dense optical flow per frame, the camera's motion (a homography) and the exposure change fitted on it,
  and the chain that carries a frame waiting for its answer to the newest frame.
- ``motion``: the target's own motion: its flow where it differs from the camera's, and its look searched nearby.
- ``appearance``: whether the target still looks as on the model's frame where the motion puts it.
- ``occlusion``: targets hidden or out of the view, moved with the camera and looked for until they show again.
- ``tracker``: ``MaskTracker``, the public face; ``state``: ``TrackedMask`` and the track's ``TrackPhase``.
"""
from .config import AppearanceConfig, FlowConfig, MotionConfig, OcclusionConfig, TrackerConfig
from .ops import lower_this_thread_priority
from .state import LEFT_VIEW, LOW_CONFIDENCE, NOT_FOUND, OCCLUDED, TOO_SMALL, TrackedMask, TrackPhase
from .tracker import MaskTracker

__all__ = ["MaskTracker", "TrackedMask", "TrackPhase", "TrackerConfig", "FlowConfig", "MotionConfig", "AppearanceConfig",
           "OcclusionConfig", "lower_this_thread_priority", "LEFT_VIEW", "OCCLUDED", "LOW_CONFIDENCE", "NOT_FOUND",
           "TOO_SMALL"]
