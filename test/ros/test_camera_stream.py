"""One camera's callbacks (ros/camera_stream.py) with stand-in ports instead of a node: a frame that cannot be read is
counted, reported and logged, and the node carries on; a good one is handed to the pairing and wakes the worker;
depth (raw or compressedDepth) and camera_info reach the waiting frame; the wait for a frame's own depth happens only
with depth on. No rclpy context: real sensor_msgs messages, called as the executor would. The node tests
(test_node.py, test_node_remote.py, test_node_commands.py) check the same through topics."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from mllmseg_ros.ros.compressed_depth import decode_compressed_depth, encode_compressed_depth
from mllmseg_ros.ros.conversions import image_to_rgb
from mllmseg_ros.tools.node_driver import camera_info_msg, depth_msg, rgb_msg
from stand_in_ports import camera


def bad_image(stamp_ns: int = 0):
    msg = rgb_msg(stamp_ns=stamp_ns)
    msg.step = msg.width * 3 + 8  # rows longer than the data holds
    return msg


def reason_of(msg) -> str:
    with pytest.raises(ValueError) as error:
        image_to_rgb(msg)
    return str(error.value)


def settings(use_depth: bool = True, tolerance_s: float = 1.0):
    return SimpleNamespace(use_depth=use_depth, depth_sync_tolerance_s=tolerance_s)


def test_the_stream_publishes_under_its_camera_name():
    assert camera()[0].publisher == ("outputs", "~")
    named, _ = camera("/front/")
    assert named.publisher == ("outputs", "~/front") and named.name == "front"
    assert (named.image_topic, named.depth_topic, named.info_topic) == ("/front/image", "/front/depth", "/front/camera_info")


def test_an_unreadable_frame_is_counted_reported_and_logged_and_the_next_one_goes_through():
    stream, seen = camera("front")
    reason = reason_of(bad_image())
    stream._on_image(bad_image())
    assert stream.rejected == 1 and stream.reject_reason == reason
    assert seen.rejected == [(f"front/image: {reason}", "rejected")]
    (text, throttle), = seen.logger.warnings
    assert text == f"front/image: frame rejected: {reason}" and throttle and throttle > 0
    assert stream.slot.peek() is None and stream.latest is None and seen.frames == []
    stream._on_image(bad_image())
    assert stream.rejected == 2 and len(seen.rejected) == 2
    stream._on_image(rgb_msg(stamp_ns=5))
    assert stream.slot.peek() is not None and stream.rejected == 2 and stream.reject_reason == reason


def test_an_unreadable_compressed_frame_is_rejected_too():
    stream, seen = camera()
    stream._on_image(CompressedImage(format="jpeg", data=b"not a picture"))
    assert stream.rejected == 1 and "cannot read the image size" in stream.reject_reason
    assert seen.rejected[0][0].startswith("image: ") and seen.rejected[0][1] == "rejected"


def test_a_good_frame_goes_into_the_slot_wakes_the_worker_and_resets_the_silence_watch():
    stream, seen = camera()
    stream.warned = True
    seen.clock.now = 61.5
    msg = rgb_msg(stamp_ns=2_500_000_000)
    stream._on_image(msg)
    frame = stream.slot.peek()
    assert seen.frames == [frame] and stream.latest is frame
    assert np.array_equal(frame.rgb, image_to_rgb(msg)) and frame.stamp == 2.5 and frame.header is msg.header
    assert frame.received == 61.5 and stream.last_frame_time == 61.5 and not stream.warned


def test_a_compressed_frame_is_decoded():
    stream, seen = camera()
    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[:, :4] = (255, 0, 0)  # blue on the left
    msg = CompressedImage(format="png", data=cv2.imencode(".png", bgr)[1].tobytes())
    msg.header.stamp.sec = 3
    stream._on_image(msg)
    frame = stream.slot.peek()
    assert frame.rgb.shape == (6, 8, 3) and (frame.rgb[:, :4] == (0, 0, 255)).all() and frame.stamp == 3.0
    assert stream.rejected == 0 and len(seen.frames) == 1


def test_depth_and_camera_info_reach_the_frame_waiting_for_the_model():
    stream, _ = camera()
    stream._on_camera_info(info := camera_info_msg())
    stream._on_image(rgb_msg(stamp_ns=1_000_000_000))
    frame = stream.take_frame()
    assert frame.camera_info is info and stream.camera_info is info
    stream._on_depth(own := depth_msg(1.0, stamp_ns=1_000_000_000))
    assert frame.depth is own and frame.depth_gap == 0.0 and len(stream.depth) == 1
    stream.finish_frame()
    stream._on_depth(depth_msg(2.0, stamp_ns=1_000_000_000))
    assert frame.depth is own


def test_compressed_depth_is_decoded_and_paired_as_raw_depth():
    stream, seen = camera()
    stream._on_image(rgb_msg(stamp_ns=4_000_000_000))
    message = encode_compressed_depth(np.full((48, 64), 1500, np.uint16), "16UC1")
    message.header.stamp.sec, message.header.frame_id = 4, "camera_optical"
    stream._on_depth(message)
    frame = stream.slot.peek()
    assert frame.depth is not None and frame.depth_gap == 0.0
    assert frame.depth.encoding == "16UC1" and bytes(frame.depth.data) == bytes(decode_compressed_depth(message).data)
    assert seen.rejected == []


def test_an_unreadable_compressed_depth_image_is_reported_and_kept_from_the_frames():
    stream, seen = camera("front")
    stream._on_image(rgb_msg(stamp_ns=4_000_000_000))
    bad = CompressedImage(format="16UC1; compressedDepth zstd", data=b"\0" * 40)
    with pytest.raises(ValueError) as error:
        decode_compressed_depth(bad)
    stream._on_depth(bad)
    assert seen.rejected == [(f"front/depth: {error.value}", "depth")]
    (text, throttle), = seen.logger.warnings
    assert text == f"front/depth: depth image rejected: {error.value}" and throttle and throttle > 0
    assert len(stream.depth) == 0 and stream.slot.peek().depth is None
    assert stream.rejected == 0  # frames rejected count colour frames only


def test_the_wait_for_a_frames_own_depth_only_with_depth_on():
    stream, seen = camera()
    sleeps = []
    stream.pairing.sleep = lambda s: (sleeps.append(s), setattr(seen.clock, "now", seen.clock.now + s))
    stream._on_depth(depth_msg(1.0, stamp_ns=900_000_000))  # a running depth stream, behind the frame
    stream._on_image(rgb_msg(stamp_ns=1_000_000_000))
    frame = stream.take_frame()
    stream.wait_for_depth_pair(frame, settings(use_depth=False))
    assert sleeps == []
    stream.wait_for_depth_pair(frame, settings(use_depth=True, tolerance_s=0.25))
    assert sleeps and seen.clock.now == pytest.approx(frame.received + 0.25, abs=0.003)


def test_a_depth_problem_is_reported_for_the_depth_topic_and_logged():
    stream, seen = camera("front")
    stream.depth_problem("depth is not registered")
    assert seen.rejected == [("front/depth: depth is not registered", "depth")]
    (text, throttle), = seen.logger.warnings
    assert text == "no 3D answer: depth is not registered" and throttle and throttle > 0  # once per frame otherwise


def test_unsubscribe_forgets_what_was_paired():
    stream, _ = camera()
    stream._on_camera_info(camera_info_msg())
    stream._on_depth(depth_msg(1.0, stamp_ns=1))
    stream._on_image(rgb_msg(stamp_ns=1))
    stream.unsubscribe()
    assert stream.slot.peek() is None and stream.latest is None and stream.camera_info is None and len(stream.depth) == 0


def test_why_no_images_names_a_rejection_before_anything_else():
    stream, _ = camera(publishers=[])
    assert stream.why_no_images() == "nobody publishes /image (check the topic name / remapping)"
    stream._on_image(bad_image())
    assert stream.why_no_images() == f"1 frame(s) on /image were rejected: {stream.reject_reason}"
