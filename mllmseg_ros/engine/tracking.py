"""Masks carried between model answers by dense optical flow (numpy + OpenCV, no ROS, no torch).

A slow model answers a frame seconds after it was taken; meanwhile the camera and the objects move. ``MaskTracker``
follows one camera: each new frame is compared with the previous one by OpenCV's DIS optical flow on a downscaled grey
image, and every mask it carries is moved to the new frame by backward warping (``cv2.remap``).

Chains, not repeated warps: for each mask the tracker keeps a map from the newest frame back to the frame the mask was
drawn on (the model's frame), composed step by step, and warps the original mask through it once per frame, so the
mask's edge does not blur away over hundreds of frames. A frame handed to the model gets such a chain too
(``remember``), so its answer, seconds later, is brought forward to the newest frame at once (``anchor``).

Flow is smooth, so a small plain object that slides over a textured table would be left behind with its background:
each frame the target's own pixels (from the model's frame) are looked for near where the flow put them, and where
they match clearly better elsewhere, the target's part of the chain moves there.

The carried mask is then sharpened by the target's colours on the model's frame (``target_colours.py``): near its
outline, each pixel is the target's where its colour and the carried mask together say so. That undoes the flow's
slow slide onto the table beside the target and cuts what a passing object hides (see docs/tracking.md for the
numbers). The sharpened mask is what is published; the carried one keeps the map's geometry (in-view, area checks).

Why a track is dropped (``TrackedMask.reason``), checked every frame:
- "left the view": the product of the per-step fractions of the target whose forward flow stays inside the image (and,
  at the image's edge, the mask's area against the target's largest);
- "occluded": less than ``min_visible`` of the carried mask still has the target's colours; where the colours do not
  set the target apart, the flow tells: the target's pixels whose forward and backward flows disagree (occlusion's
  signature), pixels that no longer look as on the model's frame, or a mask well below the area its motion predicts;
- "low tracking confidence": the running forward-backward consistency of the target's motion (where the target's
  colours are distinct, the share of the sharpened mask inside the carried one when that is higher).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from .target_colours import TargetColours
from .tracking_ops import (affine_fit, area_scale, centre, coarse_positions, count, coverage,
                           lower_this_thread_priority, match_shift)

__all__ = ["MaskTracker", "TrackedMask", "TrackerConfig", "lower_this_thread_priority"]

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
    min_visible_by_colour: float = 0.2  # ... or, where its colours set it apart, when less than this shows them (a
    #                                     hidden target is published again where as much shows them)
    max_hidden_frames: int = 45  # a hidden target is moved with the camera at most this many frames
    visible_to_follow_flow: float = 0.9  # ... and once this much of it shows, the flow carries it again
    relative_frames: int = 30  # ... moved meanwhile by its own motion against the camera's: the median over this
    #                            many frames in full sight (the last ones before it is hidden are the occluder's)
    min_area_ratio: float = 0.45  # drop when the mask is this much smaller than its own motion predicts
    max_growth: float = 1.5  # a mask grown by its colours past the carried one stays below this times the target's
    #                           largest area (else only the carried mask is sharpened)
    min_area_px: int = 16  # masks smaller than this (full-resolution pixels) are not tracked
    min_colour_area_ratio: float = 0.5  # an answer's mask smaller than this times the one the target's colours were
    #                                    learnt on keeps those colours
    max_points: int = 1000  # target pixels sampled for the consistency and the motion fit
    forward_margin_px: int = 24  # the forward flow (for the consistency check) is computed this far around the targets
    live_map_margin_px: int = 32  # ... and a live track's map this far around it (flow pixels)
    pending_map_stride: int = 2  # a frame waiting for its answer keeps its map at every 2nd flow pixel: the map
    #                              covers the whole frame, and DIS (ULTRAFAST) estimates the flow at 1/4 resolution
    own_motion_px: float = 0.75  # an object whose matched shift differs from the flow's by more moves on its own
    own_motion_cost_ratio: float = 0.7  # ... when its pixels match at least this much better there
    max_object_step_px: int = 8  # search radius for an object's own shift per frame (flow pixels)
    max_carried_shift_px: int = 48  # ... and for an answer carried over many frames
    appearance_tolerance: float = 20.0  # grey levels: a target pixel farther from its look on the model's frame differs


@dataclass
class TrackedMask:
    """One target on the newest frame: ``found`` False (with ``reason``) once the track is dropped."""

    mask: np.ndarray  # H x W bool, on the newest frame (all False when not found)
    found: bool
    confidence: float  # running forward-backward consistency, or the share of the sharpened mask within the carried
    #                    one where that is higher (the target's colours confirm the map), 0..1 (1 on the model's frame)
    reason: str = ""  # why not found; empty while tracked
    steps: int = 0  # flow steps since the model's frame
    in_view: float = 1.0  # estimated fraction of the target still inside the image
    answer_frame: object = None  # the frame id of the model answer this rests on (an older one than the newest
    #                              answer where that answer was "not found" on a frame that showed the target hidden)


@dataclass
class _Chain:
    """Map from the newest flow frame back to a source frame: source position of every flow pixel (h x w x 2)."""

    source_grey: np.ndarray  # the source frame, downscaled grey (kept for a first step that skips frames)
    map_xy: np.ndarray | None = None  # None until the first frame after the source
    steps: int = 0
    source_image: np.ndarray | None = None  # the source frame as given (its colours describe the target)
    camera_offset: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # the camera's own motion
    #   since the source frame (sum of each frame's median flow, flow pixels: newest frame -> source); for a hidden
    #   target, plus its own motion against the camera's (_Track.relative_step)
    hidden_targets: frozenset = frozenset()  # targets the tracker held hidden behind something on the source frame
    window: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1): the part of map_xy kept up to date, the rest
    #   points far outside the source (_OUTSIDE); None: all of it
    stride: int = 1  # map_xy[i, j] is for flow pixel (j * stride, i * stride) (its values are flow pixels)


@dataclass
class _Track:
    anchor_mask: np.ndarray  # float32 H x W, the model's mask on its own frame
    chain: _Chain  # this target's own map back to the model's frame (a moving object moves its part of it)
    state: TrackedMask
    expected_area: float  # area the target should have now, from its motion (scale) and what left the view
    prev_small: np.ndarray = field(default=None)  # bool h x w, the mask on the previous flow frame
    own_shift: np.ndarray | None = None  # (dx, dy) flow pixels of the last step when the object moved on its own
    source_small: np.ndarray = field(default=None)  # bool h x w, the model's mask on its own frame
    source_centre: np.ndarray | None = None  # (x, y) of source_small's pixels
    support: tuple[int, int, int, int] | None = None  # where its map is needed on the next frame (flow pixels,
    #   x0, y0, x1, y1): around its mask and any trace of the model's mask carried by the map; None: everywhere
    looks_alike: float = 1.0  # fraction of the target's pixels that still look as on the model's frame
    peak_area: float = 0.0  # the target's largest mask over the answers so far
    colours: TargetColours | None = None  # the target's colours on the model's frame (None: not found)
    colour_visible: float = 1.0  # share of the target still visible, as its colours tell (see _sharpen)
    largest_seen: float = 0.0  # the largest sharpened mask since the model's answer (full-resolution pixels)
    colour_share: float = 1.0  # share of the carried mask with the target's colours, on the newest frame
    carried: np.ndarray | None = None  # H x W bool, the model's mask moved by the flow alone (before sharpening)
    hidden_steps: int = -1  # frames it was moved with the camera since it was hidden (shown again or not); -1: the
    #                         flow carries it (or it is not looked for)
    relative_history: list = field(default_factory=list)  # its own motion per frame against the camera's median
    #   one (flow pixels, backward: newest -> previous), on the last frames it was in full sight: parallax (a target
    #   nearer or farther than most of the scene) or its own motion

    @property
    def relative_step(self) -> np.ndarray | None:
        """How a hidden target is taken to move against the camera each frame: the median of relative_history."""
        if not self.relative_history:
            return None
        return np.median(np.array(self.relative_history), axis=0).astype(np.float32)

    @property
    def colours_distinct(self) -> bool:
        """The target's colours set it apart from its surroundings: they sharpen, relocate and judge occlusion."""
        return self.colours is not None and self.colours.distinct


