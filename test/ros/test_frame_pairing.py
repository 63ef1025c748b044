"""What each colour frame is paired with (ros/frame_pairing.py), without ROS: the depth image nearest in stamp and
the camera_info of its time, offered while the frame waits and while the model runs on it and no longer after; the
hand-over of the newest frame; and the wait for a frame's own depth image, on a fake clock. The node tests
(test_node.py, test_node_tracking.py, test_node_slow_model.py, test_node_timing.py) check the same in use."""
from __future__ import annotations

import math

import pytest

from mllmseg_ros.ros.frame_pairing import DEPTH_SILENT_S, FramePairing


class FakeClock:
    """time.monotonic and time.sleep for the pairing: each sleep moves the clock on by what it was asked."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep = None  # called after each sleep: what arrives meanwhile

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def pairing(clock: FakeClock | None = None) -> FramePairing:
    clock = clock or FakeClock()
    return FramePairing(clock=clock, sleep=clock.sleep)


def arrive(streams: FramePairing, stamp: float, header: str = "header"):
    return streams.frame_arrived(rgb=f"rgb@{stamp}", header=header, stamp=stamp)


# a frame and its depth ----------------------------------------------------------------------------------------------
def test_a_frame_gets_the_nearest_depth_that_came_before_it():
    streams = pairing()
    streams.depth_arrived(0.90, "d0.90")
    streams.depth_arrived(1.02, "d1.02")
    streams.depth_arrived(1.20, "d1.20")
    frame = arrive(streams, 1.0)
    assert frame.depth == "d1.02" and frame.depth_gap == pytest.approx(0.02)
    assert frame.paired_depth(0.05) == ("d1.02", pytest.approx(0.02))


def test_a_frame_without_any_depth_yet_has_none():
    frame = arrive(pairing(), 1.0)
    assert frame.depth is None and frame.depth_gap == math.inf


def test_a_depth_image_after_the_frame_reaches_it_while_it_waits_in_the_slot():
    streams = pairing()
    streams.depth_arrived(0.9, "early")
    frame = arrive(streams, 1.0)
    streams.depth_arrived(1.0, "own")
    assert frame.depth == "own" and frame.depth_gap == 0.0
    streams.depth_arrived(1.1, "later")  # farther: the frame keeps its own
    assert frame.depth == "own"
    assert len(streams.depth) == 3  # every depth image is kept for frames still to come


def test_a_depth_image_reaches_the_frame_the_model_works_on_until_it_is_finished():
    streams = pairing()
    frame = arrive(streams, 1.0)
    assert streams.take_frame() is frame and streams.in_flight is frame and streams.slot.peek() is None
    streams.depth_arrived(1.01, "while in flight")
    assert frame.depth == "while in flight"
    streams.finish_frame()
    assert streams.in_flight is None
    streams.depth_arrived(1.0, "after the answer")
    assert frame.depth == "while in flight"


def test_a_frame_replaced_in_the_slot_gets_no_more_depth():
    streams = pairing()
    first = arrive(streams, 1.0)
    second = arrive(streams, 1.033)
    streams.depth_arrived(1.0, "first's own")
    assert first.depth is None and second.depth == "first's own"
    assert streams.slot.dropped == 1 and streams.latest is second


def test_both_the_waiting_and_the_in_flight_frame_are_offered_each_depth():
    streams = pairing()
    in_flight = arrive(streams, 1.0)
    streams.take_frame()
    waiting = arrive(streams, 1.033)
    streams.depth_arrived(1.02, "between")
    assert in_flight.depth == "between" and waiting.depth == "between"
    assert streams.take_frame() is waiting and streams.in_flight is waiting


def test_taking_from_an_empty_slot_leaves_nothing_in_flight():
    streams = pairing()
    arrive(streams, 1.0)
    streams.take_frame()
    assert streams.take_frame() is None and streams.in_flight is None


# a frame and its camera_info ---------------------------------------------------------------------------------------
def test_a_frame_keeps_the_camera_info_of_its_time():
    streams = pairing()
    streams.camera_info_arrived("info 1")
    frame = arrive(streams, 1.0)
    streams.camera_info_arrived("info 2")
    assert frame.camera_info == "info 1" and streams.camera_info == "info 2"
    assert arrive(streams, 1.033).camera_info == "info 2"


def test_a_frame_before_any_camera_info_gets_the_first_one_while_it_waits_or_is_in_flight():
    streams = pairing()
    waiting = arrive(streams, 1.0)
    streams.camera_info_arrived("first")
    assert waiting.camera_info == "first"
    streams.clear()
    in_flight = arrive(streams, 2.0)
    streams.take_frame()
    streams.camera_info_arrived("next")
    assert in_flight.camera_info == "next"


def test_a_finished_frame_without_camera_info_is_not_given_one():
    streams = pairing()
    frame = arrive(streams, 1.0)
    streams.take_frame()
    streams.finish_frame()
    streams.camera_info_arrived("after")
    assert frame.camera_info is None


# stamps and arrival -------------------------------------------------------------------------------------------------
def test_a_frame_stamped_as_the_one_before_is_marked_repeated():
    streams = pairing()
    assert not arrive(streams, 1.0).stamp_repeated
    assert arrive(streams, 1.0).stamp_repeated
    assert not arrive(streams, 1.033).stamp_repeated
    streams.clear()  # a new subscription: no frame before
    assert not arrive(streams, 1.033).stamp_repeated


def test_a_frame_carries_its_pixels_header_stamp_and_arrival_time():
    clock = FakeClock(now=42.5)
    streams = pairing(clock)
    frame = arrive(streams, 7.25, header="its header")
    assert (frame.rgb, frame.header, frame.stamp, frame.received) == ("rgb@7.25", "its header", 7.25, 42.5)
    assert streams.latest is frame and streams.slot.peek() is frame and streams.slot.received == 1


def test_clear_forgets_frames_depth_and_camera_info():
    streams = pairing()
    streams.camera_info_arrived("info")
    streams.depth_arrived(1.0, "depth")
    arrive(streams, 1.0)
    streams.take_frame()
    arrive(streams, 1.033)
    streams.clear()
    assert streams.slot.peek() is None and streams.in_flight is None and streams.latest is None
    assert streams.camera_info is None and len(streams.depth) == 0 and streams.depth.newest_stamp == -math.inf
    frame = arrive(streams, 2.0)
    assert frame.depth is None and frame.camera_info is None


# the wait for a frame's own depth -----------------------------------------------------------------------------------
def test_no_wait_without_a_depth_stream():
    clock = FakeClock()
    streams = pairing(clock)
    frame = arrive(streams, 5.0)
    streams.wait_for_own_depth(frame, tolerance_s=1.0)
    assert clock.sleeps == []


def test_no_wait_when_the_depth_stream_has_stopped():
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(5.0 - DEPTH_SILENT_S - 0.25, "old")
    frame = arrive(streams, 5.0)
    streams.wait_for_own_depth(frame, tolerance_s=1.0)
    assert clock.sleeps == []


@pytest.mark.parametrize("behind_s", [DEPTH_SILENT_S, 0.5])
def test_a_depth_stream_up_to_a_second_behind_is_waited_for(behind_s):
    """Exactly DEPTH_SILENT_S behind, or less: still running, so the frame waits (here the whole tolerance)."""
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(5.0 - behind_s, "behind")
    frame = arrive(streams, 5.0)
    streams.wait_for_own_depth(frame, tolerance_s=1.0, poll_s=0.25)
    assert clock.sleeps == [0.25] * 4 and clock.now == frame.received + 1.0


@pytest.mark.parametrize("depth_stamp", [5.0, 5.01], ids=["its_own", "a_later_one"])
def test_no_wait_when_the_frames_own_or_a_later_depth_is_already_there(depth_stamp):
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(depth_stamp, "depth")
    frame = arrive(streams, 5.0)
    streams.wait_for_own_depth(frame, tolerance_s=1.0)
    assert clock.sleeps == []


def test_the_wait_ends_when_the_frames_own_depth_comes():
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(4.967, "previous")
    frame = arrive(streams, 5.0)
    clock.on_sleep = lambda: len(clock.sleeps) == 3 and streams.depth_arrived(5.0, "own")
    streams.wait_for_own_depth(frame, tolerance_s=1.0, poll_s=0.01)
    assert clock.sleeps == [0.01] * 3 and frame.depth == "own"


def test_the_wait_ends_at_the_tolerance_counted_from_the_frames_arrival():
    """A frame tracked 0.5 s after it arrived, with a tolerance of 1 s, waits the 0.5 s left, not a whole second."""
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(4.967, "previous")
    frame = arrive(streams, 5.0)
    clock.now += 0.5
    streams.wait_for_own_depth(frame, tolerance_s=1.0, poll_s=0.125)
    assert clock.sleeps == [0.125] * 4 and clock.now == frame.received + 1.0
    assert frame.depth == "previous"


def test_a_frame_past_its_tolerance_does_not_wait():
    clock = FakeClock()
    streams = pairing(clock)
    streams.depth_arrived(4.967, "previous")
    frame = arrive(streams, 5.0)
    clock.now += 1.0
    streams.wait_for_own_depth(frame, tolerance_s=1.0)
    assert clock.sleeps == []


def test_the_default_poll_is_short():
    clock = FakeClock(now=0.0)  # 0.002 + 0.002 is 0.004 exactly from 0
    streams = pairing(clock)
    streams.depth_arrived(4.967, "previous")
    frame = arrive(streams, 5.0)
    streams.wait_for_own_depth(frame, tolerance_s=0.004)
    assert clock.sleeps == [0.002, 0.002]
