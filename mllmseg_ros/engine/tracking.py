"""Masks carried between model answers: each target aligned to its look on the model's frame (numpy + OpenCV, no ROS).

A slow model answers a frame seconds after it was taken; meanwhile the camera and the objects move. ``MaskTracker``
follows one camera. Per target it keeps an affine map from the newest frame back to the frame the model answered
(the source frame) and warps the model's mask through it, so the mask keeps its edge over hundreds of frames.

Each new frame, per target:
1. predict: the map is moved by the optical flow of the target's region (OpenCV DIS on a downscaled grey image) plus
   the target's own motion of the last step (an object sliding over the table moves unlike its background);
2. align: the target's pixels on the source frame (and a thin ring of their surroundings, where a plain object's
   contrast is) are aligned to the new frame by ECC (``cv2.findTransformECC``, affine), started from the prediction.
   Aligning to the source frame, not to the previous frame, means errors do not add up from frame to frame.

Dense flow alone is smooth across object edges: a small plain object drifts with the table under it (the first
version of this tracker, which warped masks by composed flow, reached 0.54-0.63 IoU at 2 s per answer; see
docs/tracking.md).

A frame handed to the model (``remember``) gets a dense map composed from the per-frame flows, so its answer, seconds
later, starts near where the target is now; a masked template search then finds it within ``max_carried_shift_px``
(it may have slid on its own) and ECC aligns it (``anchor``).

Why a track is dropped (``TrackedMask.reason``), checked every frame:
- "left the view": less than ``min_in_view`` of the target's silhouette is inside the image (the target's source
  pixels mapped to the new frame, times what was already outside when the model answered);
- "occluded": less than ``min_visible`` of the target's pixels look as on the source frame;
- "low tracking confidence": the alignment's correlation coefficient falls below ``min_confidence``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .tracking_ops import lower_this_thread_priority, match_shift

__all__ = ["MaskTracker", "TrackedMask", "TrackerConfig", "lower_this_thread_priority"]

LEFT_VIEW = "left the view"
OCCLUDED = "occluded"
LOW_CONFIDENCE = "low tracking confidence"
TOO_SMALL = "target too small to track"
NOT_FOUND = "not found by the model"


@dataclass(frozen=True)
class TrackerConfig:
    flow_width: int = 320  # frames are downscaled to this width for flow and alignment (640 x 480 -> 320 x 240)
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
    min_confidence: float = 0.5  # alignment correlation (ECC) below this drops the track
    min_in_view: float = 0.4  # drop when less than this fraction of the target is still inside the image
    min_visible: float = 0.4  # drop when less than this fraction of the target's pixels look as on the model's frame
    min_area_px: int = 16  # masks smaller than this (full-resolution pixels) are not tracked
    appearance_tolerance: float = 20.0  # grey levels (after the mean brightness change): a pixel farther off differs
    edge_px: int = 2  # ring around the target included in the alignment (flow pixels)
    roi_margin_px: int = 6  # the alignment looks this far around the predicted target (flow pixels)
    ecc_iterations: int = 40
    ecc_epsilon: float = 1e-4
    ecc_blur: int = 3  # Gaussian size ECC smooths both images with (odd)
    max_step_change: float = 0.25  # an alignment changing the map's scale/shear by more than this is taken as failed
    own_motion_gain: float = 0.5  # how much of the last step's correction is expected again in the next step
    max_object_step_px: int = 8  # the target's own motion per frame at most this (flow pixels)
    max_carried_shift_px: int = 48  # search radius for an answer carried over many frames (flow pixels)
    max_points: int = 2000  # source pixels sampled for the in-view fraction


@dataclass
class TrackedMask:
    """One target on the newest frame: ``found`` False (with ``reason``) once the track is dropped."""

    mask: np.ndarray  # H x W bool, on the newest frame (all False when not found)
    found: bool
    confidence: float  # alignment correlation with the model's frame, 0..1 (1 on the model's own frame)
    reason: str = ""  # why not found; empty while tracked
    steps: int = 0  # frames since the model's frame
    in_view: float = 1.0  # estimated fraction of the target still inside the image


@dataclass
class _Chain:
    """Dense map from the newest flow frame back to a frame the model is answering: source position of every pixel."""

    source_grey: np.ndarray  # the source frame, downscaled grey
    map_xy: np.ndarray | None = None  # h x w x 2; None until the first frame after the source
    steps: int = 0


@dataclass
class _Track:
    state: TrackedMask
    anchor_mask: np.ndarray | None = None  # float32 H x W, the model's mask on its own frame
    source_grey: np.ndarray | None = None  # float32 h x w, the model's frame downscaled
    source_small: np.ndarray | None = None  # bool h x w, the model's mask on it
    source_weight: np.ndarray | None = None  # uint8 h x w, the mask and a ring around it: what the alignment compares
    points: np.ndarray | None = None  # N x 2 (x, y) source pixels of the target, for the in-view fraction
    warp: np.ndarray | None = None  # 2 x 3: newest frame (flow pixels) -> source frame (flow pixels)
    own_step: np.ndarray | None = None  # (dx, dy) flow pixels: the target's motion beyond the flow's, last step
    start_in_view: float = 1.0  # fraction of the target inside the image when the model answered
    hidden_source: np.ndarray | None = None  # uint8 h x w: source pixels hidden on the last frame (left out of the alignment)


def _identity(height: int, width: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


def _homogeneous(warp: np.ndarray) -> np.ndarray:
    return np.vstack([warp, [0.0, 0.0, 1.0]])


def _shifted(warp: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``warp`` applied after moving the newest frame's pixels by (-dx, -dy): the target moved by (dx, dy)."""
    return (_homogeneous(warp) @ np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]]))[:2].astype(np.float32)