_OUTSIDE = -1e4  # a map position far outside any source frame: what is warped through it is empty


def _identity(height: int, width: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


class MaskTracker:
    """Optical-flow mask tracking for one camera. Thread-safe: frames from one thread, answers from another."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._flow = cv2.DISOpticalFlow_create(config.preset)
        self._lock = threading.Lock()
        self._grey: np.ndarray | None = None  # newest frame, downscaled grey
        self._image: np.ndarray | None = None  # newest frame as given (the colours sharpen masks on it)
        self._frame_id: object = None
        self._full_shape: tuple[int, int] | None = None
        self._grid: np.ndarray | None = None
        self._pending: dict[object, _Chain] = {}  # frames the model is answering
        self._tracks: list[_Track] = []
        self._peak_area: dict[int, float] = {}  # per target: its largest mask so far, across answers (until reset)
        self._colours: dict[int, tuple[TargetColours, float]] = {}  # per target: its colours and the mask area they
        #                                                            were learnt on (see _colours_for)

    # --- state -------------------------------------------------------------------------------------------------------
    @property
    def tracking(self) -> bool:
        with self._lock:
            return any(track.state.found for track in self._tracks)

    def reset(self) -> None:
        """Forget every track and every frame waiting for an answer (a new command)."""
        with self._lock:
            self._tracks, self._pending, self._peak_area, self._colours = [], {}, {}, {}

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
            chain = _Chain(grey, source_image=image, stride=self.config.pending_map_stride,
                           hidden_targets=frozenset(i for i, track in enumerate(self._tracks) if track.hidden_steps >= 0))
            if self._grid is not None and frame_id == self._frame_id:  # the tracker's newest frame itself
                chain.map_xy = self._identity_for(chain)
            self._pending = {frame_id: chain}  # one model call at a time per camera: older ones are never answered

    def add_frame(self, image: np.ndarray, frame_id: object) -> list[TrackedMask]:
        """Move every chain and track to this frame (RGB or grey, any size but always the same)."""
        grey = self._small_grey(image)
        with self._lock:
            if frame_id == self._frame_id and self._grey is not None:  # seen already
                return [track.state for track in self._tracks]
            self._image = image
            if self._grey is None or grey.shape != self._grey.shape or self._full_shape != image.shape[:2]:
                self._start(grey, image.shape[:2], frame_id)
                return [track.state for track in self._tracks]
            live = [track for track in self._tracks if track.state.found and track.hidden_steps < 0]
            hidden = [track for track in self._tracks if track.hidden_steps >= 0]
            if not self._pending and not live and not hidden:  # nothing to carry: no flow either
                self._grey, self._frame_id = grey, frame_id
                return [track.state for track in self._tracks]
            backward = self._flow.calc(grey, self._grey, None)  # new -> previous: where each new pixel came from
            forward = self._forward_near(live, grey) if live else None
            step_map = self._grid + backward
            camera_step = np.median(backward[::8, ::8].reshape(-1, 2), axis=0).astype(np.float32)
            for key, chain in self._pending.items():
                if key == frame_id:  # the model's frame reached the tracker after it was handed over
                    chain.map_xy, chain.steps = self._identity_for(chain), 0
                else:
                    self._advance(chain, grey, step_map, camera_step)
            self._grey = grey
            for track in live:  # a live track's map is needed only around it: composed there alone
                self._advance(track.chain, grey, step_map, camera_step, track.support)
                self._update(track, forward, backward, camera_step)
            for track in hidden:
                self._follow_hidden(track, camera_step)
            self._grey, self._frame_id = grey, frame_id
            return [track.state for track in self._tracks]

    def _forward_near(self, tracks: list[_Track], grey: np.ndarray) -> np.ndarray:
        """Flow from the previous frame to ``grey``, computed only around the targets (zero elsewhere): it is read at
        their pixels alone, and over the whole frame it would be a second full-frame flow per frame."""
        height, width = grey.shape
        boxes = [cv2.boundingRect(track.prev_small.view(np.uint8)) for track in tracks if track.prev_small is not None]
        boxes = [box for box in boxes if box[2] > 0]
        if not boxes:
            return np.zeros((height, width, 2), np.float32)
        margin = self.config.forward_margin_px
        x0, y0 = max(0, min(b[0] for b in boxes) - margin), max(0, min(b[1] for b in boxes) - margin)
        x1 = min(width, max(b[0] + b[2] for b in boxes) + margin)
        y1 = min(height, max(b[1] + b[3] for b in boxes) + margin)
        forward = np.zeros((height, width, 2), np.float32)
        # A new DIS object for each crop: one reused after a smaller image gives other (not reproducible) results on a
        # larger one (OpenCV 4.x), and the crop's size changes from frame to frame.
        flow = cv2.DISOpticalFlow_create(self.config.preset)
        forward[y0:y1, x0:x1] = flow.calc(np.ascontiguousarray(self._grey[y0:y1, x0:x1]),
                                          np.ascontiguousarray(grey[y0:y1, x0:x1]), None)
        return forward

    def _start(self, grey: np.ndarray, full_shape: tuple[int, int], frame_id: object) -> None:
        """First frame (or a new size): no track to carry over. A frame handed to the model before it, of this size,
        keeps its chain: it starts with one direct step from that frame (the model often takes a frame the tracker
        never saw, when the command came after it)."""
        self._grey, self._full_shape, self._frame_id = grey, full_shape, frame_id
        self._grid = _identity(*grey.shape)
        self._tracks = []
        self._pending = {key: chain for key, chain in self._pending.items()
                         if key == frame_id or (chain.source_grey.shape == grey.shape and chain.map_xy is None)}
        for key, chain in self._pending.items():
            if key == frame_id:
                chain.map_xy = self._identity_for(chain)

    def _identity_for(self, chain: _Chain) -> np.ndarray:
        """An identity map on ``chain``'s grid (every ``stride``-th pixel of the newest frame's)."""
        return np.ascontiguousarray(self._grid[::chain.stride, ::chain.stride])

    def _keep_for_next_frame(self, track: _Track, carried_small: np.ndarray | None = None) -> None:
        """The published mask at flow resolution (the next step's flow statistics start from it), and the window its
        map is composed in next: around it and any trace of the model's mask the map carries (``_carry_small``'s
        result for this frame, when the caller has it)."""
        track.prev_small = self._to_small(track.state.mask)
        carried_small = self._carry_small(track) if carried_small is None else carried_small
        track.support = self._around(track.prev_small | (carried_small >= 0.01))

    def _around(self, mask: np.ndarray | None) -> tuple[int, int, int, int] | None:
        """The box around ``mask`` (flow resolution) widened by ``live_map_margin_px``; None: the whole frame."""
        if mask is None or not mask.any():
            return None
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        margin, (height, width) = self.config.live_map_margin_px, mask.shape
        return max(0, x - margin), max(0, y - margin), min(width, x + w + margin), min(height, y + h + margin)

    def _advance(self, chain: _Chain, grey: np.ndarray, step_map: np.ndarray, camera_step: np.ndarray,
                 window: tuple[int, int, int, int] | None = None) -> None:
        chain.camera_offset = chain.camera_offset + camera_step
        stride = chain.stride
        if chain.map_xy is None:  # the source frame was never a tracker frame: one direct step from it
            chain.map_xy = np.ascontiguousarray((self._grid + self._flow.calc(grey, chain.source_grey, None))[::stride, ::stride])
        elif stride == 1:  # compose: new pixel -> previous frame (step_map) -> source (the old map, sampled there)
            self._resample(chain, step_map, window)
        else:  # ... the same on the coarse grid, whose sample k stands for flow pixel k * stride
            chain.map_xy = cv2.remap(chain.map_xy, coarse_positions(step_map, stride), None, cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        chain.steps += 1

    def _resample(self, chain: _Chain, positions: np.ndarray, window: tuple[int, int, int, int] | None) -> None:
        """``chain.map_xy`` becomes the old map sampled at ``positions`` (h x w x 2, on the old map's grid), inside
        ``window`` only (None: everywhere). Only the old map's own window is read, its edge extended outwards (as
        the whole map's is at the image's edge): a marker value for "not kept" would be interpolated into positions
        in between, some of them on the target."""
        if window is None and chain.window is None:
            chain.map_xy = cv2.remap(chain.map_xy, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            return
        height, width = chain.map_xy.shape[:2]
        x0, y0, x1, y1 = window if window is not None else (0, 0, width, height)
        sampled, source = np.ascontiguousarray(positions[y0:y1, x0:x1]), chain.map_xy
        if chain.window is not None:
            ox0, oy0, ox1, oy1 = chain.window
            cv2.subtract(sampled, (float(ox0), float(oy0), 0.0, 0.0), dst=sampled)  # numpy's broadcast is far slower
            source = np.ascontiguousarray(chain.map_xy[oy0:oy1, ox0:ox1])
        part = cv2.remap(source, sampled, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if window is None:
            chain.map_xy = part
        else:
            chain.map_xy = np.full(chain.map_xy.shape, _OUTSIDE, np.float32)
            chain.map_xy[y0:y1, x0:x1] = part
        chain.window = window

    # --- answers -------------------------------------------------------------------------------------------------------
    def anchor(self, frame_id: object, masks: list[np.ndarray | None], keep_hidden: bool = True) -> list[TrackedMask]:
        """The model's masks for frame ``frame_id`` (None: not found), brought to the newest frame; they replace every
        track. A frame never ``remember``-ed (or forgotten by ``reset``) anchors nothing.

        Except one (unless ``keep_hidden`` is False: the answer is to another question than the tracks'): a "not
        found" for a target the tracker held hidden behind something on that very frame (and still follows) leaves
        that track as it is. The model could not see what was hidden; the earlier answer's target is shown again
        when its colours come out where the camera's motion puts it."""
        with self._lock:
            chain = self._pending.pop(frame_id, None)
            if chain is None or self._grey is None:
                self._tracks = []
                return []
            if chain.map_xy is None:  # answered before any newer frame arrived
                chain.map_xy = self._grid.copy() if frame_id == self._frame_id else self._grid + self._flow.calc(
                    self._grey, chain.source_grey, None)
            elif chain.stride > 1:  # a full map again: flow pixel u lies at u / stride on the coarse grid
                chain.map_xy = cv2.remap(chain.map_xy, self._grid / np.float32(chain.stride), None, cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
            chain.stride = 1
            previous = self._tracks
            self._tracks = []
            for index, mask in enumerate(masks):
                if keep_hidden and (mask is None or not mask.any()) and self._still_hidden(previous, index, chain):
                    self._tracks.append(previous[index])
                    continue
                track = self._new_track(mask, chain, index)
                track.state.answer_frame = frame_id
                if index < len(previous):  # the same target, last measured on the earlier answer's track
                    track.relative_history = list(previous[index].relative_history)
                self._continue_in_view(index, track)
                self._tracks.append(track)
            return [track.state for track in self._tracks]

    @staticmethod
    def _still_hidden(tracks: list[_Track], index: int, chain: _Chain) -> bool:
        """Target ``index`` was hidden on the chain's source frame, and its track is still followed (hidden or shown
        again)."""
        if index not in chain.hidden_targets or index >= len(tracks):
            return False
        track = tracks[index]
        return track.hidden_steps >= 0 or track.state.found

    def _new_track(self, mask: np.ndarray | None, chain: _Chain, index: int) -> _Track:
        steps = chain.steps
        own = _Chain(chain.source_grey, chain.map_xy.copy(), steps, camera_offset=chain.camera_offset.copy())
        empty = np.zeros(self._full_shape, bool)
        if mask is None or not mask.any():
            return _Track(np.zeros(self._full_shape, np.float32), own, TrackedMask(empty, False, 0.0, NOT_FOUND, steps), 0.0)
        if int(mask.sum()) < self.config.min_area_px:
            return _Track(np.zeros(self._full_shape, np.float32), own, TrackedMask(empty, False, 0.0, TOO_SMALL, steps), 0.0)
        track = _Track(mask.astype(np.float32), own, TrackedMask(mask.copy(), True, 1.0, steps=steps), float(mask.sum()))
        track.source_small = self._to_small(mask)
        track.source_centre = centre(track.source_small)
        track.colours = self._colours_for(index, mask, chain.source_image)
        if steps:  # brought over the frames since the model's: the area it has now is the reference from here on
            radius = min(self.config.max_carried_shift_px, self.config.max_object_step_px * steps)
            self._correct_for_own_motion(track, self._carry_small(track) >= 0.5, int(radius))
            track.carried = self._relocate(track, self._warp(track), radius)
            track.expected_area = float(count(track.carried))
            track.state.mask = self._sharpen(track, track.carried)
            if not track.carried.any():
                self._drop(track, LEFT_VIEW)
                track.state.in_view = 0.0
        self._keep_for_next_frame(track)
        return track

    def _colours_for(self, index: int, mask: np.ndarray, image: np.ndarray | None) -> TargetColours | None:
        """Target ``index``'s colours: learnt on this answer, or on an earlier one where this answer's mask is less
        than ``min_colour_area_ratio`` of it (a sliver of the target coming out from behind something: its few
        colours would keep the rest of it out as it comes out)."""
        if image is None:
            return None
        area = float(count(mask))
        earlier = self._colours.get(index)
        if earlier is not None and earlier[0].distinct and area < self.config.min_colour_area_ratio * earlier[1]:
            return earlier[0]
        colours = TargetColours(image, mask)
        self._colours[index] = (colours, area)
        return colours

    def _in_view_from_area(self, track: _Track, mask: np.ndarray) -> None:
        """A carried mask at the image's edge shows how much of the target is left: the flow itself is least sure at
        the edge."""
        area = float(count(mask))
        if area and (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
            reference = max(track.expected_area, track.peak_area)
            track.state.in_view = min(track.state.in_view, area / reference) if reference > 0 else track.state.in_view

    def _continue_in_view(self, index: int, track: _Track) -> None:
        """A model answer of a target already partly out of the image starts with the in-view fraction it has then
        (against the largest this target was), so a target leaving across answers is still dropped in time."""
        mask = track.carried if track.carried is not None else track.state.mask
        area = float(count(mask))
        peak = max(self._peak_area.get(index, 0.0), area, float(track.anchor_mask.sum()))
        self._peak_area[index] = peak
        touches = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        track.peak_area = peak
        if track.state.found and touches and peak > 0:
            track.state.in_view = min(1.0, area / peak)
        if track.state.found and track.state.in_view < self.config.min_in_view:
            self._drop(track, LEFT_VIEW)
        elif track.state.found and (self._hidden(track, 1.0, area) or not track.state.mask.any()):
            self._drop(track, OCCLUDED)  # carried over many frames onto something that does not look like it
            self._hide(track)

    # --- objects that move on their own ----------------------------------------------------------------------------------
    def _correct_for_own_motion(self, track: _Track, current_small: np.ndarray, radius: int) -> None:
        """Dense flow is smooth: on a small, plain object it follows the textured background around it, so an object
        sliding over the table would be left behind. The object's pixels on the model's frame (under the model's mask)
        are looked for near where the chain puts them now; where they match clearly better a little further on, the
        object's part of the chain is moved by that much (its shape, scale and rotation stay the flow's)."""
        track.own_shift, track.looks_alike = None, 1.0
        source, now = track.source_small, current_small
        if track.source_centre is None or count(source) < 6 or count(now) < 6:
            return
        guess = centre(now) - track.source_centre
        found = match_shift(track.chain.source_grey, source, self._grey, guess, radius, self.config.appearance_tolerance)
        if found is None:
            return
        shift, cost, guess_cost, track.looks_alike = found
        delta = shift - guess
        if np.abs(delta).max() <= self.config.own_motion_px or cost > self.config.own_motion_cost_ratio * guess_cost:
            return
        moved = cv2.warpAffine(now.astype(np.uint8), np.float32([[1, 0, delta[0]], [0, 1, delta[1]]]), now.shape[::-1],
                               flags=cv2.INTER_NEAREST)
        region = cv2.dilate(moved | now.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        # The flow inside a plain moving object is smeared from its surroundings: the object's part of the map becomes
        # the affine motion fitted to it (its scale and rotation kept, its shape not bent).
        fy, fx = np.nonzero(moved)  # fitted on the object itself, applied with a margin around it
        # new pixel x maps where x - delta mapped (the map sampled at the object's pixels alone, as an N x 1 map)
        positions = np.stack([fx, fy], axis=1).astype(np.float32) - delta.astype(np.float32)
        shifted = cv2.remap(track.chain.map_xy, positions[:, None, :], None, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)[:, 0, :]
        fit = affine_fit(fx, fy, shifted)
        ry, rx = np.nonzero(region)
        track.chain.map_xy[ry, rx] = (np.stack([rx, ry, np.ones_like(rx)], axis=1) @ fit).astype(np.float32)
        track.own_shift = delta.astype(np.float32)

    # --- one step of one track ------------------------------------------------------------------------------------------
    def _warp(self, track: _Track, small: np.ndarray | None = None) -> np.ndarray:
        """The model's full-resolution mask carried to the newest frame, computed only around where the map puts the
        target (a full-frame map at full resolution is the tracker's largest cost). ``small``: ``_carry_small``'s
        result for the map as it is, when the caller has it already."""
        height, width = self._full_shape
        small_h, small_w = self._grey.shape
        sx, sy = width / small_w, height / small_h
        rows, cols = (0, small_h), (0, small_w)
        near = (self._carry_small(track) if small is None else small) >= 0.01  # any trace of the target
        if near.any():
            x, y, w, h = cv2.boundingRect(near.view(np.uint8))
            rows, cols = (max(0, y - 1), min(small_h, y + h + 1)), (max(0, x - 1), min(small_w, x + w + 1))
        x0, x1 = round(cols[0] * sx), min(width, round(cols[1] * sx))
        y0, y1 = round(rows[0] * sy), min(height, round(rows[1] * sy))
        # the map is in flow pixels: scale to full-resolution pixels, then sample the full-resolution anchor mask
        full_map = cv2.resize(track.chain.map_xy[rows[0]:rows[1], cols[0]:cols[1]], (x1 - x0, y1 - y0),
                              interpolation=cv2.INTER_LINEAR)
        # (v + 0.5) * scale - 0.5 per channel, by OpenCV: numpy's per-channel strided arithmetic costs several times more
        cv2.add(full_map, (0.5, 0.5, 0.0, 0.0), dst=full_map)
        cv2.multiply(full_map, (sx, sy, 0.0, 0.0), dst=full_map)
        cv2.subtract(full_map, (0.5, 0.5, 0.0, 0.0), dst=full_map)
        warped = np.zeros(self._full_shape, bool)
        warped[y0:y1, x0:x1] = cv2.remap(track.anchor_mask, full_map, None, cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 0.5
        return warped

    def _carry_small(self, track: _Track) -> np.ndarray:
        """The model's mask carried to the newest frame at flow resolution, as a float coverage (cheap: for decisions,
        not for output; >= 0.5 is the mask)."""
        source, chain = track.source_small.astype(np.float32), track.chain
        if chain.window is None:
            return cv2.remap(source, chain.map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        x0, y0, x1, y1 = chain.window
        carried = np.zeros(source.shape, np.float32)
        carried[y0:y1, x0:x1] = cv2.remap(source, np.ascontiguousarray(chain.map_xy[y0:y1, x0:x1]), None,
                                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return carried

    def _to_small(self, mask: np.ndarray) -> np.ndarray:
        small_h, small_w = self._grey.shape
        return cv2.resize(mask.view(np.uint8), (small_w, small_h), interpolation=cv2.INTER_NEAREST).view(bool)

    def _update(self, track: _Track, forward: np.ndarray, backward: np.ndarray, camera_step: np.ndarray) -> None:
        config, state = self.config, track.state
        small_h, small_w = self._grey.shape
        x0, y0, x1, y1 = track.support or (0, 0, small_w, small_h)  # prev_small lies inside it
        ys, xs = np.nonzero(track.prev_small[y0:y1, x0:x1])
        ys, xs = ys + y0, xs + x0
        if len(xs) > config.max_points:  # an even subsample: the statistics, not every pixel, are needed
            keep = np.linspace(0, len(xs) - 1, config.max_points).astype(int)
            ys, xs = ys[keep], xs[keep]
        state.steps = track.chain.steps
        if len(xs) == 0:
            self._drop(track, LEFT_VIEW if state.in_view < 1.0 else OCCLUDED)
            return
        moved = forward[ys, xs]
        dest_x, dest_y = xs + moved[:, 0], ys + moved[:, 1]
        carried_small = self._carry_small(track)
        self._correct_for_own_motion(track, carried_small >= 0.5, self.config.max_object_step_px)
        own = track.own_shift if track.own_shift is not None else np.zeros(2, np.float32)
        inside = (dest_x + own[0] >= -0.5) & (dest_x + own[0] <= small_w - 0.5) & (dest_y + own[1] >= -0.5) & (dest_y + own[1] <= small_h - 0.5)
        state.in_view *= float(coverage(dest_x + own[0], small_w).dot(coverage(dest_y + own[1], small_h)) / len(xs))
        back = backward[np.clip(np.round(dest_y), 0, small_h - 1).astype(int), np.clip(np.round(dest_x), 0, small_w - 1).astype(int)]
        consistent = inside & (np.hypot(moved[:, 0] + back[:, 0], moved[:, 1] + back[:, 1]) <= config.max_fb_error_px)
        visible = float(consistent.sum() / max(1, inside.sum()))
        state.confidence = (1 - config.confidence_smoothing) * state.confidence + config.confidence_smoothing * visible
        track.expected_area *= area_scale(xs[consistent], ys[consistent], dest_x[consistent], dest_y[consistent])
        carried = self._warp(track, carried_small if track.own_shift is None else None)  # own motion moved the map
        area = float(count(carried))
        self._in_view_from_area(track, carried)
        target_step = np.median(moved[consistent], axis=0) + own if consistent.any() else None  # forward, flow px
        state.mask = self._sharpen(track, carried, self._moved(state.mask, target_step))
        if target_step is not None and track.colours_distinct and track.colour_visible >= config.visible_to_follow_flow:
            track.relative_history.append((-target_step - camera_step).astype(np.float32))
            if len(track.relative_history) > config.relative_frames:
                track.relative_history.pop(0)
        if track.colours_distinct and track.colour_share < track.colours.config.relocate_below:
            # slid off the target's colours: look for them nearby
            relocated = self._relocate(track, carried, 2 * config.max_object_step_px)
            if relocated is not carried:
                carried, area = relocated, float(count(relocated))
                state.mask = self._sharpen(track, carried)
        if track.colours_distinct and state.mask.any():
            # The flow's consistency falls where an occluder's edge moves over the target (occlusion, decided by the
            # colours above); the target's colours lying within the carried mask, or the carried mask lying on them (a
            # target coming out from behind something grows past the sliver the model saw), say the map still fits.
            sharpened = count(state.mask)
            state.confidence = max(state.confidence, count(state.mask & carried) / sharpened,
                                   track.colour_share if sharpened > area else 0.0)
        if state.in_view < config.min_in_view or (area == 0 and not inside.all()):
            self._drop(track, LEFT_VIEW)
        elif self._hidden(track, visible, area):
            self._drop(track, OCCLUDED)
            self._hide(track)
        elif state.confidence < config.min_confidence or area * config.min_area_ratio > max(track.expected_area, track.peak_area):
            # a mask that grew far beyond what its motion predicts has spread onto its surroundings
            self._drop(track, LOW_CONFIDENCE)
        elif area < config.min_area_px:
            self._drop(track, TOO_SMALL)
        else:
            self._keep_for_next_frame(track, carried_small)

    def _hidden(self, track: _Track, flow_visible: float, area: float) -> bool:
        """Whether too little of the target is visible: told by its colours where they set it apart from its
        surroundings (an occluder has other colours), else by the flow (pixels that moved inconsistently, no longer
        look as on the model's frame, or a mask that shrank against what its motion predicts)."""
        config = self.config
        if track.colours_distinct:
            return track.colour_visible < config.min_visible_by_colour
        return (flow_visible < config.min_visible or track.looks_alike < config.min_visible
                or area < config.min_area_ratio * track.expected_area * track.state.in_view)

    def _sharpen(self, track: _Track, carried: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """``carried`` sharpened by the target's colours. With ``previous`` (the last published mask moved one step),
        the mask may grow past what the model saw, a band a frame: a target the model saw partly hidden emerges."""
        if track.colours is None or self._image is None:
            return carried
        mask, colour_share = track.colours.sharpen(self._image, carried, previous)
        if previous is not None and count(mask) > self.config.max_growth * max(float(count(carried)), track.peak_area):
            mask, colour_share = track.colours.sharpen(self._image, carried)  # grew onto something else
        track.colour_share = colour_share
        # Two views of how much is visible, each low in its own failure: the share of the carried mask with the
        # target's colours (low where an occluder's edge dragged the carried mask onto itself), and the sharpened
        # mask against the largest it was since the answer (low where the target shrinks as the camera backs away).
        area = float(count(mask))
        track.largest_seen = max(track.largest_seen, area)
        track.colour_visible = max(colour_share, area / track.largest_seen if track.largest_seen else 0.0)
        return mask

    def _relocation(self, track: _Track, carried: np.ndarray, radius_small: float) -> np.ndarray | None:
        """The shift (flow pixels) that moves ``carried`` onto the target's colours when it has slid off them
        (``TargetColours.relocate``); None where it has not or no place is clearly better."""
        if track.colours is None or self._image is None:
            return None
        to_small = np.float32([self._grey.shape[1] / self._full_shape[1], self._grey.shape[0] / self._full_shape[0]])
        shift = track.colours.relocate(self._image, carried, int(round(radius_small / to_small[0])))
        return None if shift is None else np.float32(shift) * to_small

    def _relocate(self, track: _Track, carried: np.ndarray, radius_small: float) -> np.ndarray:
        """``carried`` moved by ``_relocation``, and the target's map with it, so the next frames start from there."""
        delta = self._relocation(track, carried, radius_small)
        if delta is None:
            return carried
        self._resample(track.chain, self._grid - delta, track.chain.window)  # new pixel x maps where x - delta mapped
        return self._warp(track)

    def _moved(self, mask: np.ndarray, step: np.ndarray | None) -> np.ndarray | None:
        """``mask`` shifted by ``step`` (the target's forward motion, flow pixels)."""
        if not mask.any() or step is None:
            return None
        dx, dy = step * (self._full_shape[1] / self._grey.shape[1])
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))  # shifted around the mask only
        mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
        height, width = mask.shape
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(width, x + w + mx), min(height, y + h + my)
        moved = np.zeros_like(mask)
        moved[y0:y1, x0:x1] = cv2.warpAffine(np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8),
                                             np.float32([[1, 0, dx], [0, 1, dy]]), (x1 - x0, y1 - y0),
                                             flags=cv2.INTER_NEAREST).astype(bool)
        return moved

    def _hide(self, track: _Track) -> None:
        """A target dropped as occluded is looked for again where its colours tell it apart. The flow where it was
        follows whatever hides it (an occluder's edge drags it along before the drop), so from the model's frame
        it is taken to have moved with the camera, plus its own steady motion against the camera's as measured while
        it was in full sight (``relative_step``: parallax under a panning camera, or an object moving on its own)."""
        if track.colours_distinct:
            relative = track.relative_step
            if relative is not None:  # its own motion, taken as steady since the model's frame
                track.chain.camera_offset = track.chain.camera_offset + track.chain.steps * relative
            self._place_hidden(track.chain)
            track.hidden_steps = 0

    def _place_hidden(self, chain: _Chain) -> None:
        """A hidden target's map: the same shift everywhere, its predicted motion since the model's frame."""
        chain.map_xy, chain.window = self._grid + chain.camera_offset, None

    def _follow_hidden(self, track: _Track, camera_step: np.ndarray) -> None:
        """A target hidden behind something, moved as the camera moves (the frame's median flow, ``camera_step``: new
        pixel -> previous frame) plus its own ``relative_step``, and published again where its colours show there (or
        nearby, ``_relocate``). The flow takes over once it is out in full: while an occluder's edge crosses it, it
        would drag the mask along."""
        track.hidden_steps += 1
        state = track.state
        relative = track.relative_step
        track.chain.camera_offset = track.chain.camera_offset + camera_step + (0 if relative is None else relative)
        self._place_hidden(track.chain)
        track.chain.steps = state.steps = track.chain.steps + 1
        carried = self._warp(track)
        if not carried.any():  # its place has left the image
            self._drop(track, LEFT_VIEW)
            return
        delta = self._relocation(track, carried, 2 * self.config.max_object_step_px)
        if delta is not None:  # the map is a translation here: relocating it is moving the offset
            track.chain.camera_offset = track.chain.camera_offset - delta
            self._place_hidden(track.chain)
            carried = self._warp(track)
        mask = self._sharpen(track, carried)
        showing = track.colour_share >= self.config.min_visible_by_colour
        if showing and mask.any():
            state.found, state.reason, state.mask = True, "", mask
            state.confidence = count(mask & carried) / count(mask)
        else:
            state.found, state.reason, state.mask = False, OCCLUDED, np.zeros(self._full_shape, bool)
        out_in_full = state.found and track.colour_share >= self.config.visible_to_follow_flow
        if out_in_full or track.hidden_steps >= self.config.max_hidden_frames:
            # the flow carries it from here (a target never out in full is dropped after max_hidden_frames)
            track.hidden_steps, track.carried, track.expected_area = -1, carried, float(count(carried))
            self._keep_for_next_frame(track)

    def _drop(self, track: _Track, reason: str) -> None:
        track.state.found, track.state.reason = False, reason
        track.hidden_steps = -1
        track.state.mask = np.zeros(self._full_shape, bool)

