"""Masks carried between model answers by dense optical flow (numpy + OpenCV, no ROS, no torch).

A slow model answers a frame seconds after it was taken; meanwhile the camera and the objects move. ``MaskTracker``
follows one camera: each new frame is compared with the previous one by OpenCV's DIS optical flow on a downscaled grey
image, and every mask it carries is moved to the new frame by backward warping (``cv2.remap``).

Chains, not repeated warps: for each mask the tracker keeps a map from the newest frame back to the frame the mask was
drawn on (the model's frame), composed step by step, and warps the original mask through it once per frame, so the
mask's edge does not blur away over hundreds of frames. A frame handed to the model gets such a chain too
(``remember``), so its answer, seconds later, is brought forward to the newest frame at once (``anchor``).

Why a track is dropped (``TrackedMask.reason``), checked every frame:
- "left the view": the product of the per-step fractions of the target whose forward flow stays inside the image;
- "occluded": the target's pixels whose forward and backward flows disagree (occlusion's signature), or a mask that
  shrank well below the area its own motion predicts;
- "low tracking confidence": the running forward-backward consistency of the target's motion.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

LEFT_VIEW = "left the view"
OCCLUDED = "occluded"
LOW_CONFIDENCE = "low tracking confidence"
TOO_SMALL = "target too small to track"
NOT_FOUND = "not found by the model"


@dataclass(frozen=True)
class TrackerConfig:
    flow_width: int = 320  # frames are downscaled to this width for the flow (640 x 480 -> 320 x 240)
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
    max_fb_error_px: float = 1.0  # forward-backward disagreement (flow pixels) above which a pixel is inconsistent
    min_confidence: float = 0.5  # running consistency below this drops the track
    confidence_smoothing: float = 0.5  # weight of the newest step in the running consistency
    min_in_view: float = 0.4  # drop when less than this fraction of the target is still inside the image
    min_visible: float = 0.4  # drop when less than this fraction of the target moved consistently in one step
    min_area_ratio: float = 0.45  # drop when the mask is this much smaller than its own motion predicts
    min_area_px: int = 16  # masks smaller than this (full-resolution pixels) are not tracked
    refine_to_source: bool = True  # re-measure each chain against its source frame (no drift; one more flow)
    max_refine_px: float = 1.0  # larger corrections from the direct flow are taken as failed matches
    max_points: int = 4000  # target pixels sampled for the consistency and the motion fit


@dataclass
class TrackedMask:
    """One target on the newest frame: ``found`` False (with ``reason``) once the track is dropped."""

    mask: np.ndarray  # H x W bool, on the newest frame (all False when not found)
    found: bool
    confidence: float  # running forward-backward consistency, 0..1 (1 on the model's own frame)
    reason: str = ""  # why not found; empty while tracked
    steps: int = 0  # flow steps since the model's frame
    in_view: float = 1.0  # estimated fraction of the target still inside the image


@dataclass
class _Chain:
    """Map from the newest flow frame back to a source frame: source position of every flow pixel (h x w x 2)."""

    source_grey: np.ndarray  # the source frame, downscaled grey (kept for a first step that skips frames)
    map_xy: np.ndarray | None = None  # None until the first frame after the source
    steps: int = 0


@dataclass
class _Track:
    anchor_mask: np.ndarray  # float32 H x W, the model's mask on its own frame
    state: TrackedMask
    expected_area: float  # area the target should have now, from its motion (scale) and what left the view
    prev_small: np.ndarray = field(default=None)  # bool h x w, the mask on the previous flow frame


def _identity(height: int, width: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


class MaskTracker:
    """Optical-flow mask tracking for one camera. Thread-safe: frames from one thread, answers from another."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._flow = cv2.DISOpticalFlow_create(config.preset)
        self._refiner = cv2.DISOpticalFlow_create(config.preset)
        self._lock = threading.Lock()
        self._grey: np.ndarray | None = None  # newest frame, downscaled grey
        self._frame_id: object = None
        self._full_shape: tuple[int, int] | None = None
        self._grid: np.ndarray | None = None
        self._pending: dict[object, _Chain] = {}  # frames the model is answering
        self._tracks: list[_Track] = []
        self._track_chain: _Chain | None = None  # all tracks come from one answer: one chain back to its frame

    # --- state -------------------------------------------------------------------------------------------------------
    @property
    def frame_id(self) -> object:
        """Id of the newest frame the tracker has seen."""
        return self._frame_id

    @property
    def tracking(self) -> bool:
        with self._lock:
            return any(track.state.found for track in self._tracks)

    def reset(self) -> None:
        """Forget every track and every frame waiting for an answer (a new command)."""
        with self._lock:
            self._tracks, self._pending, self._track_chain = [], {}, None

    def results(self) -> list[TrackedMask]:
        with self._lock:
            return [track.state for track in self._tracks]

    # --- frames --------------------------------------------------------------------------------------------------------
    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        height, width = grey.shape
        scale = min(1.0, self.config.flow_width / width)
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        return cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if size != (width, height) else grey.copy()

    def remember(self, image: np.ndarray, frame_id: object) -> None:
        """``image`` goes to the model: keep a chain from it so its answer can be brought to the newest frame."""
        grey = self._small_grey(image)
        with self._lock:
            chain = _Chain(grey)
            if frame_id == self._frame_id:  # the tracker's newest frame itself
                chain.map_xy = _identity(*grey.shape)
            self._pending = {frame_id: chain}  # one model call at a time per camera: older ones are never answered

    def add_frame(self, image: np.ndarray, frame_id: object) -> list[TrackedMask]:
        """Move every chain and track to this frame (RGB or grey, any size but always the same)."""
        grey = self._small_grey(image)
        with self._lock:
            if frame_id == self._frame_id and self._grey is not None:  # seen already
                return [track.state for track in self._tracks]
            if self._grey is None or grey.shape != self._grey.shape or self._full_shape != image.shape[:2]:
                self._start(grey, image.shape[:2], frame_id)
                return [track.state for track in self._tracks]
            live = [track for track in self._tracks if track.state.found]
            if not self._pending and not live:  # nothing to carry: no flow either
                self._grey, self._frame_id = grey, frame_id
                return [track.state for track in self._tracks]
            backward = self._flow.calc(grey, self._grey, None)  # new -> previous: where each new pixel came from
            forward = self._flow.calc(self._grey, grey, None) if live else None
            step_map = self._grid + backward
            for key, chain in self._pending.items():
                if key == frame_id:  # the model's frame reached the tracker after it was handed over
                    chain.map_xy, chain.steps = self._grid.copy(), 0
                else:
                    self._advance(chain, grey, step_map)
            if live:
                self._advance(self._track_chain, grey, step_map)
            for track in live:
                self._update(track, forward, backward)
            self._grey, self._frame_id = grey, frame_id
            return [track.state for track in self._tracks]

    def _start(self, grey: np.ndarray, full_shape: tuple[int, int], frame_id: object) -> None:
        """First frame (or a new size): nothing to carry over."""
        self._grey, self._full_shape, self._frame_id = grey, full_shape, frame_id
        self._grid = _identity(*grey.shape)
        self._tracks, self._track_chain = [], None
        self._pending = {key: chain for key, chain in self._pending.items() if key == frame_id}
        for chain in self._pending.values():
            chain.map_xy = self._grid.copy()

    def _advance(self, chain: _Chain, grey: np.ndarray, step_map: np.ndarray) -> None:
        if chain.map_xy is None:  # the source frame was never a tracker frame: one direct step from it
            chain.map_xy = self._grid + self._flow.calc(grey, chain.source_grey, None)
        else:  # compose: new pixel -> previous frame (step_map) -> source (the old map, sampled there)
            chain.map_xy = cv2.remap(chain.map_xy, step_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            if self.config.refine_to_source:
                # Composed steps add up each step's small bias; a direct flow to the source frame, started from the
                # composed guess, does not drift (the source's appearance is what the mask was drawn on).
                # Where the source looks too different (rotated, scaled) the direct match fails: there the change
                # is large, and the composed guess is kept.
                guess = chain.map_xy - self._grid
                refined = self._refiner.calc(grey, chain.source_grey, guess.copy())
                change = refined - guess
                small = (np.abs(change[..., 0]) + np.abs(change[..., 1]) <= self.config.max_refine_px)[..., None]
                chain.map_xy = self._grid + np.where(small, refined, guess)
        chain.steps += 1

    # --- answers -------------------------------------------------------------------------------------------------------
    def anchor(self, frame_id: object, masks: list[np.ndarray | None]) -> list[TrackedMask]:
        """The model's masks for frame ``frame_id`` (None: not found), brought to the newest frame; they replace every
        track. A frame never ``remember``-ed (or forgotten by ``reset``) anchors nothing."""
        with self._lock:
            chain = self._pending.pop(frame_id, None)
            if chain is None or self._grey is None:
                self._tracks, self._track_chain = [], None
                return []
            if chain.map_xy is None:  # answered before any newer frame arrived
                chain.map_xy = self._grid.copy() if frame_id == self._frame_id else self._grid + self._flow.calc(
                    self._grey, chain.source_grey, None)
            self._track_chain = chain
            self._tracks = [self._new_track(mask) for mask in masks]
            return [track.state for track in self._tracks]

    def _new_track(self, mask: np.ndarray | None) -> _Track:
        steps = self._track_chain.steps
        empty = np.zeros(self._full_shape, bool)
        if mask is None or not mask.any():
            return _Track(np.zeros(self._full_shape, np.float32), TrackedMask(empty, False, 0.0, NOT_FOUND, steps), 0.0)
        if int(mask.sum()) < self.config.min_area_px:
            return _Track(np.zeros(self._full_shape, np.float32), TrackedMask(empty, False, 0.0, TOO_SMALL, steps), 0.0)
        track = _Track(mask.astype(np.float32), TrackedMask(mask.copy(), True, 1.0, steps=steps), float(mask.sum()))
        if steps:  # brought over the frames since the model's: the area it has now is the reference from here on
            track.state.mask = self._warp(track)
            track.expected_area = float(track.state.mask.sum())
            if not track.state.mask.any():
                self._drop(track, LEFT_VIEW)
                track.state.in_view = 0.0
        track.prev_small = self._to_small(track.state.mask)
        return track

    # --- one step of one track ------------------------------------------------------------------------------------------
    def _warp(self, track: _Track) -> np.ndarray:
        height, width = self._full_shape
        small_h, small_w = self._grey.shape
        # the map is in flow pixels: scale to full-resolution pixels, then sample the full-resolution anchor mask
        full_map = cv2.resize(self._track_chain.map_xy, (width, height), interpolation=cv2.INTER_LINEAR)
        full_map[..., 0] = (full_map[..., 0] + 0.5) * (width / small_w) - 0.5
        full_map[..., 1] = (full_map[..., 1] + 0.5) * (height / small_h) - 0.5
        warped = cv2.remap(track.anchor_mask, full_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return warped >= 0.5

    def _to_small(self, mask: np.ndarray) -> np.ndarray:
        small_h, small_w = self._grey.shape
        return cv2.resize(mask.astype(np.uint8), (small_w, small_h), interpolation=cv2.INTER_NEAREST).astype(bool)

    def _update(self, track: _Track, forward: np.ndarray, backward: np.ndarray) -> None:
        config, state = self.config, track.state
        small_h, small_w = self._grey.shape
        ys, xs = np.nonzero(track.prev_small)
        if len(xs) > config.max_points:  # an even subsample: the statistics, not every pixel, are needed
            keep = np.linspace(0, len(xs) - 1, config.max_points).astype(int)
            ys, xs = ys[keep], xs[keep]
        state.steps = self._track_chain.steps
        if len(xs) == 0:
            self._drop(track, LEFT_VIEW if state.in_view < 1.0 else OCCLUDED)
            return
        moved = forward[ys, xs]
        dest_x, dest_y = xs + moved[:, 0], ys + moved[:, 1]
        inside = (dest_x >= -0.5) & (dest_x <= small_w - 0.5) & (dest_y >= -0.5) & (dest_y <= small_h - 0.5)
        state.in_view *= float(_coverage(dest_x, small_w).dot(_coverage(dest_y, small_h)) / len(xs))
        back = backward[np.clip(np.round(dest_y), 0, small_h - 1).astype(int), np.clip(np.round(dest_x), 0, small_w - 1).astype(int)]
        consistent = inside & (np.hypot(moved[:, 0] + back[:, 0], moved[:, 1] + back[:, 1]) <= config.max_fb_error_px)
        visible = float(consistent.sum() / max(1, inside.sum()))
        state.confidence = (1 - config.confidence_smoothing) * state.confidence + config.confidence_smoothing * visible
        track.expected_area *= _area_scale(xs[consistent], ys[consistent], dest_x[consistent], dest_y[consistent])
        state.mask = self._warp(track)
        area = float(state.mask.sum())
        if state.in_view < config.min_in_view or (area == 0 and not inside.all()):
            self._drop(track, LEFT_VIEW)
        elif visible < config.min_visible or area < config.min_area_ratio * track.expected_area * state.in_view:
            self._drop(track, OCCLUDED)
        elif state.confidence < config.min_confidence:
            self._drop(track, LOW_CONFIDENCE)
        elif area < config.min_area_px:
            self._drop(track, TOO_SMALL)
        else:
            track.prev_small = self._to_small(state.mask)

    def _drop(self, track: _Track, reason: str) -> None:
        track.state.found, track.state.reason = False, reason
        track.state.mask = np.zeros(self._full_shape, bool)


def _area_scale(xs: np.ndarray, ys: np.ndarray, dest_x: np.ndarray, dest_y: np.ndarray) -> float:
    """How much the target's area changed in one step: the determinant of the affine motion fitted to its pixels."""
    if len(xs) < 6:
        return 1.0
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
    solution, *_ = np.linalg.lstsq(design, np.stack([dest_x, dest_y], axis=1).astype(np.float64), rcond=None)
    scale = float(abs(np.linalg.det(solution[:2, :2])))
    return scale if np.isfinite(scale) and 0.5 < scale < 2.0 else 1.0


def _coverage(position: np.ndarray, size: int) -> np.ndarray:
    """How much of a one-pixel square centred at ``position`` lies inside [-0.5, size - 0.5] along one axis: counting
    whole pixels would say a mask leaves by 2 columns a step when it moves 1.5."""
    return np.clip(np.minimum(position + 0.5, size - 0.5) - np.maximum(position - 0.5, -0.5), 0.0, 1.0)