def _apply(warp: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ warp[:, :2].T + warp[:, 2]


class MaskTracker:
    """Mask tracking for one camera. Thread-safe: frames from one thread, answers from another."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._flow = cv2.DISOpticalFlow_create(config.preset)
        self._lock = threading.Lock()
        self._grey: np.ndarray | None = None  # newest frame, downscaled grey (uint8)
        self._frame_id: object = None
        self._full_shape: tuple[int, int] | None = None
        self._grid: np.ndarray | None = None
        self._pending: dict[object, _Chain] = {}  # frames the model is answering
        self._tracks: list[_Track] = []
        self._peak_area: dict[int, float] = {}  # per target: its largest mask so far, across answers (until reset)

    # --- state -------------------------------------------------------------------------------------------------------
    @property
    def tracking(self) -> bool:
        with self._lock:
            return any(track.state.found for track in self._tracks)

    def reset(self) -> None:
        """Forget every track and every frame waiting for an answer (a new command)."""
        with self._lock:
            self._tracks, self._pending, self._peak_area = [], {}, {}

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
        """``image`` goes to the model: keep a map from it so its answer can be brought to the newest frame."""
        grey = self._small_grey(image)
        with self._lock:
            chain = _Chain(grey)
            if frame_id == self._frame_id:  # the tracker's newest frame itself
                chain.map_xy = _identity(*grey.shape)
            self._pending = {frame_id: chain}  # one model call at a time per camera: older ones are never answered

    def add_frame(self, image: np.ndarray, frame_id: object) -> list[TrackedMask]:
        """Move every map and track to this frame (RGB or grey, any size but always the same)."""
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
            step_map = self._grid + backward
            for key, chain in self._pending.items():
                if key == frame_id:  # the model's frame reached the tracker after it was handed over
                    chain.map_xy, chain.steps = self._grid.copy(), 0
                elif chain.map_xy is None:  # the source frame was never a tracker frame: one direct step from it
                    chain.map_xy, chain.steps = self._grid + self._flow.calc(grey, chain.source_grey, None), 1
                else:  # compose: new pixel -> previous frame (step_map) -> source (the old map, sampled there)
                    chain.map_xy = cv2.remap(chain.map_xy, step_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                    chain.steps += 1
            for track in live:
                self._predict(track, backward)
            self._grey, self._frame_id = grey, frame_id
            for track in live:
                track.state.steps += 1
                self._align_and_check(track, self._grey.astype(np.float32))
            return [track.state for track in self._tracks]

    def _start(self, grey: np.ndarray, full_shape: tuple[int, int], frame_id: object) -> None:
        """First frame (or a new size): nothing to carry over."""
        self._grey, self._full_shape, self._frame_id = grey, full_shape, frame_id
        self._grid = _identity(*grey.shape)
        self._tracks = []
        self._pending = {key: chain for key, chain in self._pending.items() if key == frame_id}
        for chain in self._pending.values():
            chain.map_xy = self._grid.copy()

    # --- answers -------------------------------------------------------------------------------------------------------
    def anchor(self, frame_id: object, masks: list[np.ndarray | None]) -> list[TrackedMask]:
        """The model's masks for frame ``frame_id`` (None: not found), brought to the newest frame; they replace every
        track. A frame never ``remember``-ed (or forgotten by ``reset``) anchors nothing."""
        with self._lock:
            chain = self._pending.pop(frame_id, None)
            if chain is None or self._grey is None:
                self._tracks = []
                return []
            if chain.map_xy is None:  # answered before any newer frame arrived
                chain.map_xy = self._grid.copy() if frame_id == self._frame_id else self._grid + self._flow.calc(
                    self._grey, chain.source_grey, None)
                chain.steps = 0 if frame_id == self._frame_id else 1
            self._tracks = [self._new_track(index, mask, chain) for index, mask in enumerate(masks)]
            return [track.state for track in self._tracks]

    def _new_track(self, index: int, mask: np.ndarray | None, chain: _Chain) -> _Track:
        config, steps = self.config, chain.steps
        empty = np.zeros(self._full_shape, bool)
        if mask is None or not mask.any():
            return _Track(TrackedMask(empty, False, 0.0, NOT_FOUND, steps))
        if int(mask.sum()) < config.min_area_px:
            return _Track(TrackedMask(empty, False, 0.0, TOO_SMALL, steps))
        track = _Track(TrackedMask(mask.copy(), True, 1.0, steps=steps), anchor_mask=mask.astype(np.float32),
                       source_grey=chain.source_grey.astype(np.float32))
        track.source_small = self._to_small(mask)
        if not track.source_small.any():  # thinner than a flow pixel: keep its nearest flow pixels
            track.source_small = cv2.resize(mask.astype(np.float32), track.source_grey.shape[::-1], interpolation=cv2.INTER_AREA) > 0
        ring = np.ones((2 * config.edge_px + 1,) * 2, np.uint8)
        track.source_weight = cv2.dilate(track.source_small.astype(np.uint8), ring)
        ys, xs = np.nonzero(track.source_small)
        keep = np.linspace(0, len(xs) - 1, min(len(xs), config.max_points)).astype(int)
        track.points = np.stack([xs[keep], ys[keep]], axis=1).astype(np.float32)
        track.own_step = np.zeros(2, np.float32)
        track.start_in_view = self._start_in_view(index, mask)
        track.state.in_view = track.start_in_view
        if steps == 0:  # answered on the newest frame: the model's mask as it is
            track.warp = np.float32([[1, 0, 0], [0, 1, 0]])
            self._check_in_view(track)
            return track
        track.warp = self._warp_from_chain(track, chain)
        if track.warp is None:
            self._drop(track, LEFT_VIEW)
            track.state.in_view = 0.0
            return track
        grey = self._grey.astype(np.float32)
        self._search_carried(track, grey, min(config.max_carried_shift_px, config.max_object_step_px * steps))
        self._align_and_check(track, grey, coarse=True)
        return track

    def _start_in_view(self, index: int, mask: np.ndarray) -> float:
        """A model answer of a target already partly out of the image starts with the fraction it has then (against
        the largest this target was), so a target leaving across answers is still dropped in time."""
        area = float(mask.sum())
        peak = self._peak_area[index] = max(self._peak_area.get(index, 0.0), area)
        touches = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        return min(1.0, area / peak) if touches and peak > 0 else 1.0

    def _warp_from_chain(self, track: _Track, chain: _Chain) -> np.ndarray | None:
        """The affine map that best fits the dense map on the pixels that map into the target (None: none does)."""
        carried = cv2.remap(track.source_small.astype(np.float32), chain.map_xy, None, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 0.5
        ys, xs = np.nonzero(carried)
        if len(xs) < 3:
            return None
        keep = np.linspace(0, len(xs) - 1, min(len(xs), self.config.max_points)).astype(int)
        ys, xs = ys[keep], xs[keep]
        # a similarity (shift, scale, rotation), fitted robustly: the flow inside a plain target is smeared from its
        # surroundings, and a free affine fit of it shears the mask; ECC then fits the full affine on the image itself
        fit, _ = cv2.estimateAffinePartial2D(np.stack([xs, ys], axis=1).astype(np.float32), chain.map_xy[ys, xs],
                                             method=cv2.LMEDS)
        return fit.astype(np.float32) if fit is not None else None

    def _search_carried(self, track: _Track, grey: np.ndarray, radius: int) -> None:
        """An answer carried over many frames: the flow follows the background, so a target that slid on its own is
        looked for (its source pixels, masked template matching) within ``radius`` of where the flow put it."""
        if radius < 1:
            return
        centre = track.points.mean(axis=0)
        inverse = cv2.invertAffineTransform(track.warp)
        guess = _apply(inverse, centre[None])[0] - centre  # where the flow puts the target, as a shift from its source
        found = match_shift(track.source_grey, track.source_small, grey, guess, radius, self.config.appearance_tolerance)
        if found is None:
            return
        shift, cost, guess_cost, _ = found
        if cost < 0.7 * guess_cost:  # clearly better there: the target moved on its own
            delta = shift - guess
            track.warp = _shifted(track.warp, float(delta[0]), float(delta[1]))

    # --- one step of one track ------------------------------------------------------------------------------------------
    def _predict(self, track: _Track, backward: np.ndarray) -> None:
        """Move the map by the flow of the target's region (the previous frame's mask) and its own last motion."""
        region = track.state.mask
        small = self._to_small(region) if region.any() else None
        if small is not None and small.any():
            flow_step = -np.median(backward[small], axis=0)  # previous -> new, of the pixels around the target
        else:
            flow_step = np.zeros(2, np.float32)
        step = flow_step + track.own_step
        track.warp = _shifted(track.warp, float(step[0]), float(step[1]))

    def _align_and_check(self, track: _Track, grey: np.ndarray, coarse: bool = False) -> None:
        config, state = self.config, track.state
        inverse = cv2.invertAffineTransform(track.warp)
        current = _apply(inverse, track.points)
        small_h, small_w = grey.shape
        inside = (current[:, 0] >= -0.5) & (current[:, 0] <= small_w - 0.5) & (current[:, 1] >= -0.5) & (current[:, 1] <= small_h - 0.5)
        if inside.mean() * track.start_in_view < config.min_in_view:
            state.in_view = float(inside.mean() * track.start_in_view)
            self._drop(track, LEFT_VIEW)
            return
        before = track.warp
        rho = self._align(track, grey, current[inside], coarse)
        if track.own_step is not None and state.steps > 1:
            centre = track.points.mean(axis=0)
            moved = _apply(cv2.invertAffineTransform(track.warp), centre[None])[0] - _apply(inverse, centre[None])[0]
            track.own_step = np.clip(track.own_step + config.own_motion_gain * moved, -config.max_object_step_px,
                                     config.max_object_step_px).astype(np.float32)
        del before
        current = _apply(cv2.invertAffineTransform(track.warp), track.points)
        inside = (current[:, 0] >= -0.5) & (current[:, 0] <= small_w - 0.5) & (current[:, 1] >= -0.5) & (current[:, 1] <= small_h - 0.5)
        state.in_view = float(inside.mean() * track.start_in_view)
        state.confidence = float(max(0.0, rho))
        hidden, visible = self._hidden(track, grey)
        if visible < 0.95 and visible >= config.min_visible:  # partly hidden: align again on what is visible
            rho = self._align(track, grey, current[inside])
            hidden, visible = self._hidden(track, grey)
        state.mask = self._warp_mask(track, hidden)
        area = int(state.mask.sum())
        if state.in_view < config.min_in_view or area == 0:
            self._drop(track, LEFT_VIEW)
        elif visible < config.min_visible:
            self._drop(track, OCCLUDED)
        elif state.confidence < config.min_confidence:
            self._drop(track, LOW_CONFIDENCE)
        elif area < config.min_area_px:
            self._drop(track, TOO_SMALL)

    def _check_in_view(self, track: _Track) -> None:
        if track.state.in_view < self.config.min_in_view:
            self._drop(track, LEFT_VIEW)

    def _align(self, track: _Track, grey: np.ndarray, current: np.ndarray, coarse: bool = False) -> float:
        """ECC alignment of the target's source pixels to ``grey`` around ``current`` (its predicted pixels); updates
        ``track.warp`` and returns the correlation (the prediction's own correlation when the alignment fails).
        ``coarse``: first a shift-only alignment at half resolution (a wider basin, for answers carried far)."""
        config = self.config
        small_h, small_w = grey.shape
        margin = config.roi_margin_px + config.edge_px + (config.roi_margin_px if coarse else 0)
        x0, y0 = (int(max(0, np.floor(current[:, i].min()) - margin)) for i in (0, 1))
        x1 = int(min(small_w, np.ceil(current[:, 0].max()) + margin + 1))
        y1 = int(min(small_h, np.ceil(current[:, 1].max()) + margin + 1))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return self._correlation(track, grey)
        offset = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        start = (_homogeneous(track.warp) @ offset)[:2].astype(np.float32)
        weight = track.source_weight if track.hidden_source is None else track.source_weight & (1 - track.hidden_source)
        if weight.sum() < 6:
            return self._correlation(track, grey)
        template = np.ascontiguousarray(grey[y0:y1, x0:x1])
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, config.ecc_iterations, config.ecc_epsilon)
        try:
            if coarse and min(template.shape) >= 16:
                # half resolution: pixel (x, y) there is (2x + 0.5, 2y + 0.5) here; only the shift is fitted
                half = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1.0]])
                coarse_start = (np.linalg.inv(half) @ _homogeneous(start) @ half)[:2].astype(np.float32)
                _, coarse_found = cv2.findTransformECC(cv2.pyrDown(template), cv2.pyrDown(track.source_grey), coarse_start,
                                                       cv2.MOTION_TRANSLATION, criteria,
                                                       cv2.resize(weight, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_NEAREST)
                                                       if weight.shape[0] % 2 == 0 and weight.shape[1] % 2 == 0 else
                                                       cv2.pyrDown(weight * 255) // 128, config.ecc_blur)
                start = (half @ _homogeneous(coarse_found) @ np.linalg.inv(half))[:2].astype(np.float32)
            rho, found = cv2.findTransformECC(template, track.source_grey, start.copy(), cv2.MOTION_AFFINE, criteria,
                                              weight, config.ecc_blur)
        except cv2.error:  # no convergence (e.g. a flat patch): keep the prediction
            return self._correlation(track, grey)
        change = found[:, :2] - start[:, :2]
        if not np.isfinite(found).all() or np.abs(change).max() > config.max_step_change:
            return self._correlation(track, grey)
        track.warp = (_homogeneous(found) @ np.linalg.inv(offset))[:2].astype(np.float32)
        return float(rho)

    def _source_on_current(self, track: _Track, grey: np.ndarray, image: np.ndarray, interpolation: int) -> np.ndarray:
        return cv2.warpAffine(image, track.warp, grey.shape[::-1], flags=interpolation | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _correlation(self, track: _Track, grey: np.ndarray) -> float:
        weight = self._source_on_current(track, grey, track.source_weight, cv2.INTER_NEAREST) > 0
        if weight.sum() < 6:
            return 0.0
        a = grey[weight] - grey[weight].mean()
        b = self._source_on_current(track, grey, track.source_grey, cv2.INTER_LINEAR)[weight]
        b = b - b.mean()
        denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
        return float(a.dot(b) / denominator) if denominator > 0 else 0.0

    def _hidden(self, track: _Track, grey: np.ndarray) -> tuple[np.ndarray, float]:
        """The target's pixels on ``grey`` that no longer look as on the source frame (after the mean brightness
        change), as a float h x w map, and the fraction that still does: something in front of the target shows here,
        and its part is cut from the mask (the depth there is the occluder's) and left out of the next alignment."""
        inside = self._source_on_current(track, grey, track.source_small.astype(np.uint8), cv2.INTER_NEAREST) > 0
        if not inside.any():
            track.hidden_source = None
            return np.zeros(grey.shape, np.float32), 0.0
        source = self._source_on_current(track, grey, track.source_grey, cv2.INTER_LINEAR)
        difference = grey - source
        difference -= np.median(difference[inside])
        differs = (inside & (np.abs(difference) > self.config.appearance_tolerance)).astype(np.uint8)
        # thin lines of differing pixels are the outline a sub-pixel misalignment shows, not an occluder
        differs = cv2.morphologyEx(differs, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        visible = 1.0 - float(differs.sum() / inside.sum())
        track.hidden_source = cv2.dilate(cv2.warpAffine(differs, track.warp, grey.shape[::-1], flags=cv2.INTER_NEAREST),
                                         np.ones((3, 3), np.uint8)) if differs.any() else None
        return differs.astype(np.float32), visible

    def _warp_mask(self, track: _Track, hidden: np.ndarray) -> np.ndarray:
        """The model's full-resolution mask through the map (flow pixels scaled to full-resolution pixels), less what
        is ``hidden``."""
        height, width = self._full_shape
        small_h, small_w = self._grey.shape
        sx, sy = width / small_w, height / small_h
        to_small = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
        to_full = np.linalg.inv(to_small)
        full = (to_full @ _homogeneous(track.warp) @ to_small)[:2]
        warped = cv2.warpAffine(track.anchor_mask, full, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if hidden.any():
            warped[cv2.resize(hidden, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5] = 0
        return warped >= 0.5

    def _to_small(self, mask: np.ndarray) -> np.ndarray:
        small_h, small_w = self._grey.shape
        return cv2.resize(mask.astype(np.uint8), (small_w, small_h), interpolation=cv2.INTER_NEAREST).astype(bool)

    def _drop(self, track: _Track, reason: str) -> None:
        track.state.found, track.state.reason = False, reason
        track.state.mask = np.zeros(self._full_shape, bool)
