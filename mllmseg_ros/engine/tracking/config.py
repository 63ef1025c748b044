"""The tracker's settings: one tree of frozen dataclasses, every leaf reachable from ``TrackerConfig``.

Only what a user may want to change is a setting (``min_confidence`` is the node's ``track_min_confidence``); the
numbers nobody tunes are named constants beside the code that uses them, each with a line on why it is what it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2


@dataclass(frozen=True)
class FlowConfig:
    width: int = 320  # frames are downscaled to this width for the flow (640 x 480 -> 320 x 240)
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST  # DIS's speed / accuracy preset


@dataclass(frozen=True)
class MotionConfig:
    max_object_step_px: int = 8  # how far (flow pixels) a target may move on its own, against the camera, per frame
    max_carried_px: int = 48  # ... and, at most, over the frames an answer is carried


@dataclass(frozen=True)
class AppearanceConfig:
    min_correlation: float = 0.5  # a textured pixel looks as on the model's frame where their local correlation is this
    colour_tolerance: float = 0.15  # a plain pixel does where its colour is within this share (and 14 grey levels)


@dataclass(frozen=True)
class ColourConfig:
    ring_px: int = 30  # a target's colours are learnt against a ring this wide around it (full-resolution pixels)
    min_separation: float = 0.75  # ... and used where they tell this share of target and ring pixels apart
    clean_separation: float = 0.99  # where they tell this share apart (colours found nowhere around the target, a toy
    #                                 on a table), they alone say how much of it shows, and where its outline is:
    band_px: int = 16  # ... within this far of the carried outline (full resolution; a solid object turning in view),
    min_visible: float = 0.05  # ... and it is in sight while this share of it shows them
    snap_px: int = 2  # the carried shape is slid onto its colours by at most this much a frame (flow pixels)


@dataclass(frozen=True)
class OcclusionConfig:
    min_visible: float = 0.2  # a target with less than this share looking as on the model's frame is hidden
    visible_to_show: float = 0.5  # a hidden one is shown again once this share does
    min_in_view: float = 0.4  # a target with less than this share inside the image has left the view
    max_unseen_frames: int = 150  # a target hidden or out of view is looked for this many frames, then given up


@dataclass(frozen=True)
class TrackerConfig:
    min_confidence: float = 0.5  # a track whose confidence falls below this says so ("low tracking confidence")
    min_area_px: int = 16  # answers smaller than this (full-resolution pixels) are not tracked
    flow: FlowConfig = field(default_factory=FlowConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    colour: ColourConfig = field(default_factory=ColourConfig)
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
