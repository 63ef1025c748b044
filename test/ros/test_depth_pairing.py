"""Which depth image and camera model give a frame its 3D answer, and when none may (ros/depth_pairing.py), on a
camera stream with stand-in ports: no node, the stream's callbacks called as the executor would. The node tests
(test_node.py, test_node_depth.py, test_node_remote.py, test_node_timing.py) check the same through topics."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from mllmseg_ros.ros.depth_pairing import (NOT_REGISTERED, camera_info_problem, depth_for, depth_in_limits,
                                           registration_problem, same_frame, stamp_problem)
from mllmseg_ros.engine.depth import DepthLimits
from mllmseg_ros.tools.node_driver import K, camera_info_msg, depth_msg, rgb_msg
from stand_in_ports import camera

SECOND = 1_000_000_000


def settings(**changes):
    values = dict(use_depth=True, depth_sync_tolerance_s=0.05, depth_registered="auto", min_depth_m=0.1,
                  max_depth_m=20.0, depth_scale=0.001)
    values.update(changes)
    return SimpleNamespace(**values)


def info(frame_id: str = "camera_optical", k=K) -> CameraInfo:
    msg = camera_info_msg()
    msg.k, msg.header.frame_id = list(k), frame_id
    return msg


def depth(value_m: float = 1.5, stamp_ns: int = SECOND, frame_id: str = "camera_optical", **kwargs):
    msg = depth_msg(value_m, stamp_ns=stamp_ns, **kwargs)
    msg.header.frame_id = frame_id
    return msg


def stream_with(*depths, camera_info=None, frame_stamp_ns: int = SECOND, frame_id: str = "camera_optical"):
    """(stream, its newest frame, what it reported) with ``depths`` arriving before the frame."""
    stream, seen = camera()
    if camera_info is not None:
        stream._on_camera_info(camera_info)
    for msg in depths:
        stream._on_depth(msg)
    stream._on_image(rgb_msg(stamp_ns=frame_stamp_ns, frame_id=frame_id))
    return stream, stream.latest, seen


# the pieces ----------------------------------------------------------------------------------------------------------
def test_frame_ids_compare_as_tf2_does():
    assert same_frame("/camera_optical", "camera_optical") and same_frame("a", "a")
    assert not same_frame("camera_optical", "camera_depth") and not same_frame("a/b", "b")
    assert not same_frame("Xcam", "cam") and not same_frame("cam", "Xcam")  # only slashes are stripped


def test_registration_follows_the_frame_ids_or_the_user():
    assert registration_problem("color", "color", "auto") == ""
    assert registration_problem("color", "/color", "auto") == ""
    assert registration_problem("color", "depth", "auto") == (
        f"{NOT_REGISTERED}: the depth image's frame_id 'depth' is not the colour image's 'color'. Use depth aligned to "
        "the colour image (RealSense: aligned_depth_to_color; docs/node.md, 'Cameras'), or set depth_registered:=true "
        "if it is registered")
    assert registration_problem("color", "depth", "true") == ""
    assert registration_problem("color", "color", "false") == f"{NOT_REGISTERED} (depth_registered: false)"


def test_a_camera_info_of_another_camera_is_refused_under_auto_only():
    assert camera_info_problem("color", "depth", "auto") == (
        "camera_info is of frame_id 'depth', not the colour image's 'color': remap camera_info to the colour camera's")
    assert camera_info_problem("color", "/color", "auto") == ""
    assert camera_info_problem("color", "depth", "true") == camera_info_problem("color", "depth", "false") == ""
    assert camera_info_problem("color", "", "auto") == ""  # a camera_info without a frame_id: nothing to compare
    assert camera_info_problem("", "depth", "auto") == ""


def test_a_stamp_that_cannot_pick_a_depth_image_is_told():
    repeated = SimpleNamespace(stamp_repeated=True, stamp=2.5)
    assert stamp_problem(repeated, 1, 2.5) == (
        "image stamps repeat (2.500 s, as the frame before): depth cannot be paired by stamp (check the camera "
        "driver's clock, or /clock with use_sim_time)")
    fresh = SimpleNamespace(stamp_repeated=False, stamp=2.5)
    assert stamp_problem(fresh, 1, 2.5) == ""
    assert stamp_problem(fresh, 2, 2.5) == (
        "2 depth images share the stamp 2.500 s: cannot tell which one belongs to this frame (check the depth "
        "driver's clock, or /clock with use_sim_time)")


def test_depth_outside_the_limits_is_no_measurement():
    values = np.array([[0.09, 0.1, 5.0], [20.0, 20.01, np.nan]], np.float32)
    out = depth_in_limits(values, DepthLimits(0.1, 20.0))
    assert out is values
    assert np.array_equal(np.isnan(out), [[True, False, False], [False, True, True]])
    assert out[0, 1] == np.float32(0.1) and out[0, 2] == 5.0 and out[1, 0] == 20.0


# depth_for: a frame's 3D answer ---------------------------------------------------------------------------------
def test_a_frame_with_its_depth_and_camera_info_gets_metres_and_intrinsics():
    stream, frame, seen = stream_with(depth(1.5), camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert reason == "" and metres.shape == (48, 64) and np.allclose(metres, 1.5)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (100.0, 100.0, 31.5, 23.5)
    assert seen.rejected == []


def test_the_depth_scale_and_the_limits_apply():
    stream, frame, _ = stream_with(depth(1.5), camera_info=info())
    metres, _, reason = depth_for(stream, frame, settings(depth_scale=0.002))
    assert reason == "" and np.allclose(metres, 3.0)
    metres, _, reason = depth_for(stream, frame, settings(max_depth_m=1.0))
    assert reason == "" and np.isnan(metres).all()
    metres, _, reason = depth_for(stream, frame, settings(min_depth_m=1.6))
    assert reason == "" and np.isnan(metres).all()


def test_depth_disabled_gives_nothing_and_reports_nothing():
    stream, frame, seen = stream_with(depth(1.5), camera_info=info())
    assert depth_for(stream, frame, settings(use_depth=False)) == (None, None, "depth disabled")
    assert seen.rejected == []


def test_no_depth_at_all():
    stream, frame, seen = stream_with(camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert (metres, reason) == (None, "no depth image") and intrinsics.fx == 100.0
    assert seen.rejected == []  # not a fault of the depth input: there is none


def test_depth_outside_the_stamp_tolerance_is_not_used_and_the_gap_is_told():
    stream, frame, seen = stream_with(depth(1.5, stamp_ns=SECOND - 60_000_000), camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings(depth_sync_tolerance_s=0.05))
    assert metres is None and intrinsics is not None
    assert reason == "no depth image within the stamp tolerance of 0.05 s (nearest 0.060 s away)"
    metres, _, reason = depth_for(stream, frame, settings(depth_sync_tolerance_s=0.06))
    assert reason == "" and metres is not None  # at the tolerance: used


def test_a_frame_gets_its_own_depth_that_came_after_a_newer_frame_took_the_slot():
    stream, first, _ = stream_with(depth(1.0, stamp_ns=SECOND), camera_info=info(), frame_stamp_ns=SECOND + 33_000_000)
    stream._on_image(rgb_msg(stamp_ns=SECOND + 66_000_000))
    stream._on_depth(depth(2.0, stamp_ns=SECOND + 33_000_000))
    assert first.depth_gap == pytest.approx(0.033)  # not offered: the newer frame had the slot
    metres, _, reason = depth_for(stream, first, settings(depth_sync_tolerance_s=0.02))
    assert reason == "" and np.allclose(metres, 2.0)


def test_without_camera_info_there_is_no_3d_and_the_depth_input_is_blamed():
    stream, frame, seen = stream_with(depth(1.5))
    assert depth_for(stream, frame, settings()) == (None, None, "no camera_info")
    assert seen.rejected == [("depth: no camera_info", "depth")]


def test_the_streams_newest_camera_info_stands_in_for_a_frame_without_one():
    stream, frame, _ = stream_with(depth(1.5))
    stream.pairing.camera_info = info()  # came after the frame was finished: not offered to it
    assert frame.camera_info is None
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert reason == "" and intrinsics.fx == 100.0


def test_the_frames_own_camera_info_wins_over_the_streams_newest():
    stream, frame, _ = stream_with(depth(1.5), camera_info=info(k=[50.0, 0, 31.5, 0, 50.0, 23.5, 0, 0, 1]))
    stream.pairing.camera_info = info()
    _, intrinsics, reason = depth_for(stream, frame, settings())
    assert reason == "" and intrinsics.fx == 50.0


def test_an_unusable_camera_info_is_told():
    stream, frame, seen = stream_with(depth(1.5), camera_info=info(k=[0.0] * 9))
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics is None and reason.startswith("camera_info unusable: ") and "fx" in reason
    assert seen.rejected == [(f"depth: {reason}", "depth")]


def test_an_unusable_camera_info_without_depth_still_says_no_depth():
    stream, frame, _ = stream_with(camera_info=info(k=[0.0] * 9))
    assert depth_for(stream, frame, settings()) == (None, None, "no depth image")


def test_a_camera_info_of_another_camera_gives_no_3d():
    stream, frame, seen = stream_with(depth(1.5), camera_info=info(frame_id="camera_depth"))
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics is None and "'camera_depth'" in reason and "remap camera_info" in reason
    assert seen.rejected == [(f"depth: {reason}", "depth")]
    metres, intrinsics, reason = depth_for(stream, frame, settings(depth_registered="true"))
    assert reason == "" and intrinsics is not None


def test_unregistered_depth_gives_no_3d():
    stream, frame, seen = stream_with(depth(1.5, frame_id="camera_depth"), camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics is None and reason.startswith(NOT_REGISTERED) and "'camera_depth'" in reason
    assert seen.rejected == [(f"depth: {reason}", "depth")]
    assert depth_for(stream, frame, settings(depth_registered="true"))[2] == ""
    assert depth_for(stream, frame, settings(depth_registered="false"))[2] == f"{NOT_REGISTERED} (depth_registered: false)"


def test_registration_is_told_before_a_stamp_or_camera_info_problem():
    stream, frame, _ = stream_with(depth(1.5, frame_id="camera_depth"), depth(1.5, frame_id="camera_depth"))
    assert depth_for(stream, frame, settings())[2].startswith(NOT_REGISTERED)


def test_a_repeated_frame_stamp_gives_no_3d():
    stream, _, seen = stream_with(depth(1.5), camera_info=info())
    stream._on_image(rgb_msg(stamp_ns=SECOND))
    metres, intrinsics, reason = depth_for(stream, stream.latest, settings())
    assert metres is None and intrinsics is None and reason.startswith("image stamps repeat")
    assert seen.rejected == [(f"depth: {reason}", "depth")]


def test_depth_images_sharing_the_frames_stamp_give_no_3d():
    stream, frame, seen = stream_with(depth(1.5), depth(2.5), camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics is None and reason.startswith("2 depth images share the stamp 1.000 s")


def test_a_stamp_problem_is_told_before_a_camera_info_problem():
    stream, frame, _ = stream_with(depth(1.5), depth(2.5))
    assert depth_for(stream, frame, settings())[2].startswith("2 depth images share")


def test_float_depth_in_millimetres_is_refused():
    stream, frame, seen = stream_with(depth(1500.0, encoding="32FC1"), camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics.fx == 100.0
    assert reason.startswith("bad depth image: 32FC1 depth looks like millimetres")
    assert seen.rejected == [(f"depth: {reason}", "depth")]
    assert seen.logger.warnings[-1][0] == f"no 3D answer: {reason}"


def test_float_depth_in_metres_is_used():
    stream, frame, _ = stream_with(depth(1.5, encoding="32FC1"), camera_info=info())
    metres, _, reason = depth_for(stream, frame, settings())
    assert reason == "" and np.allclose(metres, 1.5)


def test_a_depth_image_of_an_unknown_encoding_is_refused():
    msg = depth(1.5)
    msg.encoding = "8UC1"
    stream, frame, seen = stream_with(msg, camera_info=info())
    metres, intrinsics, reason = depth_for(stream, frame, settings())
    assert metres is None and intrinsics is not None and reason.startswith("bad depth image: unsupported depth encoding")
    assert seen.rejected == [(f"depth: {reason}", "depth")]



def test_a_frame_whose_depth_is_out_of_tolerance_says_so_after_the_ring_is_cleared():
    """A frame in flight keeps the depth it was offered when the stream is unsubscribed (deactivated) under it: its
    reason still gives the gap, not "no depth image"."""
    stream, frame, _ = stream_with(depth(1.5, stamp_ns=SECOND - 80_000_000), camera_info=info())
    stream.take_frame()
    stream.unsubscribe()
    assert len(stream.depth) == 0 and frame.depth is not None
    assert depth_for(stream, frame, settings())[2] == (
        "no depth image within the stamp tolerance of 0.05 s (nearest 0.080 s away)")
