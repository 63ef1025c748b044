"""The tracker on real photographs under a moving camera (issue 31's failure modes), driven as the node drives it:
an oracle model answers with the true mask ``delay`` seconds late, every frame tracked (``tools/tracking_replay.py``).

The sequences (``data/photo_motion.py``) use scikit-image's bundled photos (the ``test`` extra; nothing downloads).
Only development targets are used here; the held-out ones are for benchmarks/bench_tracking.py --offline.

Each test failed on main before issue 31 (checked by running this file against main's engine/tracking.py, d94f1ba):
precision 0.60 (pupil) and 0.80 (red box); the drift cost 0.23 IoU (0.84 -> 0.60); behind the boards 5 of 11 and 11
of 30 hidden frames called found; the 6 s answer from before the board scored 0.00 against repeat-last 0.18.
"""
from __future__ import annotations

from functools import lru_cache

import pytest

from mllmseg_ros.data.photo_motion import make_photo_sequence
from mllmseg_ros.tools.tracking_replay import photo_frames, replay

FPS = 15.0
WIDTH, HEIGHT = 640, 480  # the size the targets are set for (at 320 x 240 the two occluder tests fail: see docs)


@lru_cache(maxsize=2)
def frames(target: str, kind: str, seconds: float, drift: bool = True, seed: int = 1) -> tuple:
    return tuple(photo_frames(make_photo_sequence(target, kind, seed, seconds=seconds, width=WIDTH, height=HEIGHT, drift=drift)))


def run(target: str, kind: str, delay_s: float, seconds: float = 5.0, drift: bool = True) -> dict:
    return replay(iter(frames(target, kind, seconds, drift)), int(round(delay_s * FPS)))


@pytest.mark.parametrize("target, kind", [("chelsea/pupil", "perspective"), ("motorcycle/red box", "zoom")])
def test_the_mask_does_not_grow_onto_like_coloured_neighbours(target, kind):
    """A dark pupil in dark fur, a red box above a red fender, a face against hair and a beige wall."""
    result = run(target, kind, delay_s=2.0)
    assert result["precision"] >= 0.9, result["precision"]
    assert result["tracked_iou"] >= 0.85, result["tracked_iou"]


def test_exposure_and_white_balance_drift_cost_little():
    """+-20% auto-exposure and a white-balance drift: the target is neither cut where highlights clip nor called
    hidden while in full view."""
    drifting = run("astronaut/face", "shake", delay_s=2.0)
    steady = run("astronaut/face", "shake", delay_s=2.0, drift=False)
    assert steady["tracked_iou"] - drifting["tracked_iou"] <= 0.03, (steady["tracked_iou"], drifting["tracked_iou"])
    assert all(record["found"] for record in drifting["records"] if record["shows"])


@pytest.mark.parametrize("kind", ["own_colour", "occlusion"])
def test_a_target_behind_a_board_is_not_found_and_is_found_again_when_it_shows(kind):
    """A board (in ``own_colour`` of the target's own colour) hides the target entirely for a while: not called
    found behind it, found again within 0.5 s of showing whole."""
    result = run("chelsea/nose", kind, delay_s=0.5, seconds=10.0)
    assert result["hidden_frames"] >= 10
    assert result["hidden_found"] <= 0.02 * result["hidden_frames"], (result["hidden_found"], result["hidden_frames"])
    assert result["refind_frames"] and all(d is not None and d <= 0.5 * FPS for d in result["refind_frames"]), \
        result["refind_frames"]


def test_an_answer_from_before_an_occlusion_does_not_land_on_the_board():
    """With answers 6 s late, an answer about a frame before the board came is carried over its pass: it must not be
    kept on the board or on the background behind its trailing edge (repeating the last answer does better there)."""
    result = run("chelsea/nose", "occlusion", delay_s=6.0, seconds=10.0)
    assert result["tracked_iou"] >= result["baseline_iou"], (result["tracked_iou"], result["baseline_iou"])
    assert result["hidden_found"] <= 0.02 * max(1, result["hidden_frames"])
