"""The tracker on the synthetic scenes of ``data/scene_motion.py`` (objects on a table, nearer the camera than the
table and sliding by themselves), driven as the node drives it: an oracle model answers with the true mask ``delay``
seconds late, every frame tracked (``tools/tracking_replay.py``).

The test failed on main at 8856fd0 (tracked IoU 0.00: the answer was never found again).
"""
from __future__ import annotations

from mllmseg_ros.data.scene_motion import make_motion_sequence
from mllmseg_ros.tools.tracking_replay import replay, scene_frames

FPS = 15.0


def test_an_answer_carried_six_seconds_is_taken_up_where_the_chain_put_it():
    """The first answer, 6 s late, is carried 90 frames: the camera's motion (the table's) puts it over 100 px from
    the object, which stands nearer the camera and slides by itself, and it does not look like the target there.
    The chain's place is kept as a second, hidden hypothesis and taken once the target shows there."""
    frames = scene_frames(make_motion_sequence(1, "pan", seconds=12.0, fps=FPS))
    result = replay(frames, int(6.0 * FPS))
    assert result["tracked_iou"] is not None and result["tracked_iou"] >= 0.5, result["tracked_iou"]
    assert result["precision"] >= 0.9 and result["hidden_found"] == 0, (result["precision"], result["hidden_found"])
