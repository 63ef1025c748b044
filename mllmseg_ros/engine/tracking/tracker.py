"""``MaskTracker``: the public face of the tracker (see the package docstring for the design)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from .appearance import MIN_JUDGED_PX, Look, Reference, look, make_reference
from .colours import segment
from .config import TrackerConfig
from .flow import FlowField, FrameView, Pending, Step, frame_view
from .motion import aligned, own_shift, shifted, snapped, step_of_target
from .occlusion import IN_FULL_SIGHT, RelativeMotion, look_for, phase_of
from .ops import bounds, count, project, resolution_change, translation, warp_into
from .state import TrackedMask, TrackPhase

PENDING_STRIDE = 2  # a frame waiting for its answer keeps where every 2nd newest pixel came from: DIS (ULTRAFAST)
#                     measures the flow at 1/4 resolution anyway, and the answer needs a sample of the target only
HIDDEN_SPECK = 0.1  # a hidden part smaller than this share of a target is a change of its look, not an occluder
CLEAR_LOOK = 0.8  # a target looking this much as on the model's frame is there, wherever the motion said it was
GROWTH = 2.0  # a target told by its colours grows past the model's mask to at most this times it
SAME_LOOK = 0.01  # candidate motions whose looks differ by less are alike: the first (the flow's) is kept
PART_OF_AREA = 0.95  # an answer this much smaller than the earlier one's target, and inside it, is a part of it:
PART_INSIDE = 0.5  # ... with at least this share inside
PART_SLACK_PX = 3  # ... or this close to it (flow pixels): the earlier track's drift while it was hidden,
PART_SLACK = 0.25  # ... or this share of its size: the earlier answer may itself be a part (the rest was hidden then)
SCENE_CUT = 0.15  # a frame whose flow the camera's motion explains for less than this share is another scene (a cut:
#                   0.03; real hand-held video with moving objects and occluders: 0.44 and up)
WHOLE_BY_COLOUR = 0.92  # a target whose colours cover this share of its carried mask (and no more than 1 / this, which
#                        would be a like-coloured neighbour joined to it) is seen whole by them


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@dataclass
class _Track:
    reference: Reference | None  # the target on the model's frame (None: nothing to follow)
    homography: np.ndarray  # model's frame -> newest frame (flow pixels)
    gain: np.ndarray  # newest brightness / the model's frame's, per channel
    state: TrackedMask
    relative: RelativeMotion = field(default_factory=RelativeMotion)
    unseen: int = 0  # frames since it was last in sight
    published_at: np.ndarray | None = None  # the homography the mask last published (state.mask) was carried by
    rival: np.ndarray | None = None  # the other place the answer may be (see _place and _weigh_rival)
    rival_is_camera: bool = False  # ... the camera's (the chain's place was taken) or the chain's
    rival_frames: int = 0  # ... looked for this many more frames


class MaskTracker:
    """Mask tracking for one camera. Thread-safe: frames from one thread, answers from another.

    ``remember(image, id)`` when a frame goes to the model, ``add_frame(image, id)`` for every frame to track (the
    results on it), ``anchor(id, masks)`` with the model's masks for a remembered frame (brought to the newest
    frame; they replace the tracks)."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._flow = FlowField(config.flow)
        self._lock = threading.Lock()
        self._view: FrameView | None = None  # the newest frame
        self._frame_id: object = None
        self._grid: np.ndarray | None = None  # h x w x 2: each flow pixel's own position
        self._pending: dict[object, Pending] = {}  # frames the model is answering
        self._tracks: list[_Track] = []

    # --- state -------------------------------------------------------------------------------------------------------
    @property
    def tracking(self) -> bool:
        with self._lock:
            return any(track.state.found for track in self._tracks)

    def reset(self) -> None:
        """Forget every track and every frame waiting for an answer (a new command)."""
        with self._lock:
            self._tracks, self._pending = [], {}

    def results(self) -> list[TrackedMask]:
        with self._lock:
            return [track.state for track in self._tracks]

    # --- frames --------------------------------------------------------------------------------------------------------
    def remember(self, image: np.ndarray, frame_id: object) -> None:
        """``image`` goes to the model: keep a chain from it so its answer can be brought to the newest frame."""
        view = frame_view(image, self.config.flow)
        with self._lock:
            seen = {i: (track.state.visible * track.state.in_view if track.state.found else 0.0)
                    for i, track in enumerate(self._tracks) if track.state.phase.followed}
            chain = Pending(view, PENDING_STRIDE, seen=seen)
            if self._grid is not None and frame_id == self._frame_id and view.grey.shape == self._view.grey.shape:
                chain.start_at(self._grid)
            self._pending = {frame_id: chain}  # one model call at a time per camera: older ones are never answered

    def add_frame(self, image: np.ndarray, frame_id: object) -> list[TrackedMask]:
        """Move every chain and track to this frame (RGB or grey, any size but always the same)."""
        view = frame_view(image, self.config.flow)
        with self._lock:
            if frame_id == self._frame_id and self._view is not None:  # seen already
                return [track.state for track in self._tracks]
            if self._view is None or view.image.shape != self._view.image.shape:
                self._start(view, frame_id)
                return [track.state for track in self._tracks]
            followed = [track for track in self._tracks if track.state.phase.followed]
            if not self._pending and not followed:  # nothing to carry: no flow either
                self._view, self._frame_id = view, frame_id
                return [track.state for track in self._tracks]
            step = self._flow.step(self._view, view)
            for key, chain in self._pending.items():
                if key == frame_id:  # the model's frame reached the tracker after it was handed over
                    chain.start_at(self._grid)
                else:
                    chain.advance(step, self._grid, self._flow, view)
            self._view, self._frame_id = view, frame_id
            for track in followed:
                self._update(track, step)
            return [track.state for track in self._tracks]

    def _start(self, view: FrameView, frame_id: object) -> None:
        """First frame (or a new size): no track to carry over. A frame handed to the model before it, of this size,
        keeps its chain: it starts with one direct step from that frame (the model often takes a frame the tracker
        never saw, when the command came after it)."""
        self._view, self._frame_id = view, frame_id
        self._flow = FlowField(self.config.flow)  # DIS reused on another size gives other (not reproducible) results
        xs, ys = np.meshgrid(np.arange(view.size[0], dtype=np.float32), np.arange(view.size[1], dtype=np.float32))
        self._grid = np.dstack([xs, ys])
        self._tracks = []
        self._pending = {key: chain for key, chain in self._pending.items()
                         if key == frame_id or (chain.source.image.shape == view.image.shape and chain.map_xy is None)}
        for key, chain in self._pending.items():
            if key == frame_id:
                chain.start_at(self._grid)
            else:
                chain.advance(None, self._grid, self._flow, view)

    # --- one frame of one track -------------------------------------------------------------------------------------
    def _update(self, track: _Track, step: Step) -> None:
        config, reference, state = self.config, track.reference, track.state
        state.steps += 1
        if step.agreement < SCENE_CUT:  # no motion relates the frames: whatever matches by chance is not the target
            self._settle(track, Look(state.in_view, 0.0), TrackPhase.LOST)
            return
        track.gain = track.gain * step.gain
        camera_only = track.relative.predict(track.homography, step)
        if state.phase is TrackPhase.TRACKING:
            moved = self._best_motion(track, step, camera_only)
            seen = look(reference, moved, track.gain, self._view, config.appearance)
            phase = phase_of(seen, config, shown=True)
            if phase is TrackPhase.TRACKING:
                if seen.in_view >= IN_FULL_SIGHT and count(seen.hidden_part) <= HIDDEN_SPECK * count(seen.mask):
                    # its own motion, not an occluder's edge's
                    track.relative.record(reference, moved, step.camera @ track.homography)
                elif seen.judged and seen.in_view >= IN_FULL_SIGHT:
                    # partly hidden and resized: the flow on what shows is dragged by the occluder's edge and would
                    # shrink the target; it keeps the camera's shape and takes only the shift of its centre
                    centre = reference.samples.mean(0, keepdims=True)
                    dx, dy = (project(moved, centre) - project(camera_only, centre))[0]
                    moved = translation(float(dx), float(dy)) @ camera_only
                    seen = look(reference, moved, track.gain, self._view, config.appearance)
                    phase = phase_of(seen, config, shown=True)
                track.homography = moved if phase is TrackPhase.TRACKING else camera_only
            else:  # what the flow followed may be whatever hides it: from here the camera's motion carries it
                track.homography = camera_only
        else:
            radius = min(config.motion.max_carried_px, config.motion.max_object_step_px * (1 + track.unseen))
            track.homography, seen = look_for(reference, camera_only, track.gain, self._view, radius, config)
            phase = phase_of(seen, config, shown=False)
        if track.rival is not None:
            seen, phase = self._weigh_rival(track, step, seen, phase)
        self._settle(track, seen, phase)

    def _weigh_rival(self, track: _Track, step: Step, seen: Look, phase: TrackPhase) -> tuple[Look, TrackPhase]:
        """The other place an answer may be (see ``_place``), looked for too. The chain's place is taken when the
        target shows there clearly while it does not at the camera's; from then the camera's place is the rival, taken
        back when the target shows there better (the chain had followed something that passed in front of it)."""
        config, reference = self.config, track.reference
        track.rival_frames -= 1
        if track.rival_is_camera:
            rival, rival_seen = look_for(reference, step.camera @ track.rival, track.gain, self._view,
                                         config.motion.max_object_step_px, config)
            take = rival_seen.visible >= max(config.occlusion.visible_to_show, seen.visible + SAME_LOOK)
        else:
            radius = min(config.motion.max_carried_px, config.motion.max_object_step_px * (1 + track.unseen))
            rival, rival_seen = look_for(reference, track.relative.predict(track.rival, step), track.gain, self._view,
                                         radius, config)
            # colours found nowhere around the target are evidence wherever they show (as for any hidden target);
            # another target needs a clear look: a board of its own colour, which the chain followed, passes
            # visible_to_show (docs/tracking.md, "A second place for a late answer")
            shows = phase_of(rival_seen, config, shown=False) is TrackPhase.TRACKING and \
                (rival_seen.by_colour or rival_seen.visible >= CLEAR_LOOK)
            take = phase is not TrackPhase.TRACKING and shows
        take = take and rival_seen.in_view >= config.occlusion.min_in_view
        if take:
            track.rival, track.homography = (None if track.rival_is_camera else track.homography), rival
            track.rival_is_camera = not track.rival_is_camera
            seen, phase = rival_seen, TrackPhase.TRACKING
        else:
            track.rival = rival
            if phase is TrackPhase.TRACKING and not track.rival_is_camera:  # found where the camera put it
                track.rival = None
        if not phase.followed or track.rival_frames <= 0:
            track.rival = None
        return seen, phase

    def _best_motion(self, track: _Track, step: Step, camera_only: np.ndarray) -> np.ndarray:
        """Where a target in sight went: as its own flow says, there moved to where its look matches best nearby,
        or as the camera moved; of these the one where it looks most as on the model's frame (an occluder's edge
        drags the flow, a bright one the look search), then aligned with the model's frame."""
        reference, gain, view = track.reference, track.gain, self._view
        by_flow = step_of_target(reference, track.homography, step, view.size) @ track.homography
        candidates = [by_flow, shifted(by_flow, own_shift(reference, by_flow, gain, view, self.config.motion.max_object_step_px)),
                      camera_only]
        best, best_visible = None, -1.0
        for candidate in candidates:
            if best is not None and candidate is best:
                continue
            visible = look(reference, candidate, gain, view, self.config.appearance).visible
            if visible > best_visible + SAME_LOOK:
                best, best_visible = candidate, visible
        return snapped(reference, aligned(reference, best, gain, view), gain, view, self.config.colour.snap_px)

    def _settle(self, track: _Track, seen: Look, phase: TrackPhase) -> None:
        """Publish the track in ``phase`` on the newest frame, or follow it unseen (and give up when too long)."""
        state, occlusion = track.state, self.config.occlusion
        state.in_view, state.visible = seen.in_view, seen.visible
        if phase is TrackPhase.TRACKING:
            mask, confidence = self._full_mask(track, seen)
            if count(mask) < self.config.min_area_px:
                phase, mask = TrackPhase.HIDDEN, None
            elif confidence < self.config.min_confidence and not seen.by_colour:
                # (a target told by its colours alone is where they are: what is published has them)
                phase, mask = TrackPhase.LOST, None
        else:
            mask, confidence = None, state.confidence
        track.unseen = 0 if phase is TrackPhase.TRACKING else track.unseen + 1
        if phase.followed and track.unseen > occlusion.max_unseen_frames:
            phase = TrackPhase.GONE
        state.phase, state.confidence = phase, confidence
        state.mask = mask if mask is not None else np.zeros(self._view.full_shape, bool)
        track.published_at = track.homography

    def _full_mask(self, track: _Track, seen: Look) -> tuple[np.ndarray, float]:
        """(the model's mask carried to the newest frame at full resolution, less what something in front hides;
        the share of the published pixels that look as on the model's frame)."""
        (height, width), (small_w, small_h) = self._view.full_shape, self._view.size
        to_full = resolution_change(width / small_w, height / small_h)
        homography = to_full @ track.homography @ np.linalg.inv(to_full)
        mask = np.zeros((height, width), bool)
        colours = track.reference.colours
        band = self.config.colour.band_px if colours.clean else 0
        region = bounds(homography, track.reference.full_box, (width, height), margin=2 * band)
        if region is None:
            return mask, 0.0
        x0, y0, x1, y1 = region
        mask[y0:y1, x0:x1] = warp_into(track.reference.full_mask, homography, region) >= 0.5
        if band:  # colours found nowhere around it: they say where it is, within the band
            near = mask[y0:y1, x0:x1]
            if track.published_at is not None and track.state.found:
                # ... of the mask carried or of the last one published, moved as the target moved: a target the
                # model saw partly hidden grows as it comes out (a band a frame, to at most GROWTH times the model's)
                since = to_full @ track.homography @ np.linalg.inv(track.published_at) @ np.linalg.inv(to_full)
                near = near | (warp_into(track.state.mask.astype(np.float32), since, region) >= 0.5)
            segmented = segment(colours, near, self._view.image[y0:y1, x0:x1], track.gain, band)
            if count(segmented) > GROWTH * max(count(mask[y0:y1, x0:x1]), 1):
                segmented = segment(colours, mask[y0:y1, x0:x1], self._view.image[y0:y1, x0:x1], track.gain, band)
            carried = mask[y0:y1, x0:x1]
            if seen.visible < CLEAR_LOOK and count(carried) and \
                    WHOLE_BY_COLOUR * count(carried) <= count(segmented) <= count(carried) / WHOLE_BY_COLOUR:
                # the target seen whole by its colours: its motion is where they are (a fast object outruns the flow)
                shift = (_centre(segmented) - _centre(carried)) * (small_w / width, small_h / height)
                if np.hypot(*shift) <= self.config.motion.max_carried_px:
                    track.homography = translation(float(shift[0]), float(shift[1])) @ track.homography
            mask[y0:y1, x0:x1] = segmented
            return mask, seen.visible
        hidden = seen.hidden_part
        shown = seen.mask & ~hidden
        if hidden.any():
            sx0, sy0, sx1, sy1 = seen.region
            cut = cv2.resize(hidden.view(np.uint8), (round((sx1 - sx0) * width / small_w), round((sy1 - sy0) * height / small_h)),
                             interpolation=cv2.INTER_LINEAR).view(bool)
            fx0, fy0 = round(sx0 * width / small_w), round(sy0 * height / small_h)
            fx1, fy1 = min(width, fx0 + cut.shape[1]), min(height, fy0 + cut.shape[0])
            mask[fy0:fy1, fx0:fx1] &= ~cut[:fy1 - fy0, :fx1 - fx0]
        return mask, count(seen.agree & shown) / max(1, count(shown))

    # --- answers -------------------------------------------------------------------------------------------------------
    def anchor(self, frame_id: object, masks: list[np.ndarray | None], keep_hidden: bool = True) -> list[TrackedMask]:
        """The model's masks for frame ``frame_id`` (None: not found), brought to the newest frame; they replace every
        track. A frame never ``remember``-ed (or forgotten by ``reset``) anchors nothing.

        Except two (unless ``keep_hidden`` is False: the answer is to another question than the tracks'). A "not
        found" for a target the tracker held hidden on that very frame (and still follows) leaves that track as it
        is: the model could not see what was hidden; the earlier answer's target is shown again when it comes out.
        And an answer that is a small part of what the track follows, about a frame on which the tracker saw only
        part of the target (partly hidden or out of the view), leaves the track with its fuller answer."""
        with self._lock:
            chain = self._pending.pop(frame_id, None)
            if chain is None or self._view is None:
                self._tracks = []
                return []
            if chain.map_xy is None:  # answered before any newer frame arrived
                if frame_id == self._frame_id:
                    chain.start_at(self._grid)
                else:
                    chain.advance(None, self._grid, self._flow, self._view)
            previous, self._tracks = self._tracks, []
            for index, mask in enumerate(masks):
                earlier = previous[index] if index < len(previous) else None
                empty = mask is None or not mask.any()
                seen_then = chain.seen.get(index) if keep_hidden and earlier is not None else None
                if empty and seen_then == 0.0 and earlier.state.phase.followed:
                    self._tracks.append(earlier)
                    continue
                track = self._new_track(mask, chain, earlier)
                if seen_then is not None and seen_then < IN_FULL_SIGHT and self._part_of(track, earlier):
                    track = earlier  # the fuller answer stays the reference (it is seen again as it comes out)
                else:
                    self._place(track, chain, out_of_sight=earlier is not None and earlier.state.phase.unseen)
                    track.state.answer_frame = frame_id
                self._tracks.append(track)
            return [track.state for track in self._tracks]

    def _new_track(self, mask: np.ndarray | None, chain: Pending, earlier: _Track | None) -> _Track:
        """A track for the model's ``mask`` on the chain's frame, placed on the newest frame as the camera moved."""
        nothing = np.zeros(self._view.full_shape, bool)
        if mask is None or not mask.any():
            return _Track(None, np.eye(3), np.ones(3), TrackedMask(nothing, TrackPhase.NOT_FOUND, 0.0, chain.steps))
        reference = make_reference(chain.source, mask, self.config.colour) if count(mask) >= self.config.min_area_px else None
        if reference is None:
            return _Track(None, np.eye(3), np.ones(3), TrackedMask(nothing, TrackPhase.TOO_SMALL, 0.0, chain.steps))
        relative = RelativeMotion(earlier.relative if earlier is not None else None)
        dx, dy = relative.per_frame * chain.steps
        return _Track(reference, translation(float(dx), float(dy)) @ chain.camera, chain.gain.copy(),
                      TrackedMask(mask.copy(), TrackPhase.TRACKING, 1.0, chain.steps), relative)

    def _place(self, track: _Track, chain: Pending, out_of_sight: bool = False) -> None:
        """A new answer carried over the frames since the model's: where the chain says its pixels went, or where the
        camera's motion alone puts it (the chain follows whatever passed in front of it meanwhile); the one where it
        looks most as on the model's frame, or a little around that where it looks better. ``out_of_sight``: the
        tracker holds the target hidden or out of view on the newest frame; the answer (about an older frame) shows
        it there only where it looks as clearly as a hidden target must to be shown again (an occluder's plain
        surface agrees with a quarter of a plain target by chance)."""
        reference = track.reference
        if reference is None or chain.steps == 0:
            return
        carried = chain.carrying(reference.mask)
        if reference.area < MIN_JUDGED_PX:  # a sliver: its look cannot tell where it is, the model's word stands
            track.homography = carried if carried is not None else track.homography
            self._settle(track, look(reference, track.homography, track.gain, self._view, self.config.appearance),
                         TrackPhase.TRACKING)
            return
        radius = min(self.config.motion.max_carried_px, self.config.motion.max_object_step_px * chain.steps)
        by_camera = look_for(reference, track.homography, track.gain, self._view, radius, self.config)
        homography, seen = by_camera
        if carried is not None:
            # The chain follows whatever passed in front of the target meanwhile: where it disagrees with the camera's
            # motion by more than the target could have moved by itself, only a clear look of the target counts.
            by_chain = look_for(reference, carried, track.gain, self._view, radius, self.config)
            centre = reference.samples.mean(0, keepdims=True)
            apart = float(np.linalg.norm(project(by_chain[0], centre) - project(by_camera[0], centre)))
            needed = CLEAR_LOOK if apart > radius else \
                self.config.occlusion.visible_to_show if out_of_sight else self.config.occlusion.min_visible
            if by_chain[1].visible >= max(needed, seen.visible + SAME_LOOK):
                homography, seen = by_chain
            elif apart > radius:
                # too far apart to tell which is right by a look now: the chain's place is kept as a rival while
                # the target is unseen there and at the camera's, and taken once it shows there (_weigh_rival)
                track.rival, track.rival_frames = by_chain[0], self.config.occlusion.max_unseen_frames
        track.homography = homography
        # the model has just seen it: it stays in sight down to min_visible, unless the tracker saw it go meanwhile
        self._settle(track, seen, phase_of(seen, self.config, shown=not out_of_sight))
        if track.state.phase is TrackPhase.TRACKING or not track.state.phase.followed:
            track.rival = None

    def _part_of(self, track: _Track, earlier: _Track) -> bool:
        """Whether ``track``'s answer is a small part of the target ``earlier`` follows (seen, hidden or out of
        view): the model answered the visible part of a target coming out from behind something or leaving the
        image. Compared on the earlier answer's frame, where its target is whole."""
        if track.reference is None or earlier.reference is None or not earlier.state.phase.followed:
            return False
        new_to_old = np.linalg.inv(earlier.homography) @ track.homography
        new = cv2.warpPerspective(track.reference.mask, new_to_old, self._view.size, flags=cv2.INTER_NEAREST).view(bool)
        new_area, old = count(new), earlier.reference.mask
        slack = max(PART_SLACK_PX, round(PART_SLACK * np.sqrt(earlier.reference.area)))
        near_old = cv2.dilate(old, np.ones((2 * slack + 1,) * 2, np.uint8)).view(bool)
        return 0 < new_area < PART_OF_AREA * count(old.view(bool)) and count(new & near_old) >= PART_INSIDE * new_area
