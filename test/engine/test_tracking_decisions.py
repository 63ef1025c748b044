"""The tracker's decisions on chosen evidence, without images: when a target is in sight, hidden or out of the view
(``phase_of``), when what would be published is too small or looks too little like the target, when a target out of
sight is given up (``MaskTracker._settle``), and which phases are published as found and which are still followed.
test_tracking.py checks the same decisions on moving synthetic scenes."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from mllmseg_ros.engine.tracking import (LEFT_VIEW, LOW_CONFIDENCE, NOT_FOUND, OCCLUDED, TOO_SMALL, MaskTracker,
                                         OcclusionConfig, TrackedMask, TrackerConfig, TrackPhase)
from mllmseg_ros.engine.tracking.appearance import Look
from mllmseg_ros.engine.tracking.config import ColourConfig
from mllmseg_ros.engine.tracking.occlusion import phase_of
from mllmseg_ros.engine.tracking.state import GONE
from mllmseg_ros.engine.tracking.tracker import _Track

# Thresholds apart from each other and from the defaults, so a decision taking the wrong one shows.
CONFIG = TrackerConfig(min_confidence=0.6, min_area_px=20, colour=ColourConfig(min_visible=0.1),
                       occlusion=OcclusionConfig(min_visible=0.3, visible_to_show=0.7, min_in_view=0.45,
                                                 max_unseen_frames=3))
SHAPE = (12, 16)


# phases ----------------------------------------------------------------------------------------------------------
def test_only_a_tracked_target_is_found_and_each_other_phase_says_why():
    for phase in TrackPhase:
        state = TrackedMask(np.zeros(SHAPE, bool), phase, 0.5)
        assert state.found == (phase is TrackPhase.TRACKING)
        assert state.reason == phase.value
    assert TrackedMask(np.zeros(SHAPE, bool), TrackPhase.TRACKING, 1.0).reason == ""
    reasons = {TrackPhase.HIDDEN: OCCLUDED, TrackPhase.OUT_OF_VIEW: LEFT_VIEW, TrackPhase.LOST: LOW_CONFIDENCE,
               TrackPhase.NOT_FOUND: NOT_FOUND, TrackPhase.TOO_SMALL: TOO_SMALL, TrackPhase.GONE: GONE}
    assert {phase: TrackedMask(np.zeros(SHAPE, bool), phase, 0.0).reason for phase in reasons} == reasons
    assert len(set(reasons.values())) == len(reasons) and "" not in reasons.values()


def test_targets_in_sight_hidden_out_of_view_or_lost_are_followed_the_others_not():
    followed = {phase for phase in TrackPhase if phase.followed}
    assert followed == {TrackPhase.TRACKING, TrackPhase.HIDDEN, TrackPhase.OUT_OF_VIEW, TrackPhase.LOST}


# phase_of: in sight, hidden or out of the view ----------------------------------------------------------------------
@pytest.mark.parametrize("shown", [True, False])
def test_a_target_mostly_outside_the_image_has_left_the_view(shown):
    for look in (Look(in_view=0.44, visible=1.0), Look(in_view=0.0, visible=0.0),
                 Look(in_view=0.44, visible=1.0, judged=False),
                 Look(in_view=0.3, visible=1.0, by_colour=True)):
        assert phase_of(look, CONFIG, shown) is TrackPhase.OUT_OF_VIEW
    assert phase_of(Look(in_view=0.45, visible=1.0), CONFIG, shown) is TrackPhase.TRACKING  # at the bound: in view


@pytest.mark.parametrize("visible", [0.0, 1.0])
def test_a_target_too_little_in_the_image_to_judge_stays_as_it_was(visible):
    assert phase_of(Look(in_view=0.5, visible=visible, judged=False), CONFIG, shown=True) is TrackPhase.TRACKING
    assert phase_of(Look(in_view=0.5, visible=visible, judged=False), CONFIG, shown=False) is TrackPhase.HIDDEN


def test_a_target_in_sight_stays_so_down_to_min_visible():
    assert phase_of(Look(in_view=1.0, visible=0.3), CONFIG, shown=True) is TrackPhase.TRACKING
    assert phase_of(Look(in_view=1.0, visible=0.29), CONFIG, shown=True) is TrackPhase.HIDDEN
    assert phase_of(Look(in_view=1.0, visible=0.0), CONFIG, shown=True) is TrackPhase.HIDDEN


def test_a_hidden_target_is_shown_again_from_visible_to_show():
    assert phase_of(Look(in_view=1.0, visible=0.69), CONFIG, shown=False) is TrackPhase.HIDDEN
    assert phase_of(Look(in_view=1.0, visible=0.3), CONFIG, shown=False) is TrackPhase.HIDDEN
    assert phase_of(Look(in_view=1.0, visible=0.7), CONFIG, shown=False) is TrackPhase.TRACKING


@pytest.mark.parametrize("shown", [True, False])
def test_a_target_told_by_its_colours_is_in_sight_while_a_sliver_shows_them(shown):
    assert phase_of(Look(in_view=1.0, visible=0.1, by_colour=True), CONFIG, shown) is TrackPhase.TRACKING
    assert phase_of(Look(in_view=1.0, visible=0.09, by_colour=True), CONFIG, shown) is TrackPhase.HIDDEN


def test_the_thresholds_are_the_configs():
    default = TrackerConfig()
    assert phase_of(Look(in_view=1.0, visible=0.25), default, shown=True) is TrackPhase.TRACKING  # min_visible 0.2
    assert phase_of(Look(in_view=1.0, visible=0.25), CONFIG, shown=True) is TrackPhase.HIDDEN
    assert phase_of(Look(in_view=0.42, visible=1.0), default, shown=True) is TrackPhase.TRACKING  # min_in_view 0.4


# _settle: published, hidden, lost or given up -------------------------------------------------------------------
class Settling:
    """A MaskTracker whose carried mask is chosen by the test (``_full_mask`` replaced): its decisions alone."""

    def __init__(self, config: TrackerConfig = CONFIG) -> None:
        self.tracker = MaskTracker(config)
        self.tracker._view = SimpleNamespace(full_shape=SHAPE)
        self.carried: tuple[np.ndarray, float] = (np.ones(SHAPE, bool), 1.0)
        self.tracker._full_mask = lambda track, seen: self.carried
        self.track = _Track(reference=None, homography=np.eye(3) * 2.0, gain=np.ones(3),
                            state=TrackedMask(np.ones(SHAPE, bool), TrackPhase.TRACKING, 0.9))

    def settle(self, phase: TrackPhase, seen: Look = Look(in_view=0.8, visible=0.75), mask_px: int | None = None,
               confidence: float = 1.0) -> TrackedMask:
        mask = np.zeros(SHAPE, bool)
        mask.flat[: SHAPE[0] * SHAPE[1] if mask_px is None else mask_px] = True
        self.carried = (mask, confidence)
        self.tracker._settle(self.track, seen, phase)
        return self.track.state


def test_a_target_in_sight_is_published_with_its_carried_mask_and_confidence():
    settling = Settling()
    settling.track.unseen = 2
    state = settling.settle(TrackPhase.TRACKING, Look(in_view=0.8, visible=0.75), mask_px=20, confidence=0.6)
    assert state.phase is TrackPhase.TRACKING and state.found
    assert state.mask.sum() == 20 and state.mask is settling.carried[0] and state.confidence == 0.6
    assert (state.in_view, state.visible) == (0.8, 0.75) and settling.track.unseen == 0
    assert settling.track.published_at is settling.track.homography


def test_a_carried_mask_smaller_than_min_area_is_hidden():
    settling = Settling()
    state = settling.settle(TrackPhase.TRACKING, mask_px=19, confidence=1.0)
    assert state.phase is TrackPhase.HIDDEN and not state.found
    assert state.mask.shape == SHAPE and state.mask.dtype == bool and not state.mask.any() and settling.track.unseen == 1


def test_a_carried_mask_looking_too_little_like_the_target_is_lost():
    settling = Settling()
    state = settling.settle(TrackPhase.TRACKING, mask_px=40, confidence=0.59)
    assert state.phase is TrackPhase.LOST and state.reason == LOW_CONFIDENCE
    assert state.mask.shape == SHAPE and state.mask.dtype == bool and not state.mask.any() and settling.track.unseen == 1


def test_a_target_told_by_its_colours_is_published_at_any_confidence():
    settling = Settling()
    state = settling.settle(TrackPhase.TRACKING, Look(in_view=1.0, visible=0.2, by_colour=True), mask_px=40,
                            confidence=0.2)
    assert state.phase is TrackPhase.TRACKING and state.mask.sum() == 40 and state.confidence == 0.2


@pytest.mark.parametrize("phase", [TrackPhase.HIDDEN, TrackPhase.OUT_OF_VIEW, TrackPhase.LOST])
def test_a_target_out_of_sight_publishes_nothing_and_keeps_its_last_confidence(phase):
    settling = Settling()
    settling.tracker._full_mask = lambda track, seen: pytest.fail("nothing is carried for a target out of sight")
    state = settling.settle(phase, Look(in_view=0.3, visible=0.1))
    assert state.phase is phase and not state.found and state.confidence == 0.9
    assert state.mask.shape == SHAPE and state.mask.dtype == bool and not state.mask.any()
    assert (state.in_view, state.visible) == (0.3, 0.1)
    assert settling.track.unseen == 1 and settling.track.published_at is settling.track.homography


@pytest.mark.parametrize("phase", [TrackPhase.HIDDEN, TrackPhase.OUT_OF_VIEW, TrackPhase.LOST])
def test_a_target_out_of_sight_for_more_than_max_unseen_frames_is_given_up(phase):
    settling = Settling()
    for unseen in (1, 2, 3):
        assert settling.settle(phase).phase is phase and settling.track.unseen == unseen
    state = settling.settle(phase)
    assert state.phase is TrackPhase.GONE and state.reason == GONE and not state.phase.followed
    assert settling.track.unseen == 4


def test_a_target_seen_again_before_max_unseen_frames_starts_counting_afresh():
    settling = Settling()
    for _ in range(3):
        settling.settle(TrackPhase.HIDDEN)
    assert settling.settle(TrackPhase.TRACKING, mask_px=40).phase is TrackPhase.TRACKING and settling.track.unseen == 0
    for _ in range(3):
        assert settling.settle(TrackPhase.OUT_OF_VIEW).phase is TrackPhase.OUT_OF_VIEW
    assert settling.settle(TrackPhase.LOST).phase is TrackPhase.GONE


def test_too_small_and_too_unlike_count_as_unseen_frames():
    settling = Settling(replace(CONFIG, occlusion=replace(CONFIG.occlusion, max_unseen_frames=1)))
    assert settling.settle(TrackPhase.TRACKING, mask_px=5).phase is TrackPhase.HIDDEN
    assert settling.settle(TrackPhase.TRACKING, mask_px=40, confidence=0.1).phase is TrackPhase.GONE
