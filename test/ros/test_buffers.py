"""The hand-over buffers (ros/buffers.py) on their own: a frame keeps the nearest depth offered to it and the first
camera_info after it, the slot keeps the newest frame and counts what it replaced, the stamp matcher finds the
nearest depth and counts shared stamps. The node tests (test_node*.py) check them in use."""
from __future__ import annotations

import math

import pytest

from mllmseg_ros.ros.buffers import Frame, LatestFrameSlot, StampMatcher


def frame(stamp: float = 10.0) -> Frame:
    return Frame(rgb=None, header=None, received=0.0, stamp=stamp)


def test_a_frame_keeps_the_nearest_depth_from_either_side():
    waiting = frame(10.0)
    assert waiting.paired_depth(1.0) == (None, math.inf)  # nothing offered yet
    waiting.offer_depth(9.9, "early")
    assert waiting.paired_depth(0.5) == ("early", pytest.approx(0.1))
    waiting.offer_depth(10.03, "late but nearer")  # its own depth, after the frame: nearer wins
    assert waiting.paired_depth(0.5) == ("late but nearer", pytest.approx(0.03))
    waiting.offer_depth(9.97, "as near, earlier")  # a tie keeps the one held
    assert waiting.paired_depth(0.5)[0] == "late but nearer"
    waiting.offer_depth(10.2, "farther")
    assert waiting.paired_depth(0.5)[0] == "late but nearer"


def test_a_paired_depth_outside_the_tolerance_is_none_but_its_gap_is_told():
    waiting = frame(10.0)
    waiting.offer_depth(10.25, "depth")
    assert waiting.paired_depth(0.25) == ("depth", 0.25)  # at the tolerance: used
    assert waiting.paired_depth(0.2499) == (None, 0.25)


def test_a_frame_keeps_the_camera_info_it_arrived_with_or_the_first_after():
    waiting = frame()
    waiting.offer_camera_info("first")
    waiting.offer_camera_info("second")
    assert waiting.camera_info == "first"
    arrived_with = Frame(rgb=None, header=None, received=0.0, camera_info="current")
    arrived_with.offer_camera_info("newer")
    assert arrived_with.camera_info == "current"


def test_the_slot_keeps_the_newest_frame_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.take() is None and slot.peek() is None
    first, second, third = frame(1.0), frame(2.0), frame(3.0)
    slot.put(first)
    assert slot.peek() is first and (slot.received, slot.dropped) == (1, 0)
    slot.put(second)  # replaces the waiting one: a drop
    assert slot.peek() is second and (slot.received, slot.dropped) == (2, 1)
    assert slot.take() is second and slot.take() is None and slot.peek() is None
    slot.put(third)  # the slot was empty: no drop
    assert (slot.received, slot.dropped) == (3, 1)
    slot.put(first)  # the second drop counts too
    assert slot.peek() is first and (slot.received, slot.dropped) == (4, 2)
    slot.clear()
    assert slot.peek() is None and slot.take() is None and (slot.received, slot.dropped) == (4, 2)


def test_the_matcher_finds_the_nearest_stamp_and_forgets_the_oldest():
    matcher = StampMatcher(capacity=3)
    assert matcher.nearest(5.0) is None and len(matcher) == 0 and matcher.newest_stamp == -math.inf
    for stamp in (1.0, 2.0, 3.0, 4.0):
        matcher.add(stamp, f"d{stamp:g}")
    assert len(matcher) == 3 and matcher.newest_stamp == 4.0
    assert matcher.nearest(0.0) == (2.0, "d2")  # 1.0 fell out of the ring
    assert matcher.nearest(2.6) == (3.0, "d3") and matcher.nearest(2.4) == (2.0, "d2")
    assert matcher.nearest(9.0) == (4.0, "d4")
    matcher.add(3.5, "older stamp")  # newest_stamp only grows
    assert matcher.newest_stamp == 4.0 and matcher.nearest(3.45) == (3.5, "older stamp")
    matcher.clear()
    assert len(matcher) == 0 and matcher.nearest(3.0) is None and matcher.newest_stamp == -math.inf


def test_the_matcher_counts_messages_sharing_a_stamp():
    matcher = StampMatcher()
    for item in ("a", "b", "c"):
        matcher.add(0.0, item)  # a driver that stamps everything 0
    matcher.add(1.0, "d")
    assert matcher.count_at(0.0) == 3 and matcher.count_at(1.0) == 1 and matcher.count_at(0.5) == 0
    assert StampMatcher().count_at(0.0) == 0


def test_the_default_ring_holds_a_second_of_depth_at_30_fps():
    matcher = StampMatcher()
    for index in range(40):
        matcher.add(index / 30, index)
    assert len(matcher) == 30 and matcher.nearest(0.0) == (10 / 30, 10)
